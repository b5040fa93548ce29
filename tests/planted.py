"""A synthetic ModelNet folder whose labels are the tiny CLIP's own CALIP predictions at known
hyper-parameters, so that the zero-shot pipeline has a signal to find (a random tiny CLIP
predicts one class for almost everything otherwise).

Labels come from an independent, literal implementation of docs/calip.md (`reference_*`
below, not the library's CALIP code) applied to the tiny ViT's features of each cloud
(PointCLIP zero-shot projector, rounded to float16 as the feature store keeps them), with
beta2 and beta3 on the tuning grid and non-uniform view weights. The class names were chosen
(once, offline) among the ModelNet40 names so that these labels use every class and differ
from the betas-0 prediction on many clouds; `check_signal` asserts that this still holds, so
a change of the tiny model fails loudly instead of weakening the tests.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pointcalip.projection import PointCLIPProjector
from pointcalip.search import beta_grid
from synthetic_data import class_clouds, write_modelnet_clouds

CLASSES = ["airplane", "bench", "cup"]
TEMPLATES = ["point cloud depth map of a {}."]
GRID = 10                                   # tune.grid of the tests
AT = (6, 7)                                 # planted beta2, beta3 as indices into the grid
WEIGHTS = [1.0, 0.25, 1.0, 0.5, 0.75, 0.25]
N_TRAIN, N_TEST = 70, 50


def planted_betas():
    return float(beta_grid(2.0, GRID)[AT[0]]), float(beta_grid(0.1, GRID)[AT[1]])


def reference_view_logits(g: torch.Tensor, s: torch.Tensor, t: torch.Tensor):
    """docs/calip.md#the-attention-per-view, one view of one cloud at a time, in float64:
    g [N, V, C], s [N, V, HW, C], t [K, C] -> l0, l1, l2 [N, V, K]."""
    g, s, t = g.double(), s.double(), t.double()
    n, v = g.shape[:2]
    out = torch.zeros(3, n, v, t.shape[0], dtype=torch.float64)
    for i in range(n):
        for j in range(v):
            fv, fs = g[i, j], s[i, j]
            a = 2 * fs @ t.T                                    # [HW, K]
            fta = torch.softmax(a, dim=0).T @ fs               # [K, C]
            fsa = torch.softmax(a, dim=1) @ t                  # [HW, C]
            fva = fsa.mean(dim=0) + fsa.max(dim=0).values      # [C]
            out[0, i, j], out[1, i, j], out[2, i, j] = 100 * fv @ t.T, 100 * fv @ fta.T, 100 * fva @ t.T
    return out[0], out[1], out[2]


def reference_logits(l0, l1, l2, beta2, beta3, weights=None) -> torch.Tensor:
    """docs/calip.md#views-to-shape-logits: [N, V, K] x 3 -> [N, K]."""
    v = l0.shape[1]
    w = torch.ones(v, dtype=torch.float64) if weights is None else torch.tensor(weights, dtype=torch.float64)
    total = sum(w[j] * (l0[:, j] + beta2 * l1[:, j] + beta3 * l2[:, j]) for j in range(v))
    return total / math.sqrt(v)


def accuracy_range(logits: torch.Tensor, labels, margin: float = 1e-3):
    """(lowest, highest) top-1 in percent when predictions whose top-2 margin is below
    ``margin`` may go either way (float16 vs float64 rounding)."""
    labels = torch.as_tensor(np.asarray(labels))
    top2 = logits.topk(2).values
    sure = (top2[:, 0] - top2[:, 1]) > margin
    right = logits.argmax(-1) == labels
    n = len(labels)
    return 100.0 * (right & sure).sum().item() / n, 100.0 * (right | ~sure).sum().item() / n


@dataclass
class Planted:
    root: Path                       # the ModelNet folder
    points: dict                     # split -> clouds [n, 1024, 3]
    labels: dict                     # split -> labels [n]
    view_logits: dict                # split -> (l0, l1, l2) [n, 6, K] reference, float64

    def logits(self, split, beta2, beta3, weights=None, rows=None):
        l0, l1, l2 = self.view_logits[split]
        if rows is not None:
            l0, l1, l2 = l0[rows], l1[rows], l2[rows]
        return reference_logits(l0, l1, l2, beta2, beta3, weights)


def write_planted(folder: Path, backbone) -> Planted:
    """Write the planted ModelNet folder under ``folder`` (see the module doc)."""
    rng = np.random.default_rng(0)
    shapes = rng.integers(0, 12, N_TRAIN + N_TEST)       # ellipsoid families, not the labels
    clouds = class_clouds(shapes, 1024, rng)
    projector = PointCLIPProjector()
    with torch.no_grad():
        g, s = backbone.encode_images(projector(torch.from_numpy(clouds)).flatten(0, 1))
    n, v = len(clouds), projector.num_views
    g = g.half().double().view(n, v, -1)
    s = s.half().double().view(n, v, s.shape[1], -1)
    text = backbone.encode_text(CLASSES, TEMPLATES)
    l0, l1, l2 = reference_view_logits(g, s, text)
    labels = reference_logits(l0, l1, l2, *planted_betas(), WEIGHTS).argmax(-1).numpy()
    split_rows = {"train": np.arange(N_TRAIN), "test": np.arange(N_TRAIN, n)}
    root = write_modelnet_clouds(folder / "planted_modelnet", CLASSES,
                                 {k: (clouds[r], labels[r]) for k, r in split_rows.items()})
    return Planted(root, {k: torch.from_numpy(clouds[r]) for k, r in split_rows.items()},
                   {k: labels[r] for k, r in split_rows.items()},
                   {k: (l0[r], l1[r], l2[r]) for k, r in split_rows.items()})


def check_signal(p: Planted) -> None:
    """The planted labels must make the tests able to fail (see the module doc)."""
    b2, b3 = planted_betas()
    for split in ("train", "test"):
        counts = np.bincount(p.labels[split], minlength=len(CLASSES))
        assert counts.min() >= 5, f"planted {split} labels do not use every class: {counts}"
        plain = p.logits(split, 0.0, 0.0).argmax(-1).numpy()
        assert (plain != p.labels[split]).mean() > 0.2, "PointCLIP alone already finds the labels"
        uniform = p.logits(split, b2, b3).argmax(-1).numpy()
        assert (uniform != p.labels[split]).mean() > 0.1, "the planted view weights do not matter"
