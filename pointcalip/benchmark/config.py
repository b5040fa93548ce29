"""The config of `pointcalip benchmark` (no torch here: configs are checked before any work).

The tuning rule is part of the config and checked here: hyper-parameters (CALIP's betas and,
if asked, view weights) are tuned on the clean dataset the benchmark declares in its catalog
entry (``tuned_on``: ModelNet40 for ModelNet40-C), on the class-stratified validation subset
of its TRAIN split (``tune.split: val``). ``data`` is that clean dataset; ``benchmark`` names
the evaluated one. Tuning on test data, clean or corrupted, is refused (``tune.split: test``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, List, Optional

from ..config import ConfigError, RunConfig, Section, check_views, positive
from ..datasets.catalog import DATASETS

#: the datasets `pointcalip benchmark` evaluates (catalog entries of task "robustness")
BENCHMARK_DATASETS = tuple(n for n in DATASETS.names()
                           if DATASETS[n].meta.get("task") == "robustness")


@dataclass
class BenchmarkDataConfig(Section):
    """The evaluated dataset: its name, folder (null: the installed copy under
    ``<POINTCALIP_HOME>/data``), and the corruptions and severities to evaluate."""

    name: str = "modelnet40c"
    root: Optional[str] = None
    corruptions: Optional[List[str]] = None      # null: all 15
    severities: List[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])

    def validate(self) -> None:
        if self.name not in BENCHMARK_DATASETS:
            raise ConfigError("name", f"must be one of {', '.join(BENCHMARK_DATASETS)}, got "
                                      f"{self.name!r}")
        entry = DATASETS[self.name]
        if self.corruptions is not None:
            bad = [c for c in self.corruptions if c not in entry.corruptions]
            if bad or not self.corruptions:
                raise ConfigError("corruptions", f"holds unknown names {bad}; use null (all) or "
                                                 f"some of {', '.join(entry.corruptions)}")
        bad = [s for s in self.severities if s not in entry.severities]
        if bad or not self.severities or len(set(self.severities)) != len(self.severities):
            raise ConfigError("severities", f"must list distinct severities among "
                                            f"{list(entry.severities)}, got {self.severities}")

    @property
    def corruption_list(self) -> List[str]:
        every = DATASETS[self.name].corruptions
        return list(every) if self.corruptions is None else list(self.corruptions)


@dataclass
class BenchmarkConfig(RunConfig):
    """`pointcalip benchmark`: tune on clean validation, evaluate on a benchmark's test data.

    ``limit``: at most this many clouds per evaluated set and in the tuning set, a seeded
    (``tune.seed``) class-stratified choice, for a quick run (null: all)."""

    COMMAND: ClassVar[str] = "benchmark"

    benchmark: BenchmarkDataConfig = field(default_factory=BenchmarkDataConfig)
    views: Optional[List[int]] = None
    limit: Optional[int] = positive(None)
    name: str = "benchmark"

    def validate(self) -> None:
        super().validate()
        clean = DATASETS[self.benchmark.name].meta.get("tuned_on")
        if self.data.name != clean:
            raise ConfigError("data.name", f"is the clean dataset tuned on for "
                                           f"{self.benchmark.name}: {clean}, got {self.data.name!r}")
        if self.tune.split != "val":
            raise ConfigError("tune.split", f"must be val: the benchmark tunes on clean {clean} "
                                            f"validation (TRAIN), never on test or corrupted data")
        if self.views is not None:
            check_views(self.views, self.projector.build().num_views)
