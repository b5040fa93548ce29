"""Search CALIP's beta2 / beta3 and the view weights on cached per-view logits
(docs/calip.md#the-search).

Inputs are the per-view logits ``l0, l1, l2`` [N, V, K] of a tuning set (computed once) and
its labels [N]. A grid point is ``argmax_K (S0 + beta2 S1 + beta3 S2)`` with
``S_i = sum_v w_v l_i[:, v] / sqrt(V)`` (:func:`pointcalip.calip.weighted_view_sum`; by
linearity this is the aggregation of docs/calip.md#views-to-shape-logits), compared with the labels.

Beta grid: as in the released CALIP code (``run_imagenet.py``), each axis holds
``0.001 + i * (max - 0.001) / 200`` for ``i = 0 .. 199`` (so ``max`` itself is not reached and
0 is not on the grid); beta2 max 2.0, beta3 max 0.1. Ties: like CALIP's loop (beta2 outer,
beta3 inner, ``acc > best``), the first grid point in row-major order wins, i.e. the smallest
beta2, then the smallest beta3 (for sorted grids).

Two exact implementations of the same accuracy table:

- ``"envelope"`` (default): for a fixed beta2 the logits are linear in beta3, so the set of
  beta3 where a cloud is classified correctly is one interval (its label's line must stay above
  the other K - 1 lines). The interval comes from K - 1 line intersections; the grid points
  inside it are counted by binary search: O(G2 N K + G2 N log G3) instead of O(G2 G3 N K).
  Ties follow ``argmax`` (the first maximal class wins): classes before the label must be
  beaten strictly.
- ``"dense"``: materialise ``[c, G3, N, K]`` logits per chunk of beta2 values and argmax.
  Slower; kept as the obvious reference.

Both agree except where a margin is within float rounding of zero at a grid point.
"""
from __future__ import annotations

import contextlib
import contextvars
import itertools
import logging
import math
import time
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple, Union

import torch

from .calip import combine_view_logits, view_weight_tensor, weighted_view_sum
from .core.words import count

log = logging.getLogger(__name__)

#: level of the one-line summary each search logs (INFO; a caller searching once per item of
#: a long loop lowers it with :func:`per_item_logging`, so its progress bar stays readable)
_SUMMARY_LEVEL: contextvars.ContextVar[int] = contextvars.ContextVar("search_summary_level",
                                                                     default=logging.INFO)


@contextlib.contextmanager
def per_item_logging(level: int = logging.DEBUG):
    """Within the block, every search logs its summary line at ``level`` (default DEBUG):
    for loops that search once per item (e.g. per view subset) under a progress bar."""
    token = _SUMMARY_LEVEL.set(level)
    try:
        yield
    finally:
        _SUMMARY_LEVEL.reset(token)

BETA2_MAX = 2.0
BETA3_MAX = 0.1
GRID_SIZE = 200
GRID_START = 0.001
WEIGHT_CHOICES = (0.25, 0.5, 0.75, 1.0)

Weights = Union[None, Sequence[float], torch.Tensor]


def beta_grid(max_value: float, size: int = GRID_SIZE, start: float = GRID_START) -> torch.Tensor:
    """CALIP's grid: ``start + i * (max_value - start) / size`` for i = 0 .. size - 1; [size]
    float64."""
    i = torch.arange(size, dtype=torch.float64)
    return start + i * (max_value - start) / size


@dataclass
class SearchResult:
    """Best hyper-parameters found on a tuning set. ``accuracy`` is a fraction in [0, 1];
    ``accuracy_table`` [G2, G3] holds the accuracy at every (beta2, beta3) of the last beta
    search (at ``view_weights``), with the axes in ``beta2_values`` / ``beta3_values``."""
    beta2: float
    beta3: float
    view_weights: List[float]
    accuracy: float
    grid_shape: Tuple[int, int]
    seconds: float
    accuracy_table: Optional[torch.Tensor] = field(default=None, repr=False)
    beta2_values: Optional[torch.Tensor] = field(default=None, repr=False)
    beta3_values: Optional[torch.Tensor] = field(default=None, repr=False)

    def to_dict(self) -> dict:
        """JSON-friendly summary (no tables)."""
        return dict(beta2=self.beta2, beta3=self.beta3, view_weights=list(self.view_weights),
                    accuracy=self.accuracy, grid_shape=list(self.grid_shape),
                    seconds=self.seconds)


