"""A planted shift for the online test-time cache, on real clouds and the tiny CLIP: per class
an anchor (a cloud CALIP gets right, by its widest margin) and a shifted copy (the anchor plus
seeded noise: of 32 draws, the one CALIP gets wrong by the smallest margin above 0.05, so
float16 rounding in the feature store cannot flip it). A set holds its label's anchor in each
row or, for a seeded ``share`` of the rows of a class with a shifted copy, that copy.

Zero-shot CALIP gets exactly the anchor rows right; the shifted copies' features sit next to
their anchors', which a cache fills the right class with, so an online cache must repair them.
``model`` is PointCALIP at the betas and view weights of the run that will stream the set.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
import torch

SCALES = (0.02, 0.04, 0.06, 0.08)
DRAWS = 8
MARGIN = 0.05


def anchors_and_shifts(model, labels: np.ndarray, clouds: np.ndarray, seed: int = 1
                       ) -> Tuple[dict, dict]:
    """({class: anchor cloud}, {class: shifted copy}) for the classes that have them."""
    with torch.no_grad():
        z = model(torch.from_numpy(clouds)).double()
    rng = np.random.default_rng(seed)
    anchors, shifted = {}, {}
    for y in np.unique(labels).tolist():
        right = np.flatnonzero((labels == y) & (z.argmax(-1).numpy() == y))
        if right.size == 0:
            continue
        top2 = z[right].topk(2).values
        anchors[y] = clouds[right[int((top2[:, 0] - top2[:, 1]).argmax())]]
        draws = np.stack([anchors[y] + rng.normal(scale=sc, size=anchors[y].shape)
                          for sc in SCALES for _ in range(DRAWS)]).astype(np.float32)
        with torch.no_grad():
            zz = model(torch.from_numpy(draws)).double()
        wrong = zz.max(-1).values - zz[:, y]
        wrong[(zz.argmax(-1) == y) | (wrong < MARGIN)] = float("inf")
        if torch.isfinite(wrong.min()):
            shifted[y] = draws[int(wrong.argmin())]
    return anchors, shifted


def shifted_set(anchors: dict, shifted: dict, labels: np.ndarray, share: float, seed: int = 2
                ) -> Tuple[np.ndarray, np.ndarray]:
    """(clouds [n, P, 3] float32, moved [n] bool: the rows holding a shifted copy)."""
    if not set(labels.tolist()) <= set(anchors):
        raise ValueError("every class needs an anchor CALIP gets right")
    moved = (np.random.default_rng(seed).random(len(labels)) < share) & np.isin(labels, list(shifted))
    clouds = np.stack([shifted[y] if m else anchors[y] for y, m in zip(labels.tolist(), moved)])
    return clouds.astype(np.float32), moved
