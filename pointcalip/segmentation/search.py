"""Tune dense CALIP's beta2, beta3 and the view weights for part segmentation
(spec/segmentation.md section 6), on gathered point logits (:class:`PointLogits`).

The objective is the instance mIoU of the tuning shapes. Betas: a coarse grid (each of beta2,
beta3 in ``COARSE`` = 0, 0.25, .., 2), then a fine grid around the best (``FINE_SPAN`` either
side in steps of ``FINE_STEP``, clipped at 0). View weights (optional) over ``WEIGHT_CHOICES``
(0.25, 0.5, 0.75, 1) at the tuned betas: every combination when there are at most
``MAX_EXHAUSTIVE`` (4 views), else coordinate ascent, one view at a time from all ones; betas (coarse and fine) and weights then alternate, up to ``ROUNDS`` rounds, until
a round no longer improves (or the mIoU is 100%). Ties keep the earlier candidate
(smaller betas, the current weight), so betas 0 win when CALIP's terms do not help. Per
category (V2) or shared by all categories: a search takes one or more groups (category).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import List, Sequence, Tuple

import numpy as np
import torch

from .metrics import shape_mious
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
    """One category's tuning shapes: their point logits and true local part ids [M, N]."""

    logits: PointLogits
    gt: torch.Tensor
    num_parts: int


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


def _terms(group: Group, weights: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    mask = group.logits.visible.float() * weights.view(1, -1, 1)
    return tuple(torch.einsum("mvn,mvnp->mnp", mask, s)
                 for s in (group.logits.s0, group.logits.s1, group.logits.s2))


def _reweighted(groups: Sequence[Group], terms, weights: torch.Tensor, trial: torch.Tensor):
    """The terms at view weights ``trial`` from those at ``weights`` (only changed views)."""
    changed = torch.nonzero(trial != weights).flatten().tolist()
    if len(changed) > len(weights) // 2:
        return [_terms(g, trial) for g in groups]
    out = []
    for g, t in zip(groups, terms):
        new = []
        for a, s in zip(t, (g.logits.s0, g.logits.s1, g.logits.s2)):
            a = a.clone()
            for v in changed:
                a += (float(trial[v]) - float(weights[v])) * \
                    g.logits.visible[:, v, :, None].to(a.dtype) * s[:, v]
            new.append(a)
        out.append(tuple(new))
    return out


def _scores(groups: Sequence[Group], terms, pairs: torch.Tensor) -> torch.Tensor:
    """Instance mIoU of ``groups`` at each (beta2, beta3) row of ``pairs`` [G, 2] -> [G]
    float64, the grid points scored together in chunks of about ``CHUNK`` logits."""
    total = torch.zeros(len(pairs), dtype=torch.float64)
    count = 0
    for g, (a0, a1, a2) in zip(groups, terms):
        m, n, p = a0.shape
        step = max(1, CHUNK // max(a0.numel(), 1))
        for s in range(0, len(pairs), step):
            b = pairs[s:s + step].to(a0.dtype)
            logits = a0 + b[:, 0, None, None, None] * a1 + b[:, 1, None, None, None] * a2
            best = logits.argmax(dim=3)                                   # [c, M, N]
            pred = torch.gather(best, 2, g.logits.source.expand_as(best))
            miou = shape_mious(pred.reshape(-1, n), g.gt.repeat(len(b), 1), g.num_parts)
            total[s:s + step] += miou.view(len(b), m).sum(dim=1)
        count += g.gt.shape[0]
    return total / max(count, 1)


def _score(groups: Sequence[Group], terms, beta2: float, beta3: float) -> float:
    return float(_scores(groups, terms, torch.tensor([[beta2, beta3]]))[0])


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


def search_segmentation(groups: Sequence[Group], search_weights: bool = True,
                        coarse: Sequence[float] = COARSE,
                        choices: Sequence[float] = WEIGHT_CHOICES, rounds: int = ROUNDS
                        ) -> SegParams:
    """The betas (and view weights) maximising the instance mIoU of ``groups``."""
    v = groups[0].logits.s0.shape[1]
    weights = torch.ones(v)
    b2, b3, score, evaluated = 0.0, 0.0, -1.0, 0
    for _ in range(rounds if search_weights else 1):
        start = score
        terms = [_terms(g, weights) for g in groups]
        score = _score(groups, terms, b2, b3)
        b2, b3, score, n = _grid(groups, terms, coarse, coarse, (b2, b3, score))
        evaluated += n + 1
        b2, b3, score, n = _grid(groups, terms, _fine(b2), _fine(b3), (b2, b3, score))
        evaluated += n
        if not search_weights:
            break
        if len(choices) ** v <= MAX_EXHAUSTIVE:     # every combination (few views)
            trials = [torch.tensor(c) for c in itertools.product(*[sorted(choices)[::-1]] * v)]
        else:                                       # one view at a time
            trials = None
        for view in range(v if trials is None else 1):
            keep = float(weights[view])
            candidates = trials if trials is not None else [
                weights.clone().index_fill_(0, torch.tensor([view]), c) for c in choices
                if c != keep]
            for trial in candidates:
                trial_terms = _reweighted(groups, terms, weights, trial)
                trial_score = _score(groups, trial_terms, b2, b3)
                evaluated += 1
                if trial_score > score + 1e-12:
                    score, weights, terms = trial_score, trial, trial_terms
        if score <= start + 1e-12 or score >= 1.0:
            break
    return SegParams(b2, b3, [float(w) for w in weights], score, evaluated)
