"""The config of `pointcalip adapt` (no torch here: configs are checked before any work).

CALIP's betas are tuned as `pointcalip benchmark` tunes them (``tune``: clean validation of
TRAIN only). The cache's own hyper-parameters (``cache``) are the spec's fixed defaults
(``cache.tune: fixed``) or chosen on that same clean validation subset by streaming it over
``cache.alpha_grid`` x ``cache.beta_grid`` (``cache.tune: val``); never on test labels.
``benchmark: null`` runs the clean dataset alone (e.g. ``--config modelnet40``).
"""
from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import ClassVar, List, Optional

from ..benchmark.config import BenchmarkDataConfig
from ..benchmark.sets import clean_variant
from ..config import ConfigError, RunConfig, Section, check_views, positive
from ..core.config_loader import non_negative


def _band(key: str, values: List[float]) -> None:
    if len(values) != 2 or not values[0] < values[1]:
        raise ConfigError(key, f"must be [low, high] with low < high, got {values}")


@dataclass
class CacheConfig(Section):
    """The online cache (docs/test-time-cache.md; defaults: Point-Cache's)."""

    capacity: int = positive(3)
    alpha: float = non_negative(4.0)
    beta: float = positive(3.0)
    centres: int = positive(3)                 # m, k-means centres per cloud (local cache)
    neg_capacity: int = non_negative(2)
    neg_alpha: float = non_negative(0.117)
    neg_beta: float = positive(1.0)
    neg_band: List[float] = field(default_factory=lambda: [0.2, 0.5])
    neg_mask: List[float] = field(default_factory=lambda: [0.03, 1.0])
    score_first: bool = False                  # score a cloud before it updates the caches
    prefill: bool = False                      # Point-Cache's test-set pre-fill: NOT ONLINE
    tune: typing.Literal["fixed", "val"] = "fixed"
    alpha_grid: List[float] = field(default_factory=lambda: [1.0, 2.0, 4.0, 8.0])
    beta_grid: List[float] = field(default_factory=lambda: [1.0, 3.0, 5.0, 7.0])

    def validate(self) -> None:
        _band("neg_band", self.neg_band)
        _band("neg_mask", self.neg_mask)
        for key in ("alpha_grid", "beta_grid"):
            values = getattr(self, key)
            if not values or any(v < 0 for v in values):
                raise ConfigError(key, f"must list non-negative values, got {values}")


@dataclass
class AdaptConfig(RunConfig):
    """`pointcalip adapt`: zero-shot CALIP + the online cache on every set of ``benchmark``
    (a robustness benchmark; null: the clean ``data`` TEST split alone), ``orders`` seeded
    stream orders (``order_seed``) per set, the same for every row."""

    COMMAND: ClassVar[str] = "adapt"

    benchmark: Optional[dict] = None
    cache: CacheConfig = field(default_factory=CacheConfig)
    orders: int = positive(5)
    order_seed: int = non_negative(0)
    views: Optional[List[int]] = None
    limit: Optional[int] = positive(None)
    name: str = "adapt"

    def validate(self) -> None:
        super().validate()
        if self.tune.split != "val":
            raise ConfigError("tune.split", "must be val: CALIP's betas are tuned on clean "
                                            "validation (TRAIN), never on the streamed test clouds")
        if self.views is not None:
            check_views(self.views, self.projector.build().num_views)
        if self.benchmark is not None and not isinstance(self.benchmark, BenchmarkDataConfig):
            try:
                parsed = BenchmarkDataConfig.from_mapping(self.benchmark)
            except ConfigError as err:
                raise err.within("benchmark") from None
            object.__setattr__(self, "benchmark", parsed)
        if self.benchmark is not None:
            self._check_clean_data()

    def _check_clean_data(self) -> None:
        """``data`` is the clean dataset (and variant) the benchmark corrupts: CALIP's betas
        and the cache's hyper-parameters are tuned on its TRAIN validation subset."""
        from ..datasets.catalog import DATASETS

        b = self.benchmark
        clean = DATASETS[b.name].meta.get("tuned_on")
        if self.data.name != clean:
            raise ConfigError("data.name", f"is the clean dataset tuned on for {b.name}: "
                                           f"{clean}, got {self.data.name!r}")
        want = clean_variant(b.name, b.variant)
        if want is not None and self.data.variant != want:
            raise ConfigError("data.variant", f"must be {want}, the clean variant that {b.name} "
                                              f"{b.variant} corrupts, got {self.data.variant!r}")
