"""A ModelNet folder for the ablation tests, labelled so that the studies have winners to find.

The clouds are those of tests/planted.py (so the tiny ViT's reference per-view logits are
already known); the labels are the tiny ViT's own CALIP predictions (tests/planted.py's
literal implementation of docs/calip.md) from VIEWS only, at the grid point AT, with uniform
weights and PointCLIP's template. So:

- views study: the subset VIEWS must come out on top (chosen by tuning accuracy, best on test);
- terms study (on VIEWS): CALIP must beat CLIP alone (l0);
- weights study: weights searched on validation must beat uniform weights on test;
- prompts study: PointCLIP's template (the one the labels used) must beat the others;
- projectors / backbones: the PointCLIP projector and the tiny ViT (the labels' source) win.

`check_signal` asserts the preconditions, so a change of the tiny model fails loudly here.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

import planted as P
from pointcalip.search import beta_grid
from synthetic_data import write_modelnet_clouds

VIEWS = (0, 3)
AT = (9, 0)                  # beta2, beta3 as indices into the tests' grid (tune.grid=P.GRID)
VAL_FRACTION = 0.8


def betas():
    return float(beta_grid(2.0, P.GRID)[AT[0]]), float(beta_grid(0.1, P.GRID)[AT[1]])


@dataclass
class ViewPlanted:
    root: Path
    labels: dict                 # split -> [n]
    view_logits: dict            # split -> (l0, l1, l2) [n, 6, K] float64 reference


def write_view_planted(folder: Path, base: P.Planted) -> ViewPlanted:
    """Relabel ``base``'s clouds with the CALIP prediction from VIEWS (see the module doc)."""
    labels = {}
    for split, (l0, l1, l2) in base.view_logits.items():
        v = list(VIEWS)
        labels[split] = P.reference_logits(l0[:, v], l1[:, v], l2[:, v], *betas()).argmax(-1).numpy()
    root = write_modelnet_clouds(folder / "view_planted_modelnet", P.CLASSES,
                                 {s: (base.points[s].numpy(), labels[s]) for s in labels})
    return ViewPlanted(root, labels, base.view_logits)


def check_signal(p: ViewPlanted) -> None:
    for split in ("train", "test"):
        counts = np.bincount(p.labels[split], minlength=len(P.CLASSES))
        assert counts.min() >= 5, f"view-planted {split} labels do not use every class: {counts}"
        l0, l1, l2 = p.view_logits[split]
        v = list(VIEWS)
        plain = P.reference_logits(l0[:, v], l1[:, v], l2[:, v], 0.0, 0.0).argmax(-1).numpy()
        assert (plain != p.labels[split]).mean() > 0.2, "CLIP alone already finds the labels"
        every = P.reference_logits(l0, l1, l2, *betas()).argmax(-1).numpy()
        assert (every != p.labels[split]).mean() > 0.2, "all six views already find the labels"


def reference_accuracy(p: ViewPlanted, split: str, views, beta2: float, beta3: float,
                       weights=None) -> tuple:
    """(lowest, highest) top-1 in percent of the reference logits (float16 rounding margin)."""
    l0, l1, l2 = (x[:, list(views)] for x in p.view_logits[split])
    return P.accuracy_range(P.reference_logits(l0, l1, l2, beta2, beta3, weights),
                            p.labels[split])



# ------------------------------------------------------------------------- part segmentation
#: the segmentation plant: its categories, points per shape, the projector and part template
#: the labels come from, and dense CALIP's betas there (equal view weights)
SEG_CATEGORIES = ["chair", "lamp", "motorbike"]
SEG_POINTS = 64
SEG_PROJECTOR = {"name": "pointclip", "views": [0, 1, 2, 3]}
SEG_TEMPLATE = "a depth map of the {part} of a {category}."
SEG_BETAS = (1.0, 0.5)


def write_seg_planted(folder: Path, backbone) -> Path:
    """A ShapeNetPart folder (tests/synthetic_shapenetpart.py) whose VAL and TEST part labels
    are the tiny model's own dense CALIP parts (`segment_cloud`, the one-file segmentation) at
    SEG_BETAS with equal view weights, so dense CALIP's terms are what recovers them."""
    import h5py

    from pointcalip.config import ProjectorConfig
    from pointcalip.datasets.shapenetpart import PART_OFFSETS, ShapeNetPart
    from pointcalip.segmentation.run import segment_cloud
    from synthetic_shapenetpart import write_shapenetpart

    root = write_shapenetpart(folder, {"train": 6, "val": 18, "test": 18}, num_points=SEG_POINTS,
                              categories=SEG_CATEGORIES, seed=3)
    projector = ProjectorConfig.from_mapping(SEG_PROJECTOR).build()
    for split in ("val", "test"):
        ds = ShapeNetPart(root, split, num_points=SEG_POINTS, categories=SEG_CATEGORIES)
        with h5py.File(root / f"ply_data_{split}0.h5", "r+") as h5:
            pid = h5["pid"][...]
            for row, (index, c) in enumerate(zip(ds.index, ds.labels)):
                name = ds.classnames[c]
                seg = segment_cloud(ds.points([row])[0], name, ds.parts[name], backbone,
                                    projector, [SEG_TEMPLATE], *SEG_BETAS)
                pid[index, :SEG_POINTS] = seg.labels + PART_OFFSETS[c]
            h5["pid"][...] = pid
    return root


def seg_clip_agreement(root: Path, backbone) -> float:
    """Share of planted TEST points that dense CLIP (betas 0) already labels right."""
    from pointcalip.config import ProjectorConfig
    from pointcalip.datasets.shapenetpart import PART_OFFSETS, ShapeNetPart
    from pointcalip.segmentation.run import segment_cloud

    projector = ProjectorConfig.from_mapping(SEG_PROJECTOR).build()
    ds = ShapeNetPart(root, "test", num_points=SEG_POINTS, categories=SEG_CATEGORIES)
    right = []
    for row, c in enumerate(ds.labels):
        name = ds.classnames[c]
        seg = segment_cloud(ds.points([row])[0], name, ds.parts[name], backbone, projector,
                            [SEG_TEMPLATE])
        right.append(seg.labels + PART_OFFSETS[c] == ds.pid[row])
    return float(np.mean(right))
