"""Tip-Adapter: a training-free cache of the shots on top of zero-shot logits, its alpha and
beta searched on validation (fewshot/tip_cache.py)."""
from __future__ import annotations

import typing
from dataclasses import dataclass

from ...config import Section, positive
from . import METHODS


@dataclass
class TipConfig(Section):
    """Tip-Adapter's cache on top of zero-shot ``base`` logits; alpha and beta searched on
    validation over ``0.1 + i (max - 0.1) / steps`` (Tip-Adapter's grids and its default
    maxima; alpha multiplied by ||w||_2, see fewshot/tip_cache.py). Tip-Adapter-F searches the same
    grids."""

    base: typing.Literal["pointclip", "calip"] = "calip"
    alpha_max: float = positive(3.0)
    alpha_steps: int = positive(20)
    beta_max: float = positive(7.0)
    beta_steps: int = positive(200)


@METHODS.register("tip", section=TipConfig, trains=False, augmented=False, order=1)
def run(prepared, k: int, seed: int):
    """-> the row of Tip-Adapter at ``k`` shots drawn with ``seed``."""
    from ..stages import Outcome
    from ..tip_cache import TipCache
    from ._cache import accuracies, cache_inputs, search

    x = cache_inputs(prepared, prepared.cfg.tip.base, k, seed)
    cache = TipCache(x.keys, x.labels, prepared.zero.num_classes).to(prepared.device)
    alpha, beta = search(cache, x)
    val_acc, test_acc = accuracies(cache, x, alpha, beta)
    return Outcome(test_acc, val_acc, {"base": x.base, "alpha": alpha, "beta": beta}).row("tip", k, seed)
