"""Tune dense CALIP's beta2, beta3 and the view weights for part segmentation
(docs/segmentation.md#search), on gathered point logits (:class:`PointLogits`).

The objective is the instance mIoU of the tuning shapes. Betas: a coarse grid (each of beta2,
beta3 in ``COARSE`` = 0, 0.25, .., 2), then a fine grid around the best (``FINE_SPAN`` either
side in steps of ``FINE_STEP``, clipped at 0). View weights (optional) over ``WEIGHT_CHOICES``
(0.25, 0.5, 0.75, 1) at the tuned betas: every combination when there are at most
``MAX_EXHAUSTIVE`` (4 views), else coordinate ascent, one view at a time from all ones;
betas (coarse and fine) and weights then alternate, up to ``ROUNDS`` rounds, until a round
no longer improves (or the mIoU is 100%). Ties keep the earlier candidate (smaller betas,
the current weight), so betas 0 win when CALIP's terms do not help. Per category (V2) or
shared by all categories: a search takes one or more groups (category).

Speed: candidates (grid points, weight trials) are scored in batches of about ``CHUNK``
logits, each shape's IoUs from one integer ``bincount`` (:func:`.metrics.shape_ious`); a
weight trial's logits are the current ones plus the changed views' terms.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import List, Sequence, Tuple

import numpy as np
import torch

from .metrics import cell_ious, confusion_cells
from .points import PointLogits

COARSE = tuple(np.round(np.arange(0, 2.0001, 0.25), 4).tolist())
FINE_STEP = 0.05
FINE_SPAN = 0.25
WEIGHT_CHOICES = (0.25, 0.5, 0.75, 1.0)
ROUNDS = 4
#: view weights are searched exhaustively when there are at most this many combinations
MAX_EXHAUSTIVE = 256
#: logits per chunk when many grid points are scored at once
CHUNK = 1 << 23


@dataclass
class Group:
    """One category's tuning shapes: their point logits and true local part ids [M, N]
    (``cells``: their :func:`.metrics.confusion_cells`, made once)."""

    logits: PointLogits
    gt: torch.Tensor
    num_parts: int
    cells: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.cells = confusion_cells(self.gt, self.num_parts)


@dataclass
class SegParams:
    beta2: float = 0.0
    beta3: float = 0.0
    view_weights: List[float] = field(default_factory=list)
    miou: float = float("nan")          # instance mIoU on the tuning shapes at these values
    evaluated: int = 0                  # candidates scored

    def to_dict(self) -> dict:
        return {"beta2": self.beta2, "beta3": self.beta3, "view_weights": self.view_weights,
                "tune_miou": self.miou, "evaluated": self.evaluated}


def _terms(group: Group, weights: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """The three terms summed over the views at ``weights`` [V]: S0 [M, N, P] and S1, S2
    stacked [2, M N P] (so that a batch of betas is one matrix product)."""
    mask = group.logits.visible.float() * weights.view(1, -1, 1)
    a0, a1, a2 = (torch.einsum("mvn,mvnp->mnp", mask, s)
                  for s in (group.logits.s0, group.logits.s1, group.logits.s2))
    return a0, torch.stack([a1.flatten(), a2.flatten()])


def _miou_sums(group: Group, logits: torch.Tensor) -> torch.Tensor:
    """logits [c, M, N, P] of c candidates -> [c] float64: the sum of the shapes' mIoU of
    each candidate's prediction (argmax, then the nearest-visible fallback)."""
    c, m, n, _ = logits.shape
    k = group.num_parts + 1
    best = logits.argmax(dim=3)                                           # [c, M, N]
    cells = torch.gather(best, 2, group.logits.source.expand_as(best)).mul_(k)
    cells += group.cells + torch.arange(c).view(c, 1, 1) * (m * k * k)    # candidate = shapes
    return cell_ious(cells, c * m, group.num_parts).mean(dim=1).view(c, m).sum(dim=1)


