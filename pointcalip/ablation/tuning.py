"""Tune on the tuning set, report on test: the one protocol every study follows.

``tune_then_test`` searches betas (and, if asked, view weights) on the tuning logits with
:func:`pointcalip.search.search` and evaluates the result once on test with
:func:`pointcalip.calip.aggregate_views` (spec/calip.md section 3).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch

from ..calip import aggregate_views
from ..config import TuneConfig
from ..metrics import Accuracy, accuracy
from ..search import WEIGHT_CHOICES, SearchResult, beta_grid, search
from ..zeroshot import ViewLogits
from .context import PairLogits


@dataclass
class Tuned:
    """Hyper-parameters found on the tuning set and the test accuracy they give."""

    found: SearchResult
    test: Accuracy

    @property
    def tune_top1(self) -> float:
        """Accuracy on the tuning set, in percent."""
        return 100.0 * self.found.accuracy

    def to_dict(self) -> dict:
        return {"beta2": self.found.beta2, "beta3": self.found.beta3,
                "view_weights": list(self.found.view_weights), "tune_top1": self.tune_top1,
                "test_top1": self.test.top1}


def grids(cfg: TuneConfig) -> Tuple[torch.Tensor, torch.Tensor]:
    """CALIP's beta2 and beta3 grids as the config sets them: [G], [G] float64."""
    return beta_grid(cfg.beta2_max, cfg.grid), beta_grid(cfg.beta3_max, cfg.grid)


def test_accuracy(logits: ViewLogits, beta2: float, beta3: float,
                  view_weights: Optional[Sequence[float]] = None) -> Accuracy:
    """Top-1 of ``logits`` (l0, l1, l2 [N, V, K]) aggregated at these betas and weights."""
    shape = aggregate_views(logits.l0, logits.l1, logits.l2, beta2, beta3, view_weights)
    return accuracy(shape, logits.labels, shape.shape[1])


def tune_then_test(pair: PairLogits, cfg: TuneConfig, beta2_values=None, beta3_values=None,
                   search_weights: Optional[bool] = None,
                   choices: Sequence[float] = WEIGHT_CHOICES) -> Tuned:
    """Search on ``pair.tune`` (default grids: the config's; ``search_weights`` default:
    ``cfg.view_weights``), then one evaluation on ``pair.test``."""
    b2, b3 = grids(cfg)
    b2 = b2 if beta2_values is None else torch.as_tensor(beta2_values, dtype=torch.float64)
    b3 = b3 if beta3_values is None else torch.as_tensor(beta3_values, dtype=torch.float64)
    weights = cfg.view_weights if search_weights is None else search_weights
    t = pair.tune
    found = search(t.l0, t.l1, t.l2, torch.as_tensor(t.labels), search_weights=weights,
                   beta2_values=b2, beta3_values=b3, choices=choices)
    return Tuned(found, test_accuracy(pair.test, found.beta2, found.beta3, found.view_weights))
