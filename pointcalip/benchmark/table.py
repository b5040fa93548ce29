"""A table benchmark (OpenShape's protocol): zero-shot PointCLIP and CALIP on several datasets,
with the zero-shot stages, one row per dataset and method.

    for each dataset of cfg.datasets:
        plan   = plan_dataset(cfg, label, entry)   # reported rows + how it is tuned
        found  = tune(logits of plan.tune_rows)    # or the betas of another run (tune.from)
        scores = evaluate(logits of plan.report_rows, found)

How each dataset is tuned (recorded in its rows):

* ``val``: it has a TRAIN split: the class-stratified ``tune.val_fraction`` of TRAIN (as
  zero-shot), reported on all of TEST;
* ``test_slice``: it has none (catalog ``splits: ("test",)``): a seeded class-stratified slice
  of its test data (:func:`tuning_slice`), reported on the rest only;
* ``from``: ``tune.from: results.json``: the betas and view weights another run found for the
  same backbone, projector, views and classes (:func:`read_tuning`); reported on TEST but for
  the test clouds that run tuned on (:func:`source_test_rows`: its slice, carried along a
  chain of ``tune.from``).

``limit`` applies to the tuning rows and to the reported rows, each on its own.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..backbones import ClipBackbone, load_clip
from ..core.digest import file_digest
from ..core.identity import data_identity
from ..datasets.base import H5CloudDataset
from ..extract import extract
from ..prompts import load_templates
from ..report.results import RunInfo, backbone_label, read_results, run_name
from ..search import SearchResult
from ..datasets.release import describe
from ..pipeline import class_text, compute_view_logits, data_key, evaluate, load_data, \
    open_store, split_store, tune, validation_rows
from .config import BenchmarkConfig, TableDataset
from .result import DatasetScore, TableResult
from .robustness import limit_rows
from ..core.words import count

#: seeds the order in which :func:`tuning_slice` takes each class's clouds
_SLICE_SALT = 11


def classes_digest(classnames: Sequence[str]) -> str:
    """SHA-256 of a class list (names, in label order): what ``tune.from`` compares."""
    return hashlib.sha256(json.dumps(list(classnames)).encode("utf-8")).hexdigest()


def tuning_slice(labels, fraction: float, seed: int):
    """Split the clouds of a dataset without TRAIN split into (tuning rows, reported rows),
    both sorted int64 indices into ``labels`` [n], disjoint, together every index. Per class
    of n clouds, ``round(fraction * n)`` (half up) clouds in a seeded order are tuned on, at
    least one when n >= 2 and never all of them: every class keeps a reported cloud."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    tuned = []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        k = min(idx.size - 1, max(1, int(np.floor(fraction * idx.size + 0.5))))
        rng = np.random.Generator(np.random.PCG64([int(seed), int(cls), _SLICE_SALT]))
        tuned.append(idx[rng.permutation(idx.size)[:k]])
    tune_rows = np.sort(np.concatenate(tuned)).astype(np.int64)
    return tune_rows, np.setdiff1d(np.arange(labels.size, dtype=np.int64), tune_rows)


@dataclass
class TuningSource:
    """Betas and view weights read from another run's results.json (``tune.from``)."""

    path: Path
    sha256: str
    beta2: float
    beta3: float
    view_weights: List[float]

    def to_dict(self) -> dict:
        return {"path": str(self.path), "sha256": self.sha256}


def _mismatch(path: Path, key: str, theirs, ours) -> ValueError:
    return ValueError(f"tune.from {path}: {key} is {theirs!r}, this run's is {ours!r}; take "
                      f"betas from a run with the same backbone, projector, views and classes")