def _chunks(total: int, per_candidate: int):
    """Slices of ``total`` candidates, each slice about ``CHUNK`` logits."""
    step = max(1, CHUNK // max(per_candidate, 1))
    return (slice(s, s + step) for s in range(0, total, step))


def _scores(groups: Sequence[Group], terms, pairs: torch.Tensor) -> torch.Tensor:
    """Instance mIoU of ``groups`` at each (beta2, beta3) row of ``pairs`` [G, 2] -> [G]
    float64, ``terms`` (:func:`_terms`) at the current view weights."""
    total = torch.zeros(len(pairs), dtype=torch.float64)
    for g, (a0, a12) in zip(groups, terms):
        for part in _chunks(len(pairs), a0.numel()):
            b = pairs[part].to(a0.dtype)
            total[part] += _miou_sums(g, (b @ a12).view(len(b), *a0.shape).add_(a0))
    return total / sum(g.gt.shape[0] for g in groups)


def _score(groups: Sequence[Group], terms, beta2: float, beta3: float) -> float:
    return float(_scores(groups, terms, torch.tensor([[beta2, beta3]]))[0])


def _view_terms(group: Group, beta2: float, beta3: float) -> torch.Tensor:
    """[V, M, N, P]: each view's ``visible_v (S0 + beta2 S1 + beta3 S2)``."""
    lg = group.logits
    return (lg.visible.unsqueeze(3) * (lg.s0 + beta2 * lg.s1 + beta3 * lg.s2)).transpose(0, 1)


def _weight_scores(groups: Sequence[Group], view_terms, weights: torch.Tensor,
                   trials: torch.Tensor) -> torch.Tensor:
    """Instance mIoU of ``groups`` for each row of view weights ``trials`` [T, V] -> [T]
    float64, ``view_terms`` (:func:`_view_terms`) at the current betas: a trial's logits are
    those at ``weights`` plus ``sum_u (trial_u - weights_u) C_u`` over the views it changes."""
    delta = trials - weights
    changed = torch.nonzero(delta.abs().sum(dim=0)).flatten()
    total = torch.zeros(len(trials), dtype=torch.float64)
    for g, per_view in zip(groups, view_terms):
        base = torch.einsum("v,vmnp->mnp", weights, per_view)
        moved = per_view[changed]
        for part in _chunks(len(trials), base.numel()):
            total[part] += _miou_sums(g, base + torch.einsum("tu,umnp->tmnp",
                                                             delta[part][:, changed], moved))
    return total / sum(g.gt.shape[0] for g in groups)


def _grid(groups, terms, b2s, b3s, start: Tuple[float, float, float]
          ) -> Tuple[float, float, float, int]:
    """Best (beta2, beta3, score) over the grid (beta2 outer, beta3 inner; the first best
    wins), kept at ``start`` unless beaten; also the number of grid points scored."""
    pairs = torch.tensor([[b2, b3] for b2 in b2s for b3 in b3s], dtype=torch.float64)
    scores = _scores(groups, terms, pairs)
    k = int(torch.argmax(scores))          # first maximum
    if float(scores[k]) > start[2] + 1e-12:
        return float(pairs[k, 0]), float(pairs[k, 1]), float(scores[k]), len(pairs)
    return (*start, len(pairs))


def _fine(center: float) -> List[float]:
    steps = np.round(np.arange(-FINE_SPAN, FINE_SPAN + 1e-9, FINE_STEP), 6)
    return sorted({round(max(0.0, center + s), 6) for s in steps})


def beta_surface(groups: Sequence[Group], grid: Sequence[float] = COARSE) -> np.ndarray:
    """[G, G] instance mIoU of ``groups`` (all their shapes) at every (beta2, beta3) of
    ``grid`` x ``grid`` (beta2 rows), equal view weights: what the coarse search sees."""
    pairs = torch.tensor([[b2, b3] for b2 in grid for b3 in grid], dtype=torch.float64)
    total = torch.zeros(len(pairs), dtype=torch.float64)
    for g in groups:
        ones = torch.ones(g.logits.s0.shape[1])
        total += _scores([g], [_terms(g, ones)], pairs) * g.gt.shape[0]
    return (total / sum(g.gt.shape[0] for g in groups)).view(len(grid), len(grid)).numpy()


def search_segmentation(groups: Sequence[Group], search_weights: bool = True,
                        coarse: Sequence[float] = COARSE,
                        choices: Sequence[float] = WEIGHT_CHOICES, rounds: int = ROUNDS,
                        terms: Sequence[str] = ("s1", "s2")) -> SegParams:
    """The betas (and view weights) maximising the instance mIoU of ``groups``; ``terms``:
    which of CALIP's terms the search may turn on (``s1``: beta2, ``s2``: beta3; the other
    beta stays 0)."""
    v = groups[0].logits.s0.shape[1]
    use = set(terms)
    weights = torch.ones(v)
    b2, b3, score, evaluated = 0.0, 0.0, -1.0, 0
    for _ in range(rounds if search_weights else 1):
        start = score
        terms = [_terms(g, weights) for g in groups]
        score = _score(groups, terms, b2, b3)
        g2 = coarse if "s1" in use else [0.0]
        g3 = coarse if "s2" in use else [0.0]
        b2, b3, score, n = _grid(groups, terms, g2, g3, (b2, b3, score))
        evaluated += n + 1
        b2, b3, score, n = _grid(groups, terms, _fine(b2) if "s1" in use else [0.0],
                                 _fine(b3) if "s2" in use else [0.0], (b2, b3, score))
        evaluated += n
        if not search_weights:
            break
        if len(choices) ** v <= MAX_EXHAUSTIVE:     # every combination (few views)
            trials = [torch.tensor(c) for c in itertools.product(*[sorted(choices)[::-1]] * v)]
        else:                                       # one view at a time
            trials = None
        view_terms = [_view_terms(g, b2, b3) for g in groups]
        for view in range(v if trials is None else 1):
            candidates = trials if trials is not None else [
                weights.clone().index_fill_(0, torch.tensor([view]), c) for c in choices
                if c != float(weights[view])]
            scores = _weight_scores(groups, view_terms, weights, torch.stack(candidates))
            evaluated += len(candidates)
            for trial, trial_score in zip(candidates, scores.tolist()):   # in order, as a loop
                if trial_score > score + 1e-12:
                    score, weights = trial_score, trial
        if score <= start + 1e-12 or score >= 1.0:
            break
    return SegParams(b2, b3, [float(w) for w in weights], score, evaluated)
