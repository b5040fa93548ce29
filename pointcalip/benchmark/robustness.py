"""A robustness benchmark (ModelNet40-C, ModelNet-C, ScanObjectNN-C) with the zero-shot stages:
tune once on the clean dataset's validation split, evaluate every corruption x severity from
the feature store.

    splits  = load_splits(cfg)                # clean TEST + validation rows of clean TRAIN
    found   = tune(logits of the validation rows)          # once
    clean   = evaluate(logits of clean TEST, found)
    cells   = evaluate(logits of each set, found)          # same betas, same text features

The sets come from :func:`pointcalip.benchmark.sets.robustness_sets`, each read with every
stored point (the files of one release differ in point count), one at a time.

The corrupted clouds never reach :func:`pointcalip.pipeline.tune`: the config refuses any
other tuning split (:class:`pointcalip.benchmark.config.BenchmarkConfig`).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from ..backbones import ClipBackbone, load_clip
from ..core.identity import data_identity
from ..core.paths import data_dir, ensure_writable
from ..datasets import dataset_folder
from ..datasets.h5utils import fingerprint
from ..datasets.catalog import DATASETS, load_target
from ..datasets.release import describe, modelnet40c_differences, splits_statement
from ..extract import SplitFeatures, extract
from ..prompts import load_templates
from ..report.results import RunInfo, backbone_label, run_name
from ..pipeline import class_text, compute_view_logits, data_key, evaluate, load_splits, \
    open_store, split_store, tune
from .config import BenchmarkConfig
from .result import BenchmarkResult, SetScore, LabelCheck
from .sets import RobustnessSet, robustness_sets
from ..core.words import count

log = logging.getLogger(__name__)


def limit_rows(labels, limit: Optional[int], seed: int) -> np.ndarray:
    """At most ``limit`` indices into ``labels`` [n], class-stratified: each class in a seeded
    order, then one of each class in turn (round-robin) until ``limit``; sorted int64. None
    (or a limit of at least n): every index."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if limit is None or limit >= labels.size:
        return np.arange(labels.size, dtype=np.int64)
    ranked = []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng = np.random.Generator(np.random.PCG64([int(seed), int(cls), 7]))
        ranked.append(idx[rng.permutation(idx.size)])
    order = [r[i] for i in range(max(len(r) for r in ranked)) for r in ranked if i < len(r)]
    return np.sort(np.asarray(order[:int(limit)], dtype=np.int64))


def benchmark_root(cfg: BenchmarkConfig) -> Path:
    """The benchmark's folder: ``benchmark.root``, else the installed copy (never downloaded:
    the error says `pointcalip download <name> --from PATH`)."""
    if cfg.benchmark.root:
        return Path(cfg.benchmark.root).expanduser()
    return dataset_folder(cfg.benchmark.name, root=data_dir())


def _key_files(cfg: BenchmarkConfig) -> list:
    """Every file a run of ``cfg`` reads from the benchmark folder: the file of each evaluated
    set (the uncorrupted one included) and, for ModelNet40-C, ``label.npy``."""
    entry = DATASETS[cfg.benchmark.name]
    module = entry.target.partition(":")[0]
    root = load_target(f"{module}:find_root")(benchmark_root(cfg))
    data_file = load_target(f"{module}:data_file")
    files = [root / "label.npy"] if entry.name == "modelnet40c" else []
    for s in benchmark_sets(cfg, root):
        corruption = entry.clean_set if s.is_clean else s.corruption
        args = ((s.variant,) if s.variant is not None else ()) + (corruption, s.severity)
        files.append(root / data_file(*args))
    return files


def benchmark_key(cfg: BenchmarkConfig) -> Optional[str]:
    """What the benchmark's files are, wherever they live: the identity (every byte,
    :func:`~pointcalip.core.identity.files_identity`) of every file the config evaluates
    (:func:`_key_files`; None when the folder or one of them cannot be found yet: the run says
    which)."""
    try:
        files = _key_files(cfg)
    except (OSError, ValueError):
        return None
    if not all(f.is_file() for f in files):
        return None
    return data_identity({"benchmark": fingerprint(files)})


