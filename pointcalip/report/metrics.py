"""Accuracy of shape logits against labels: top-1 overall and per class (in percent)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np
import torch


@dataclass
class Accuracy:
    """``top1`` in percent; ``per_class[k]`` in percent (None for a class with no sample);
    ``counts[k]`` samples of class k."""

    top1: float
    per_class: List[Optional[float]]
    counts: List[int]

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
                         f"{tuple(logits.shape)} and {len(labels)} labels")
    if len(labels) == 0:
        raise ValueError("accuracy of an empty set is undefined")
    k = logits.shape[1] if num_classes is None else num_classes
    pred = logits.argmax(-1).cpu().numpy()
    hit = pred == labels
    counts = np.bincount(labels, minlength=k)[:k]
    per_class = [float(hit[labels == c].mean() * 100.0) if counts[c] else None for c in range(k)]
    return Accuracy(top1=float(hit.mean() * 100.0), per_class=per_class,
                    counts=[int(c) for c in counts])
