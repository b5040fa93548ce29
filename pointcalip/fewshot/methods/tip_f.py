"""Tip-Adapter-F: Tip-Adapter's cache keys trained on the shots, then alpha and beta searched
again on validation (fewshot/tip_cache.py)."""
from __future__ import annotations

import typing
from dataclasses import dataclass, field

from ...config import Section
from ..recipe import TrainConfig
from . import METHODS


@dataclass
class TipFConfig(Section):
    """Tip-Adapter-F: the cache keys trained (published: AdamW lr 1e-3, cosine, 20 epochs,
    plain cross-entropy), alpha and beta searched on validation (the ``tip`` section's grids)
    after training."""

    base: typing.Literal["pointclip", "calip"] = "calip"
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=20, batch_size=256, optimizer="adamw", lr=1e-3, weight_decay=0.01,
        label_smoothing=0.0))


@METHODS.register("tip_f", section=TipFConfig, trains=True, augmented=False, order=2)
def run(prepared, k: int, seed: int):
    """-> the row of Tip-Adapter-F at ``k`` shots drawn with ``seed``: the keys trained with
    the (alpha, beta) found for the fixed cache, then (alpha, beta) searched again. The cache
    is built from the shots themselves (no augmented copies)."""
    import torch

    from ..stages import Outcome
    from ..tip_cache import TipCache, train_tip_f
    from ._cache import accuracies, cache_inputs, search

    cfg, zero = prepared.cfg.tip_f, prepared.zero
    x = cache_inputs(prepared, cfg.base, k, seed)
    cache = TipCache(x.keys, x.labels, zero.num_classes, learnable=True).to(prepared.device)
    alpha, beta = search(cache, x)
    base_train = zero.logits(cfg.base, zero.of(x.rows))
    # Tip-Adapter-F's own objective and optimiser (fewshot/tip_cache.py, checked against the official code)
    fitted = train_tip_f(cache, x.keys, base_train, x.labels, x.val, x.val_base, x.val_labels, alpha, beta,
                         zero.weights(cfg.base), zero.num_views, cfg.train, torch.Generator().manual_seed(seed),
                         prepared.folders.run_dir("tip_f", k, seed))
    hp = {"base": cfg.base, "train_alpha": alpha, "train_beta": beta}
    alpha, beta = search(cache, x)
    val_acc, test_acc = accuracies(cache, x, alpha, beta)
    hp.update(alpha=alpha, beta=beta)
    return Outcome(test_acc, val_acc, hp, cache.keys.numel(), fitted,
                   prepared.folders.run_dir("tip_f", k, seed)).row("tip_f", k, seed)