def output_dir(cfg: BenchmarkConfig) -> Path:
    """``output_dir``, else ``outputs/<benchmark>-<projector>-<backbone>-tune_val-<hash>``, the
    hash covering the settings and what the clean and benchmark files are (not where)."""
    if cfg.output_dir:
        return Path(cfg.output_dir).expanduser()
    data = f"{data_key(cfg.data)}|{benchmark_key(cfg)}"
    settings = cfg.to_dict()
    settings["benchmark"] = {k: v for k, v in settings["benchmark"].items() if k != "root"}
    return Path("outputs") / run_name(settings, cfg.benchmark.name, cfg.projector.name,
                                      backbone_label(cfg.backbone), "tune_val", data=data)


def benchmark_sets(cfg: BenchmarkConfig, root: Optional[Path] = None) -> List[RobustnessSet]:
    """Every set the benchmark evaluates besides clean TEST (:func:`robustness_sets`): the
    release's uncorrupted set first when it has one, then each corruption x severity."""
    b = cfg.benchmark
    return robustness_sets(b.name, benchmark_root(cfg) if root is None else root, b.variant,
                           b.corruption_list, b.severity_list)


def benchmark_jobs(cfg: BenchmarkConfig, classnames: Sequence[str]) -> list:
    """(label, dataset, rows) of the corrupted sets a run of ``cfg`` encodes (the rows its
    ``limit`` keeps), for `pointcalip extract` (:func:`pointcalip.plan.feature_jobs`); every
    stored point of each set."""
    jobs = []
    for s in benchmark_sets(cfg):
        data = s.open(classnames)
        jobs.append(("test", data, limit_rows(data.labels, cfg.limit, cfg.tune.seed)))
    return jobs


@dataclass
class RobustnessSetup:
    """What the robustness tasks (`benchmark` on corrupted sets, `adapt`) open before they score
    any set: the store, templates, clean splits, projector, backbone, class text and the
    clean tuning rows (``--limit`` applied)."""

    cfg: object                     # a BenchmarkConfig or an AdaptConfig
    store: object
    templates: list
    splits: object                  # pipeline.ZeroShotSplits
    projector: object
    backbone: ClipBackbone
    text: object
    tune_rows: np.ndarray

    def features(self, dataset, rows, name: str) -> SplitFeatures:
        """``rows`` of ``dataset`` from the store (encoding what is missing)."""
        cfg = self.cfg
        return extract(split_store(self.store, cfg.store, dataset, self.projector, self.backbone,
                                   self.text),
                       dataset, rows, self.projector, self.backbone, cfg.batch_size,
                       desc=f"encode {name}")


def set_up(cfg, out: Path, backbone: Optional[ClipBackbone] = None) -> RobustnessSetup:
    """Open what a robustness task reads, checking first that ``out`` can be written."""
    store = open_store(cfg.cache_dir)
    templates = load_templates(cfg.templates)
    splits = load_splits(cfg)                           # clean TEST + clean TRAIN validation
    ensure_writable(out, "--set output_dir=DIR")
    projector = cfg.projector.build()
    if backbone is None:
        backbone = load_clip(cfg.backbone, device=cfg.device, engine=cfg.engine)
    text = class_text(backbone, splits.classnames, cfg.templates)
    tuning = splits.tuning
    tune_rows = tuning.rows[limit_rows(tuning.dataset.labels[tuning.rows], cfg.limit,
                                       cfg.tune.seed)]
    return RobustnessSetup(cfg, store, templates, splits, projector, backbone, text, tune_rows)


