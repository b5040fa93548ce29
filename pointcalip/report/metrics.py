"""Accuracy of shape logits against labels: top-1 overall and per class, the mean class
accuracy (mAcc, what ModelNet40 and ScanObjectNN tables give beside top-1), top-3 and top-5
overall (in percent), and the confusion matrix."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np
import torch
from ..core.words import count


@dataclass
class Accuracy:
    """``top1`` in percent; ``per_class[k]`` in percent (None for a class with no sample);
    ``counts[k]`` samples of class k; ``top3`` / ``top5``: the share of samples whose label is
    among the 3 / 5 highest logits (every class when there are fewer; None when not measured)."""

    top1: float
    per_class: List[Optional[float]]
    counts: List[int]
    top3: Optional[float] = None
    top5: Optional[float] = None
    #: [K, K] sample counts: row = true class, column = predicted class (None: not measured)
    confusion: Optional[np.ndarray] = field(default=None, repr=False, compare=False)

    def topk(self) -> dict:
        """``{"top1": .., "macc": .., "top3": .., "top5": ..}`` in percent (``macc``: the
        mean class accuracy)."""
        return {"top1": self.top1, "macc": self.mean_per_class, "top3": self.top3,
                "top5": self.top5}

    @property
    def mean_per_class(self) -> float:
        """Mean of the per-class accuracies (classes with samples only)."""
        present = [a for a in self.per_class if a is not None]
        return float(np.mean(present)) if present else float("nan")


def accuracy(logits: torch.Tensor, labels: Sequence[int], num_classes: Optional[int] = None
             ) -> Accuracy:
    """logits [N, K], labels [N] -> :class:`Accuracy` of the argmax predictions."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if logits.dim() != 2 or logits.shape[0] != len(labels):
        raise ValueError(f"accuracy expects logits [N, K] and N labels; got logits "
                         f"{tuple(logits.shape)} and {count(len(labels), 'label')}")
    if len(labels) == 0:
        raise ValueError("accuracy of an empty set is undefined")
    k = logits.shape[1] if num_classes is None else num_classes
    pred = logits.argmax(-1).cpu().numpy()
    hit = pred == labels
    counts = np.bincount(labels, minlength=k)[:k]
    per_class = [float(hit[labels == c].mean() * 100.0) if counts[c] else None for c in range(k)]
    confusion = np.bincount(labels * k + np.clip(pred, 0, k - 1), minlength=k * k)[:k * k]
    return Accuracy(top1=float(hit.mean() * 100.0), per_class=per_class,
                    counts=[int(c) for c in counts],
                    top3=topk_accuracy(logits, labels, 3, hit),
                    top5=topk_accuracy(logits, labels, 5, hit),
                    confusion=confusion.reshape(k, k))


def topk_accuracy(logits: torch.Tensor, labels: np.ndarray, k: int,
                  top1_hit: Optional[np.ndarray] = None) -> float:
    """logits [N, K], labels [N] -> percent of samples whose label is among the ``k`` highest
    logits (all K when K < k). ``top1_hit`` [N] (the argmax hits) counts as hits too, so
    that ties never make top-k lower than top-1."""
    k = min(int(k), logits.shape[1])
    top = logits.topk(k, dim=-1).indices.cpu().numpy()
    hit = (top == np.asarray(labels, dtype=np.int64)[:, None]).any(axis=1)
    if top1_hit is not None:
        hit |= top1_hit
    return float(hit.mean() * 100.0)