def _check(l0: torch.Tensor, l1: torch.Tensor, l2: torch.Tensor, labels
           ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    if l0.dim() != 3 or l0.shape != l1.shape or l0.shape != l2.shape:
        raise ValueError(f"search expects l0, l1, l2 of the same shape [N, V, K], got "
                         f"{tuple(l0.shape)}, {tuple(l1.shape)}, {tuple(l2.shape)}")
    labels = torch.as_tensor(labels, device=l0.device).long().flatten()
    n, _, k = l0.shape
    if labels.numel() != n:
        raise ValueError(f"{count(labels.numel(), 'label')} for {count(n, 'cloud')}")
    if n == 0:
        raise ValueError("search needs at least one labelled cloud")
    if labels.min() < 0 or labels.max() >= k:
        raise ValueError(f"labels must lie in [0, {k}), got min {int(labels.min())}, "
                         f"max {int(labels.max())}")
    for name, logits in (("l0", l0), ("l1", l1), ("l2", l2)):
        if not bool(torch.isfinite(logits).all()):
            bad = int(torch.nonzero(~torch.isfinite(logits).flatten(1).all(dim=1))[0])
            raise ValueError(f"search: {name} holds NaN/inf logits (first at cloud {bad}); "
                             "the features they come from are broken")
    dtype = torch.float64 if torch.float64 in (l0.dtype, l1.dtype, l2.dtype) else torch.float32
    return l0.to(dtype), l1.to(dtype), l2.to(dtype), labels


def _weights(view_weights: Weights, like: torch.Tensor) -> torch.Tensor:
    """The [V] view weights of per-view logits ``like`` [N, V, K], in their dtype and device."""
    return view_weight_tensor(view_weights, like.shape[1], like.dtype, like.device)


def _table_envelope(s0, s1, s2, labels, b2, b3, chunk: int) -> torch.Tensor:
    """Accuracy [G2, G3] via per-cloud beta3 intervals (module docstring).

    Strict bounds become inclusive ones with ``nextafter`` (for doubles, ``x > a`` iff
    ``x >= nextafter(a, +inf)``); the grid points inside each interval are then counted with
    ``searchsorted`` on the sorted beta3 values and a difference array.
    """
    s0, s1, s2 = s0.double(), s1.double(), s2.double()
    b2, b3 = b2.to(s0), b3.to(s0)
    order = torch.argsort(b3, stable=True)
    b3_sorted = b3[order].contiguous()
    n, k = s0.shape
    g3 = len(b3)
    rows = torch.arange(n, device=s0.device)

    def rel(s):  # label score minus every class score: [N, K]
        return s[rows, labels][:, None] - s

    e0, e1, d = rel(s0), rel(s1), rel(s2)
    cls = torch.arange(k, device=s0.device)[None, :]
    before = cls < labels[:, None]            # must be beaten strictly (argmax: first max wins)
    after = cls > labels[:, None]             # a tie is enough
    up, down, flat = (d > 0) & (before | after), (d < 0) & (before | after), d == 0
    safe_d = torch.where(flat, torch.ones_like(d), d)
    inf = torch.tensor(math.inf, dtype=s0.dtype, device=s0.device)
    table = torch.empty(len(b2), g3, dtype=torch.float64, device=s0.device)
    for start in range(0, len(b2), chunk):
        e = e0 + b2[start:start + chunk, None, None] * e1          # [c, N, K]
        bound = -e / safe_d                                        # beta3 where the lines cross
        # correct iff e + beta3 * d > 0 (classes before the label) or >= 0 (after it)
        lo = torch.where(up, torch.where(before, torch.nextafter(bound, inf), bound), -inf)
        hi = torch.where(down, torch.where(before, torch.nextafter(bound, -inf), bound), inf)
        lo, hi = lo.amax(dim=-1), hi.amin(dim=-1)                  # [c, N]
        empty = ((flat & before & (e <= 0)) | (flat & after & (e < 0))).any(dim=-1)
        lo = torch.where(empty, inf, lo)
        first = torch.searchsorted(b3_sorted, lo.contiguous())                 # b3 >= lo
        stop = torch.searchsorted(b3_sorted, hi.contiguous(), right=True)      # b3 <= hi
        stop = torch.maximum(stop, first)
        diff = torch.zeros(len(e), g3 + 1, dtype=torch.float64, device=s0.device)
        diff.scatter_add_(1, first, torch.ones_like(lo))
        diff.scatter_add_(1, stop, -torch.ones_like(hi))
        table[start:start + chunk, order] = diff.cumsum(dim=1)[:, :g3] / n
    return table


def _table_dense(s0, s1, s2, labels, b2, b3, chunk: int) -> torch.Tensor:
    """Accuracy [G2, G3] by materialising the logits of ``chunk`` beta2 values at a time."""
    b2, b3 = b2.to(s0), b3.to(s0)
    b3s2 = b3[:, None, None] * s2                                  # [G3, N, K]
    table = torch.empty(len(b2), len(b3), dtype=torch.float64, device=s0.device)
    for start in range(0, len(b2), chunk):
        base = s0 + b2[start:start + chunk, None, None] * s1       # [c, N, K]
        pred = (base[:, None] + b3s2[None]).argmax(dim=-1)         # [c, G3, N]
        table[start:start + chunk] = (pred == labels).double().mean(dim=-1)
    return table


def accuracy_table(l0: torch.Tensor, l1: torch.Tensor, l2: torch.Tensor, labels,
                   beta2_values: torch.Tensor, beta3_values: torch.Tensor,
                   view_weights: Weights = None, method: str = "envelope",
                   chunk: Optional[int] = None) -> torch.Tensor:
    """l0, l1, l2: [N, V, K], labels [N] -> accuracy [G2, G3] (fractions) at every
    (beta2, beta3). ``method``: "envelope" (fast) or "dense" (reference)."""
    l0, l1, l2, labels = _check(l0, l1, l2, labels)
    w = _weights(view_weights, l0)
    s0, s1, s2 = (weighted_view_sum(l, w) for l in (l0, l1, l2))
    b2 = torch.as_tensor(beta2_values, dtype=torch.float64).flatten()
    b3 = torch.as_tensor(beta3_values, dtype=torch.float64).flatten()
    n, k = s0.shape
    if method == "envelope":
        # ~6 float64 [c, N, K] temporaries: keep them under ~512 MB
        per_row = n * 6 * 8 * k
        return _table_envelope(s0, s1, s2, labels, b2, b3, chunk or max(1, (1 << 29) // per_row))
    if method == "dense":
        per_row = n * max(len(b3), 1) * k * 4 * 2
        return _table_dense(s0, s1, s2, labels, b2, b3, chunk or max(1, (1 << 29) // per_row))
    raise ValueError(f"unknown search method {method!r}; use 'envelope' or 'dense'")


def _best(table: torch.Tensor) -> Tuple[int, int]:
    """Row-major first maximum of a [G2, G3] table."""
    flat = int(torch.nonzero(table.flatten() == table.max())[0])
    return divmod(flat, table.shape[1])


def search_betas(l0: torch.Tensor, l1: torch.Tensor, l2: torch.Tensor, labels,
                 beta2_values=None, beta3_values=None, view_weights: Weights = None,
                 method: str = "envelope") -> SearchResult:
    """Grid-search beta2 x beta3 (default: CALIP's 200 x 200 grid) at fixed view weights.
    l0, l1, l2: [N, V, K] per-view logits; labels [N]."""
    t0 = time.perf_counter()
    b2 = beta_grid(BETA2_MAX) if beta2_values is None else torch.as_tensor(
        beta2_values, dtype=torch.float64).flatten()
    b3 = beta_grid(BETA3_MAX) if beta3_values is None else torch.as_tensor(
        beta3_values, dtype=torch.float64).flatten()
    if len(b2) == 0 or len(b3) == 0:
        raise ValueError("beta2_values and beta3_values must not be empty")
    table = accuracy_table(l0, l1, l2, labels, b2, b3, view_weights, method)
    i, j = _best(table)
    w = _weights(view_weights, l0.float())
    seconds = time.perf_counter() - t0
    log.log(_SUMMARY_LEVEL.get(), "beta search %dx%d: beta2=%.4f beta3=%.4f acc=%.4f (%.2fs)",
            len(b2), len(b3), float(b2[i]), float(b3[j]), float(table[i, j]), seconds)
    return SearchResult(beta2=float(b2[i]), beta3=float(b3[j]), view_weights=w.tolist(),
                        accuracy=float(table[i, j]), grid_shape=(len(b2), len(b3)),
                        seconds=seconds, accuracy_table=table.cpu(), beta2_values=b2,
                        beta3_values=b3)


def _combo_accuracy(per_view: torch.Tensor, labels: torch.Tensor, combos: torch.Tensor,
                    chunk: int) -> torch.Tensor:
    """per_view [N, V, K], combos [M, V] -> accuracy [M] of argmax_K sum_v w_v per_view_v."""
    out = []
    for start in range(0, len(combos), chunk):
        logits = weighted_view_sum(per_view, combos[start:start + chunk])     # [m, N, K]
        out.append((logits.argmax(dim=-1) == labels).double().mean(dim=-1))
    return torch.cat(out)


def search_view_weights(l0: torch.Tensor, l1: torch.Tensor, l2: torch.Tensor, labels,
                        beta2: float, beta3: float,
                        choices: Sequence[float] = WEIGHT_CHOICES,
                        max_combinations: int = 5000, max_sweeps: int = 5,
                        initial: Weights = None) -> SearchResult:
    """Choose one weight per view from ``choices`` at fixed betas. l*: [N, V, K].

    Exhaustive over ``choices ** V`` when that is at most ``max_combinations`` (batched);
    ties go to the first combination in the product order of the choices sorted from large
    to small (so all-ones wins among the equivalent equal-weight combinations). Otherwise
    coordinate ascent from ``initial`` (default all ones): views in order, each set to its
    best choice (a change needs a strictly better accuracy), until a sweep changes nothing
    or after ``max_sweeps`` sweeps.
    """
    t0 = time.perf_counter()
    l0, l1, l2, labels = _check(l0, l1, l2, labels)
    n, v, k = l0.shape
    per_view = combine_view_logits(l0, l1, l2, beta2, beta3)          # [N, V, K]
    opts = sorted({float(c) for c in choices}, reverse=True)
    if not opts:
        raise ValueError("choices must not be empty")
    chunk = max(1, (1 << 28) // (n * k * 4))
    if len(opts) ** v <= max_combinations:
        combos = torch.tensor(list(itertools.product(opts, repeat=v)), dtype=per_view.dtype,
                              device=per_view.device)
        acc = _combo_accuracy(per_view, labels, combos, chunk)
        best = int(torch.nonzero(acc == acc.max())[0])
        weights, accuracy = combos[best], float(acc[best])
        mode = f"exhaustive over {len(combos)}"
    else:
        weights = _weights(initial, per_view).clone()
        accuracy = float(_combo_accuracy(per_view, labels, weights[None], chunk)[0])
        for sweep in range(max_sweeps):
            changed = False
            for view in range(v):
                trials = weights.repeat(len(opts), 1)
                trials[:, view] = torch.tensor(opts, dtype=per_view.dtype, device=per_view.device)
                acc = _combo_accuracy(per_view, labels, trials, chunk)
                j = int(acc.argmax())
                if float(acc[j]) > accuracy:
                    weights, accuracy, changed = trials[j].clone(), float(acc[j]), True
            if not changed:
                break
        mode = f"coordinate ascent, {sweep + 1} sweeps"
    seconds = time.perf_counter() - t0
    log.log(_SUMMARY_LEVEL.get(), "view-weight search (%s): %s acc=%.4f (%.2fs)", mode,
            weights.tolist(), accuracy, seconds)
    return SearchResult(beta2=float(beta2), beta3=float(beta3), view_weights=weights.tolist(),
                        accuracy=accuracy, grid_shape=(1, 1), seconds=seconds)


def search(l0: torch.Tensor, l1: torch.Tensor, l2: torch.Tensor, labels,
           search_weights: bool = False, beta2_values=None, beta3_values=None,
           view_weights: Weights = None, choices: Sequence[float] = WEIGHT_CHOICES,
           method: str = "envelope") -> SearchResult:
    """Betas at ``view_weights``; with ``search_weights``, then the view weights at those
    betas, then the betas again at those weights. l*: [N, V, K]; labels [N]."""
    t0 = time.perf_counter()
    result = search_betas(l0, l1, l2, labels, beta2_values, beta3_values, view_weights, method)
    if search_weights:
        weights = search_view_weights(l0, l1, l2, labels, result.beta2, result.beta3, choices,
                                      initial=result.view_weights)
        result = search_betas(l0, l1, l2, labels, beta2_values, beta3_values,
                              weights.view_weights, method)
    result.seconds = time.perf_counter() - t0
    return result