def _mapping(path: Path, value, key: str) -> dict:
    """``value`` (the results' ``key``; absent: {}) if it is a mapping, else a ValueError
    naming the file and the key."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"tune.from {path}: {key} is a {type(value).__name__} "
                         f"({str(value)[:40]!r}), not a mapping; the file is not a results.json "
                         f"written by PointCALIP, or it was edited")
    return value


def _source_row(path: Path, label: str) -> Tuple[dict, dict]:
    """(the results mapping at ``path``, the part holding ``label``'s betas): a table
    benchmark's ``datasets.<label>``, or a zero-shot result itself."""
    r = read_results(path)
    if r.get("command") == "benchmark" and isinstance(r.get("datasets"), dict):
        if label not in r["datasets"]:
            raise ValueError(f"tune.from {path}: datasets holds no {label!r} (it holds "
                             f"{', '.join(r['datasets']) or 'none'})")
        row = _mapping(path, r["datasets"][label], f"datasets.{label}")
        _mapping(path, row.get("tuning"), f"datasets.{label}.tuning")
        return r, row
    if r.get("command") == "zeroshot":
        if _mapping(path, r.get("tuning"), "tuning").get("split") != "val":
            raise ValueError(f"tune.from {path}: tuning.split is "
                             f"{(r.get('tuning') or {}).get('split')!r}: those betas were tuned "
                             f"on the TEST clouds this table would report; take a run tuned on "
                             f"validation (tune.split: val)")
        return r, r
    raise ValueError(f"tune.from {path}: not the results.json of a zeroshot run or of a table "
                     f"benchmark (command {r.get('command')!r})")


def row_ids(dataset) -> Optional[List[str]]:
    """The object id of each row of ``dataset`` (Objaverse-LVIS: its uids), or None for data
    whose rows have no ids (their rows are matched by :func:`test_data_identity`)."""
    ids = getattr(dataset, "uids", None)
    return None if ids is None else [str(u) for u in ids]


def test_data_identity(dataset) -> str:
    """What the rows of ``dataset`` index: the data identity of its files (every byte, in
    order; :func:`~pointcalip.core.identity.data_identity`)."""
    return data_identity({"test": dataset})


def _number(value, key: str, path: Path) -> float:
    """``value`` as a finite float >= 0; ValueError naming ``key`` when it is anything else (a
    string such as "1e3", a bool, null, NaN)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value < 0:
        raise ValueError(f"tune.from {path}: {key} is {value!r}, not a finite number >= 0; "
                         f"take betas from an unedited results.json")
    return float(value)


def _rows_list(value, key: str, path: Path, num: int) -> np.ndarray:
    """``value`` as distinct int64 rows in [0, num); ValueError naming ``key`` otherwise."""
    if not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, int)
                                          for v in value):
        raise ValueError(f"tune.from {path}: {key} must be a list of row numbers, got "
                         f"{str(value)[:60]!r}")
    rows = np.asarray(value, dtype=np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= num or np.unique(rows).size != rows.size):
        raise ValueError(f"tune.from {path}: {key} holds rows outside 0..{num - 1} or a row "
                         f"twice")
    return rows


def source_test_rows(path: str | Path, label: str, test) -> Optional[np.ndarray]:
    """The rows of ``test`` (this run's test data) that the betas in ``path`` were tuned on (a
    table run's ``tuning.test_rows``: its test slice, or the ones it inherited through its own
    ``tune.from``), None when they were tuned on TRAIN. Rows are matched by identity, never by
    position alone: by object id (``tuning.test_ids``) where both runs' data have ids, else
    only when the source's test data is this run's, byte for byte and in the same order
    (``tuning.test_data``). ValueError naming the key when a ``test_slice`` source does not
    carry its rows, or its rows cannot be matched."""
    path = Path(path).expanduser().absolute()
    r, row = _source_row(path, label)
    if row is r:                          # a zero-shot run: tuned on TRAIN validation
        return None
    where = f"datasets.{label}.tuning"
    tuning = row.get("tuning")
    if not isinstance(tuning, dict):
        raise ValueError(f"tune.from {path}: {where} is missing; take a results.json written "
                         f"by `pointcalip benchmark` or `pointcalip zeroshot`")
    if tuning.get("test_rows") is None:
        if tuning.get("rule") not in ("val", "from"):
            raise ValueError(f"tune.from {path}: {where}.rule is {tuning.get('rule')!r} and "
                             f"{where}.test_rows is missing: the test clouds those betas were "
                             f"tuned on are unknown and could not be left out; rerun that "
                             f"benchmark so that its results.json records them")
        return None
    ids, ours = tuning.get("test_ids"), row_ids(test)
    if ids is not None and ours is not None:
        rows = _rows_list(tuning["test_rows"], f"{where}.test_rows", path, 2 ** 62)
        if not isinstance(ids, list) or len(ids) != len(rows) \
                or not all(isinstance(u, str) for u in ids):
            raise ValueError(f"tune.from {path}: {where}.test_ids must list one object id per "
                             f"row of {where}.test_rows")
        index = {u: i for i, u in enumerate(ours)}
        return np.asarray(sorted(index[u] for u in ids if u in index), dtype=np.int64)
    if tuning.get("test_data") != test_data_identity(test):
        raise ValueError(f"tune.from {path}: {where}.test_data is "
                         f"{tuning.get('test_data')!r}, this run's test data is "
                         f"{test_data_identity(test)!r}: its test_rows index other data (other "
                         f"files, or the same clouds in another order) and cannot be matched "
                         f"to this run's rows; take betas from a run on this data")
    if row.get("test_clouds") != len(test):
        raise _mismatch(path, f"datasets.{label}.test_clouds", row.get("test_clouds"), len(test))
    return _rows_list(tuning["test_rows"], f"{where}.test_rows", path, len(test))


def read_tuning(path: str | Path, label: str, *, backbone_identity: str, projector: dict,
                views: List[int], classnames: Sequence[str]) -> TuningSource:
    """The betas and view weights of ``label`` in the results.json at ``path``: a zero-shot
    result (tuned on validation), or a table benchmark's (its ``datasets.<label>``).
    ValueError naming the key when the file's backbone_identity, projector, views or classes
    differ from this run's."""
    path = Path(path).expanduser().absolute()
    r, row = _source_row(path, label)
    classes = (row.get("classes_sha256") if row is not r
               else classes_digest(list(r.get("per_class", {}))))
    num_classes = row.get("num_classes") if row is not r else len(r.get("per_class", {}))
    for key, ours in (("backbone_identity", backbone_identity), ("projector", projector),
                      ("views", list(views))):
        if r.get(key) != ours:
            raise _mismatch(path, key, r.get(key), ours)
    if classes != classes_digest(classnames):
        theirs = (f"{count(num_classes, 'class')}, sha256 "
                  f"{str(classes)[:12]}" if num_classes else f"sha256 {classes}")
        raise _mismatch(path, "classes", theirs, f"{count(len(classnames), 'class')}, sha256 "
                                                 f"{classes_digest(classnames)[:12]}")
    prefix = "" if row is r else f"datasets.{label}."
    beta2, beta3 = (_number(row.get(k), prefix + k, path) for k in ("beta2", "beta3"))
    raw = row.get("view_weights")
    if not isinstance(raw, list):
        raise ValueError(f"tune.from {path}: {prefix}view_weights is {str(raw)[:40]!r}, not a "
                         f"list of {len(views)} numbers")
    weights = [_number(w, f"{prefix}view_weights[{i}]", path) for i, w in enumerate(raw)]
    if len(weights) != len(views):
        raise _mismatch(path, prefix + "view_weights", weights, f"{len(views)} weights")
    if not sum(weights) > 0:
        raise ValueError(f"tune.from {path}: {prefix}view_weights are all 0: every view would "
                         f"be ignored (CALIP at chance); take betas from an unedited results.json")
    return TuningSource(path, file_digest(path), beta2, beta3, weights)


@dataclass
class DatasetPlan:
    """What one dataset of the table encodes: ``report_rows`` of ``test``, and the tuning set
    (``tune_rows`` of ``tune_dataset``; none when betas come ``from`` another run)."""

    label: str
    entry: TableDataset
    root: Path
    test: H5CloudDataset
    report_rows: np.ndarray
    rule: str                                  # "val", "test_slice" or "from"
    tune_dataset: Optional[H5CloudDataset] = None
    tune_rows: Optional[np.ndarray] = None
    tuned_test_rows: Optional[np.ndarray] = None   # test rows the betas come from, never reported

    @property
    def classnames(self) -> List[str]:
        return list(self.test.classnames)


def plan_dataset(cfg: BenchmarkConfig, label: str, entry: TableDataset) -> DatasetPlan:
    """Load ``entry``'s splits and choose its tuning and reported rows by the table's rule
    (module doc), ``limit`` applied to each."""
    seed = cfg.tune.seed
    data = load_data(entry, cfg.download, train=entry.has_train and not entry.tune.source)
    test = data.test

    def limited(dataset, rows):
        return rows[limit_rows(np.asarray(dataset.labels)[rows], cfg.limit, seed)]

    every = np.arange(len(test), dtype=np.int64)
    if entry.tune.source:
        tuned = source_test_rows(entry.tune.source, label, test)
        rest = every if tuned is None else np.setdiff1d(every, tuned)
        return DatasetPlan(label, entry, data.root, test, limited(test, rest), "from",
                           tuned_test_rows=tuned)
    if entry.has_train:
        return DatasetPlan(label, entry, data.root, test, limited(test, every), "val", data.train,
                           limited(data.train, validation_rows(data.train, cfg.tune)))
    tune_rows, report_rows = tuning_slice(test.labels, cfg.tune.val_fraction, seed)
    tune_rows = limited(test, tune_rows)
    return DatasetPlan(label, entry, data.root, test, limited(test, report_rows), "test_slice",
                       test, tune_rows, tuned_test_rows=tune_rows)


def table_jobs(cfg: BenchmarkConfig, splits: Sequence[str]) -> List[tuple]:
    """(label, dataset, rows) of the clouds a table run of ``cfg`` encodes, for `pointcalip
    extract` (:func:`pointcalip.plan.feature_jobs`): per dataset, ``test``: its reported rows;
    ``val``: its tuning rows (TRAIN validation or the test slice); ``train``: its whole TRAIN
    split, which then covers TRAIN validation."""
    out = []
    for label, entry in cfg.table.items():
        plan = plan_dataset(cfg, label, entry)
        if "test" in splits:
            out.append(("reported", plan.test, plan.report_rows))
        if "val" in splits and plan.tune_rows is not None and not (
                plan.rule == "val" and "train" in splits):
            out.append(("tuning", plan.tune_dataset, plan.tune_rows))
        if "train" in splits and entry.has_train:
            out.append(("train", load_data(entry, cfg.download).train, None))
    return out


def protocol(plan: DatasetPlan, cfg: BenchmarkConfig, source: Optional[TuningSource]) -> str:
    """One sentence: what CALIP's betas were tuned on, and what is reported."""
    seed, frac = cfg.tune.seed, cfg.tune.val_fraction
    if plan.rule == "from":
        left_out = ("" if plan.tuned_test_rows is None else
                    f", leaving out the {len(plan.tuned_test_rows)} test clouds they were tuned on")
        return (f"from: betas and view weights of {source.path} (sha256 {source.sha256[:12]}); "
                f"reported on TEST ({count(len(plan.report_rows), 'cloud')}{left_out})")
    if plan.rule == "val":
        return (f"val: class-stratified {frac:.0%} of TRAIN (seed {seed}, "
                f"{count(len(plan.tune_rows), 'cloud')}); reported on TEST "
                f"({count(len(plan.report_rows), 'cloud')})")
    return (f"test_slice: no TRAIN split; tuned on a class-stratified {frac:.0%} slice of the "
            f"test data (seed {seed}, {count(len(plan.tune_rows), 'cloud')}); reported on the "
            f"other {count(len(plan.report_rows), 'cloud')} only")


def output_dir(cfg: BenchmarkConfig) -> Path:
    """``output_dir``, else ``outputs/<name>-<projector>-<backbone>-<hash>``, the hash
    covering the settings and what each dataset's files are (not where they live)."""
    if cfg.output_dir:
        return Path(cfg.output_dir).expanduser()
    settings = cfg.to_dict()
    settings["datasets"] = {label: {k: v for k, v in d.items() if k != "root"}
                            for label, d in settings["datasets"].items()}
    data = json.dumps({label: data_key(entry) for label, entry in cfg.table.items()}, sort_keys=True)
    return Path("outputs") / run_name(settings, cfg.name, cfg.projector.name,
                                      backbone_label(cfg.backbone), data=data)


def run_table(cfg: BenchmarkConfig, backbone: Optional[ClipBackbone] = None,
              argv: Optional[Sequence[str]] = None) -> TableResult:
    """Every stage for the table ``cfg``; ``argv`` is the command line recorded."""
    t_start = time.perf_counter()
    store = open_store(cfg.cache_dir)
    templates = load_templates(cfg.templates)
    plans = [plan_dataset(cfg, label, entry) for label, entry in cfg.table.items()]  # all read first
    projector = cfg.projector.build()
    if backbone is None:
        backbone = load_clip(cfg.backbone, device=cfg.device, engine=cfg.engine)
    device = backbone.device
    views = list(cfg.views) if cfg.views is not None else list(range(projector.num_views))
    sources = {p.label: read_tuning(p.entry.tune.source, p.label,
                                    backbone_identity=backbone.identity,
                                    projector=projector.settings, views=views,
                                    classnames=p.classnames)
               for p in plans if p.rule == "from"}        # every file checked before encoding

    scores = []
    for plan in plans:
        t0 = time.perf_counter()
        text = class_text(backbone, plan.classnames, cfg.templates)

        features = {}

        def logits_of(dataset, rows, what):
            features[what] = extract(split_store(store, cfg.store, dataset, projector, backbone,
                                                 text), dataset, rows, projector, backbone,
                                     cfg.batch_size, desc=f"encode {plan.label} {what}")
            return compute_view_logits(features[what], text, cfg.views, device)

        source = sources.get(plan.label)
        if source is not None:
            found = SearchResult(source.beta2, source.beta3, list(source.view_weights),
                                 float("nan"), (0, 0), 0.0)
        else:
            found = tune(logits_of(plan.tune_dataset, plan.tune_rows, "tuning"), cfg.tune)
        pointclip, calip = evaluate(logits_of(plan.test, plan.report_rows, "reported"), text, found)
        scores.append(DatasetScore(
            label=plan.label, name=plan.entry.name, variant=plan.entry.variant,
            root=str(plan.root), classnames=plan.classnames,
            classes_sha256=classes_digest(plan.classnames), rule=plan.rule,
            protocol=protocol(plan, cfg, source), test_clouds=len(plan.test),
            report_rows=plan.report_rows, tune_rows=plan.tune_rows,
            tuned_test_rows=plan.tuned_test_rows, test_data=test_data_identity(plan.test),
            tuned_test_ids=(None if plan.tuned_test_rows is None or row_ids(plan.test) is None
                            else [row_ids(plan.test)[i] for i in plan.tuned_test_rows]),
            source=None if source is None else source.to_dict(),
            found=found, pointclip=pointclip, calip=calip,
            features={what: {"store": str(f.store.path), **f.stats.to_dict()}
                      for what, f in features.items()},
            seconds=time.perf_counter() - t0))
    roots = "; ".join(f"{s.label}: {s.root}" for s in scores)
    return TableResult(
        config=cfg, run=RunInfo.collect(device, backbone.precision, roots, argv),
        backbone_identity=backbone.identity, projector_settings=projector.settings,
        views=views, templates=templates, datasets=scores,
        timings={"total_s": time.perf_counter() - t_start},
        data=[describe(p.label, {"test": p.test, **({"train": p.tune_dataset} if p.rule == "val"
                                                    and p.tune_dataset is not p.test else {})},
                       release_key=p.entry.name)      # the catalog's dataset, not its reader's
              for p in plans])
