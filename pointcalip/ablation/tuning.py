"""Tune on the tuning set, report on test: the one protocol every study follows.

``tune_then_test`` searches betas (and, if asked, view weights) on the tuning logits with
:func:`pointcalip.pipeline.tune` and evaluates the result once on test with
:func:`pointcalip.calip.aggregate_views` (docs/calip.md#views-to-shape-logits).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from ..calip import aggregate_views
from ..config import TuneConfig
from ..report.metrics import Accuracy, accuracy
from ..search import WEIGHT_CHOICES, SearchResult
from ..pipeline import ViewLogits, tune
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


def test_accuracy(logits: ViewLogits, beta2: float, beta3: float,
                  view_weights: Optional[Sequence[float]] = None) -> Accuracy:
    """Top-1 of ``logits`` (l0, l1, l2 [N, V, K]) aggregated at these betas and weights."""
    shape = aggregate_views(logits.l0, logits.l1, logits.l2, beta2, beta3, view_weights)
    return accuracy(shape, logits.labels, shape.shape[1])


def tune_then_test(pair: PairLogits, cfg: TuneConfig, beta2_values=None, beta3_values=None,
                   search_weights: Optional[bool] = None,
                   choices: Sequence[float] = WEIGHT_CHOICES) -> Tuned:
    """Search on ``pair.tune`` (:func:`pointcalip.pipeline.tune`: the config's grids and
    ``search_weights`` unless given), then one evaluation on ``pair.test``."""
    found = tune(pair.tune, cfg, beta2_values, beta3_values, search_weights, choices)
    return Tuned(found, test_accuracy(pair.test, found.beta2, found.beta3, found.view_weights))
