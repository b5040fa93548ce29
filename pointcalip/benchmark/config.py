"""The config of `pointcalip benchmark` (no torch here: configs are checked before any work).

One config class, two kinds of benchmark, told apart by which key is set:

* ``benchmark:`` a robustness benchmark (ModelNet40-C): hyper-parameters (CALIP's betas and,
  if asked, view weights) are tuned on the clean dataset its catalog entry declares
  (``tuned_on``: ModelNet40), on the class-stratified validation subset of its TRAIN split;
  ``data`` is that clean dataset.
* ``datasets:`` a table (OpenShape's protocol): each entry, keyed by its dataset label, is a
  dataset of its own (:class:`TableDataset`); ``data`` is not read. A dataset with a TRAIN
  split is tuned on its validation subset and reported on TEST; one without (catalog
  ``splits: ("test",)``, e.g. Objaverse-LVIS) is tuned on a seeded class-stratified slice of
  its test data and reported on the rest; ``tune.from: results.json`` takes its betas and
  view weights from another run instead.

Either way ``tune.split`` must stay ``val``: tuning on the reported (test or corrupted) clouds
is refused.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, List, Mapping, Optional

from ..config import ConfigError, DataConfig, RunConfig, Section, check_views, positive
from ..datasets.catalog import DATASETS
from .sets import ROBUSTNESS_DATASETS, check_variant, clean_variant

#: the datasets `pointcalip benchmark` evaluates (catalog entries of task "robustness")
BENCHMARK_DATASETS = ROBUSTNESS_DATASETS


@dataclass
class BenchmarkDataConfig(Section):
    """The evaluated dataset: its name, folder (null: the installed copy under
    ``<POINTCALIP_HOME>/data``), its variant (ScanObjectNN-C: obj_bg, obj_only or hardest),
    and the corruptions and severities to evaluate (null: all of the release's; severities
    as its files name them: 1..5 for ModelNet40-C, 0..4 for ModelNet-C and ScanObjectNN-C)."""

    name: str = "modelnet40c"
    root: Optional[str] = None
    variant: Optional[str] = None
    corruptions: Optional[List[str]] = None      # null: all
    severities: Optional[List[int]] = None       # null: all

    def validate(self) -> None:
        if self.name not in BENCHMARK_DATASETS:
            raise ConfigError("name", f"must be one of {', '.join(BENCHMARK_DATASETS)}, got "
                                      f"{self.name!r}")
        entry = DATASETS[self.name]
        try:
            object.__setattr__(self, "variant", check_variant(self.name, self.variant))
        except ValueError as err:
            raise ConfigError("variant", str(err)) from None
        if self.severities is None:
            return self._check_corruptions(entry)
        bad = [s for s in self.severities if s not in entry.severities]
        if bad or not self.severities or len(set(self.severities)) != len(self.severities):
            raise ConfigError("severities", f"must list distinct severities among "
                                            f"{list(entry.severities)}, got {self.severities}")
        self._check_corruptions(entry)

    def _check_corruptions(self, entry) -> None:
        if self.corruptions is not None:
            bad = [c for c in self.corruptions if c not in entry.corruptions]
            if not self.corruptions:
                raise ConfigError("corruptions", f"is empty: nothing to evaluate; use null (all "
                                                 f"{len(entry.corruptions)}) or some of "
                                                 f"{', '.join(entry.corruptions)}")
            if bad:
                raise ConfigError("corruptions", f"holds unknown names {bad}; use null (all) or "
                                                 f"some of {', '.join(entry.corruptions)}")

    @property
    def corruption_list(self) -> List[str]:
        every = DATASETS[self.name].corruptions
        return list(every) if self.corruptions is None else list(self.corruptions)

    @property
    def severity_list(self) -> List[int]:
        every = DATASETS[self.name].severities
        return list(every) if self.severities is None else list(self.severities)


def has_train_split(name: str) -> bool:
    """Whether the catalog entry ``name`` has a TRAIN split (entries declare ``splits``
    when they have only some; the default is train and test)."""
    return "train" in DATASETS[name].meta.get("splits", ("train", "test"))


@dataclass
class DatasetTune(Section):
    """How one table dataset's betas and view weights are set: ``from`` the results.json of
    another run (its backbone, projector, views and classes must be this run's); null: tuned
    in this run by the benchmark's rule."""

    source: Optional[str] = None

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "DatasetTune":
        for key in values:
            if key != "from":
                raise ConfigError(str(key), "is unknown (known keys here: from)", hint=False)
        try:
            return cls(source=values.get("from"))
        except ConfigError as err:              # the field is `source`; users write `from`
            raise ConfigError("from" if err.key == "source" else err.key, err.problem,
                              err.hint) from None

    def to_dict(self) -> dict:
        return {"from": self.source}


@dataclass
class TableDataset(DataConfig):
    """One dataset of a table benchmark: which clouds (as ``data`` of other commands; any
    classification dataset of the catalog, read when checked) and how it is tuned."""

    name: str = "modelnet40"
    tune: DatasetTune = field(default_factory=DatasetTune)

    def validate(self) -> None:
        known = [n for n in DATASETS.names()
                 if DATASETS[n].meta.get("task") not in ("segmentation", "robustness")]
        if self.name not in known:
            raise ConfigError("name", f"must be a classification dataset ({', '.join(known)}), "
                                      f"got {self.name!r}")
        super().validate()

    @property
    def has_train(self) -> bool:
        return has_train_split(self.name)


@dataclass
class BenchmarkConfig(RunConfig):
    """`pointcalip benchmark`: a robustness benchmark (``benchmark``) or a table over several
    datasets (``datasets``: label -> :class:`TableDataset` settings); exactly one is set.

    ``limit``: at most this many clouds per evaluated set and in each tuning set, a seeded
    (``tune.seed``) class-stratified choice, for a quick run (null: all)."""

    COMMAND: ClassVar[str] = "benchmark"

    benchmark: Optional[dict] = None      # BenchmarkDataConfig settings (a mapping here, so
                                          # that its own errors name their key)
    datasets: Optional[dict] = None       # label -> TableDataset mapping; null leaves one out
    views: Optional[List[int]] = None
    limit: Optional[int] = positive(None)
    name: str = "benchmark"

    def validate(self) -> None:
        super().validate()
        if (self.benchmark is None) == (self.datasets is None):
            raise ConfigError("datasets", "set exactly one of benchmark (a robustness benchmark, "
                                          "e.g. modelnet40c) and datasets (a table, e.g. openshape)")
        if self.views is not None:
            check_views(self.views, self.projector.build().num_views)
        if self.benchmark is not None:
            self._check_robustness()
        else:
            self._check_table()

    def _check_robustness(self) -> None:
        if not isinstance(self.benchmark, BenchmarkDataConfig):
            try:
                parsed = BenchmarkDataConfig.from_mapping(self.benchmark)
            except ConfigError as err:
                raise err.within("benchmark") from None
            object.__setattr__(self, "benchmark", parsed)
        clean = DATASETS[self.benchmark.name].meta.get("tuned_on")
        if self.data.name != clean:
            raise ConfigError("data.name", f"is the clean dataset tuned on for "
                                           f"{self.benchmark.name}: {clean}, got {self.data.name!r}")
        want = clean_variant(self.benchmark.name, self.benchmark.variant)
        if want is not None and self.data.variant != want:
            raise ConfigError("data.variant", f"must be {want}, the clean variant that "
                                              f"{self.benchmark.name} {self.benchmark.variant} "
                                              f"corrupts, got {self.data.variant!r}")
        if self.tune.split != "val":
            raise ConfigError("tune.split", f"must be val: the benchmark tunes on clean {clean} "
                                            f"validation (TRAIN), never on test or corrupted data")

    def _check_table(self) -> None:
        if self.tune.split != "val":
            raise ConfigError("tune.split", "must be val: a table tunes each dataset on the "
                                            "validation subset of its TRAIN split, or on a slice "
                                            "of its test data kept out of the reported clouds "
                                            "when it has no TRAIN split; never on reported clouds")
        if self.data != DataConfig():
            raise ConfigError("data", "is not read by a table benchmark (datasets is set): set "
                                      "name, root, variant, num_points and sampling under "
                                      "datasets.<label>")
        parsed = {}
        for label, values in self.datasets.items():
            key = f"datasets.{label}"
            if values is None:          # `--set datasets.<label>=null` leaves a dataset out
                continue
            if isinstance(values, TableDataset):
                entry = values
            elif isinstance(values, Mapping):
                try:
                    entry = TableDataset.from_mapping({"name": label, **values})
                except ConfigError as err:
                    raise err.within(key) from None
            else:
                raise ConfigError(key, f"must be a mapping (name, root, variant, num_points, "
                                       f"sampling, tune), got {values!r}")
            if entry.label != label:
                raise ConfigError(key, f"holds {entry.label}: key each dataset by its label "
                                       f"(name, and _variant in lower case)")
            parsed[label] = entry
        if not parsed:
            raise ConfigError("datasets", "must list at least one dataset")
        object.__setattr__(self, "datasets", parsed)

    @property
    def table(self) -> dict:
        """label -> :class:`TableDataset` of a table benchmark (empty for a robustness one)."""
        return dict(self.datasets or {})
