"""Part-segmentation metrics (docs/segmentation.md#metrics).

Per shape, for each part p of its category: ``IoU_p = |pred = p and gt = p| / |pred = p or
gt = p|``, counted as 1 when the union is empty; the shape's mIoU is their mean. Instance
mIoU: the mean over shapes; class mIoU: the mean over categories of their shapes' mean.
Per category also the point accuracy and the part confusion matrix (true part x predicted
part, point counts over its shapes), from the same cells as the IoU. Everything is vectorised
over shapes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence

import numpy as np
import torch


def confusion_cells(gt: torch.Tensor, num_parts: int) -> torch.Tensor:
    """gt [M, N] local part indices -> [M, N] long ``shape * K^2 + gt`` (K = num_parts + 1;
    values outside 0 .. num_parts - 1 go to the extra bin K - 1). Adding ``K * pred`` (pred
    mapped alike) gives each point's (shape, predicted, true) cell for :func:`cell_ious`."""
    gt = torch.as_tensor(gt).long()
    k = num_parts + 1
    g = torch.where((gt >= 0) & (gt < num_parts), gt, num_parts)
    return torch.arange(gt.shape[0]).view(-1, 1) * (k * k) + g


def cell_ious(cells: torch.Tensor, shapes: int, num_parts: int) -> torch.Tensor:
    """Cells of ``shapes`` shapes (:func:`confusion_cells`) -> IoU [shapes, num_parts] float64:
    one integer count per cell (``bincount``), intersections on the diagonal, unions from the
    row and column sums; 1 where the union is empty."""
    k = num_parts + 1
    counts = torch.bincount(cells.flatten(), minlength=shapes * k * k).view(shapes, k, k)
    inter = torch.diagonal(counts, dim1=1, dim2=2)[:, :num_parts].double()
    union = (counts.sum(dim=2)[:, :num_parts] + counts.sum(dim=1)[:, :num_parts]).double() - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def point_cells(pred: torch.Tensor, gt: torch.Tensor, num_parts: int) -> torch.Tensor:
    """pred, gt [M, N] local part indices -> [M, N] each point's (shape, predicted, true) cell
    (:func:`confusion_cells` plus ``K * pred``, pred outside the parts in the extra bin)."""
    pred = torch.as_tensor(pred).long()
    p = torch.where((pred >= 0) & (pred < num_parts), pred, num_parts)
    return confusion_cells(gt, num_parts) + (num_parts + 1) * p


def cell_confusion(cells: torch.Tensor, num_parts: int) -> np.ndarray:
    """Cells (:func:`point_cells`) -> [num_parts, num_parts] int64 point counts summed over
    the shapes: row = true part, column = predicted part. Points whose true or predicted
    part is outside 0 .. num_parts - 1 (the extra bin; none in ShapeNetPart) are left out."""
    k = num_parts + 1
    counts = torch.bincount((cells % (k * k)).flatten(), minlength=k * k).view(k, k)  # [pred, true]
    return counts[:num_parts, :num_parts].T.contiguous().numpy().astype(np.int64)


def shape_ious(pred: torch.Tensor, gt: torch.Tensor, num_parts: int) -> torch.Tensor:
    """pred, gt [M, N] local part indices (0 .. num_parts - 1; anything else matches no
    part) -> IoU [M, num_parts] float64, 1 where the union is empty."""
    return cell_ious(point_cells(pred, gt, num_parts), torch.as_tensor(pred).shape[0], num_parts)


def shape_mious(pred: torch.Tensor, gt: torch.Tensor, num_parts: int) -> torch.Tensor:
    """[M, N], [M, N] local part indices -> [M] per-shape mIoU (mean over the parts)."""
    return shape_ious(pred, gt, num_parts).mean(dim=1)


@dataclass
class CategoryScore:
    shapes: int
    miou: float          # mean of its shapes' mIoU
    accuracy: float      # point accuracy over its shapes
    #: [P, P] point counts over its shapes: row = true part, column = predicted part
    confusion: Optional[np.ndarray] = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {"shapes": self.shapes, "miou": self.miou, "accuracy": self.accuracy}


@dataclass
class SegmentationScores:
    """``instance``: mean shape mIoU; ``class_``: mean over categories present;
    ``categories``: per-category scores; ``accuracy``: overall point accuracy."""

    instance: float
    class_: float
    accuracy: float
    categories: Dict[str, CategoryScore] = field(default_factory=dict)
    shape_miou: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def to_dict(self) -> dict:
        return {"instance": self.instance, "class": self.class_, "accuracy": self.accuracy,
                "categories": {k: v.to_dict() for k, v in self.categories.items()}}


def segmentation_scores(pred, gt, categories, category_names: Sequence[str],
                        offsets: Sequence[int], counts: Sequence[int]) -> SegmentationScores:
    """pred, gt [M, N] GLOBAL part ids; categories [M] category ids; ``offsets`` / ``counts``:
    each category's first global part id and number of parts."""
    pred, gt = torch.as_tensor(np.asarray(pred)).long(), torch.as_tensor(np.asarray(gt)).long()
    cats = np.asarray(categories, dtype=np.int64)
    if pred.shape != gt.shape or pred.shape[0] != cats.shape[0]:
        raise ValueError(f"segmentation_scores: pred {tuple(pred.shape)}, gt {tuple(gt.shape)} "
                         f"and categories {cats.shape} do not match")
    miou = np.zeros(len(cats))
    per_cat = {}
    for c in np.unique(cats):
        rows = torch.from_numpy(np.flatnonzero(cats == c))
        off, k = int(offsets[c]), int(counts[c])
        cells = point_cells(pred[rows] - off, gt[rows] - off, k)     # IoU and confusion alike
        m = cell_ious(cells, len(rows), k).mean(dim=1).numpy()
        miou[rows.numpy()] = m
        acc = float((pred[rows] == gt[rows]).double().mean())
        per_cat[category_names[c]] = CategoryScore(len(rows), float(m.mean()), acc,
                                                   cell_confusion(cells, k))
    return SegmentationScores(
        instance=float(miou.mean()) if len(cats) else float("nan"),
        class_=float(np.mean([s.miou for s in per_cat.values()])) if per_cat else float("nan"),
        accuracy=float((pred == gt).double().mean()) if len(cats) else float("nan"),
        categories=per_cat, shape_miou=miou)