def run_robustness(cfg: BenchmarkConfig, backbone: Optional[ClipBackbone] = None,
                    argv: Optional[Sequence[str]] = None) -> BenchmarkResult:
    """Every stage for ``cfg``; ``argv`` is the command line recorded in the result."""
    t_start = time.perf_counter()
    root = benchmark_root(cfg)
    setup = set_up(cfg, output_dir(cfg), backbone)
    templates, splits, projector, text = setup.templates, setup.splits, setup.projector, setup.text
    backbone, tune_rows, seed = setup.backbone, setup.tune_rows, cfg.tune.seed
    device = backbone.device

    def logits_of(dataset, rows, name):
        return compute_view_logits(setup.features(dataset, rows, name), text, cfg.views, device)

    t0 = time.perf_counter()
    found = tune(logits_of(splits.tuning.dataset, tune_rows, "clean val"), cfg.tune)
    timings = {"tune_s": time.perf_counter() - t0}

    def score(dataset, name, corruption=None, severity=None) -> SetScore:
        rows = limit_rows(dataset.labels, cfg.limit, seed)
        pointclip, calip = evaluate(logits_of(dataset, rows, name), text, found)
        points = (getattr(dataset, "served_points", None)      # no read when stored
                  or dataset.points(rows[:1]).shape[1]) if len(rows) else None
        return SetScore(name, len(rows), pointclip, calip, corruption, severity, points)

    t0 = time.perf_counter()
    clean = score(splits.test, f"{cfg.data.label} test")
    original_score, cells, labels, first = None, [], LabelCheck(), None
    for s in benchmark_sets(cfg, root):                 # one set in memory at a time
        data = s.open(splits.classnames)
        first = first or data                           # kept: what the data statement counts
        if not labels.add(s.name, data.files[-1], data.labels, splits.test.labels):
            log.warning("%s labels differ from the clean %s TEST labels (recorded in the "
                        "results)", data.files[-1], cfg.data.label)
        if s.is_clean:
            original_score = score(data, s.name)
        else:
            cells.append(score(data, s.name, s.corruption, s.severity))
        data.close()                                   # its clouds go; labels stay for `first`
    timings["evaluate_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - t_start
    protocol = (f"tuned once on clean {cfg.data.label} validation: class-stratified "
                f"{cfg.tune.val_fraction:.0%} of TRAIN (seed {seed}, "
                f"{count(len(tune_rows), 'cloud')}); "
                f"never on corrupted or test data")
    views = list(cfg.views) if cfg.views is not None else list(range(projector.num_views))
    return BenchmarkResult(
        config=cfg, run=RunInfo.collect(device, backbone.precision, root, argv),
        benchmark=cfg.benchmark.name, backbone_identity=backbone.identity,
        projector_settings=projector.settings, views=views, templates=templates,
        tuning_protocol=protocol, tuning_clouds=len(tune_rows), found=found, clean=clean,
        original=original_score, cells=cells, timings=timings, classnames=splits.classnames,
        labels_vs_clean=labels.to_dict(),
        data=[splits_statement(cfg.data.label, splits),
              benchmark_statement(cfg, root, first, len(cells))])


def benchmark_statement(cfg: BenchmarkConfig, root: Path, first, evaluated: int):
    """Whether the benchmark's folder is the complete release: the clouds of a set (``first``,
    one opened set) against the release's count, ModelNet40-C's 77 files, and how many of the
    release's corrupted sets this run evaluated."""
    every = [s for s in benchmark_sets_all(cfg, root) if not s.is_clean]
    extra = []
    if cfg.benchmark.name == "modelnet40c":
        from ..datasets.modelnet40c import expected_files

        extra += modelnet40c_differences(root, expected_files())
    if evaluated < len(every):
        extra.append(f"this run evaluated {evaluated} of its {len(every)} corrupted sets "
                     f"(the config's corruptions and severities)")
    return describe(cfg.benchmark.name, {"test": first}, cfg.benchmark.name, extra)


def benchmark_sets_all(cfg: BenchmarkConfig, root: Path) -> List[RobustnessSet]:
    """Every set of the release (every corruption and severity), whatever the config picks."""
    try:
        return robustness_sets(cfg.benchmark.name, root, variant=cfg.benchmark.variant)
    except (OSError, ValueError, TypeError):
        return []


#: the former name (ModelNet40-C was the only robustness benchmark)
run_modelnet40c = run_robustness
