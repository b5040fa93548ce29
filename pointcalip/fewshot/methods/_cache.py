"""The stage Tip-Adapter and Tip-Adapter-F share: a cache of the shots over a zero-shot base,
and its (alpha, beta) search on validation (fewshot/tip_cache.py holds the cache itself)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np
import torch

from ...report.metrics import Accuracy, accuracy
from ..tip_cache import TipCache, default_grids, descriptors, search_alpha_beta


@dataclass
class CacheInputs:
    """One (shots, seed) over zero-shot ``base`` logits: the shots' descriptors ``keys`` [S, D]
    and ``labels`` [S]; descriptors [N, D] and base logits [N, K] of validation and TEST with
    their labels; the (alpha, beta) grids searched; the shots' TRAIN ``rows``."""

    base: str
    rows: np.ndarray
    keys: torch.Tensor
    labels: torch.Tensor
    val: torch.Tensor
    val_base: torch.Tensor
    val_labels: torch.Tensor
    test: torch.Tensor
    test_base: torch.Tensor
    test_labels: np.ndarray
    alphas: torch.Tensor
    betas: torch.Tensor


def cache_inputs(prepared, base: str, k: int, seed: int) -> CacheInputs:
    """The shots of (``k``, ``seed``) and what the search and evaluation read, over ``base``
    ("calip" or "pointclip"); the grids are the ``tip`` section's."""
    zero, splits = prepared.zero, prepared.splits
    rows = splits.shots(k, seed)
    weights = zero.weights(base)
    shots, val = prepared.features.of_train(rows), prepared.val
    t = prepared.cfg.tip
    alphas, betas = default_grids(zero.num_views, t.alpha_max, t.alpha_steps, t.beta_max, t.beta_steps,
                                  view_weights=weights)
    return CacheInputs(base, rows, descriptors(shots.global_, weights), shots.labels,
                       descriptors(val.global_, weights), zero.logits(base, zero.of(splits.val)),
                       val.labels, descriptors(prepared.test.global_, weights),
                       zero.logits(base, zero.test), zero.test.labels, alphas, betas)


def search(cache: TipCache, x: CacheInputs) -> Tuple[float, float]:
    """The (alpha, beta) best on validation (:func:`search_alpha_beta`)."""
    device = cache.values.device
    alpha, beta, _ = search_alpha_beta(cache, x.val.to(device), x.val_base.to(device),
                                       x.val_labels, x.alphas, x.betas)
    return alpha, beta


def accuracies(cache: TipCache, x: CacheInputs, alpha: float, beta: float) -> Tuple[float, Accuracy]:
    """-> (validation top-1 in percent, TEST's :class:`Accuracy`) at (alpha, beta)."""
    device = cache.values.device
    with torch.no_grad():
        val = accuracy(cache.logits(x.val.to(device), x.val_base.to(device), alpha, beta), x.val_labels)
        test = accuracy(cache.logits(x.test.to(device), x.test_base.to(device), alpha, beta), x.test_labels)
    return val.top1, test
