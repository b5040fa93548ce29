"""ModelNet40-C with the zero-shot stages: tune once on clean ModelNet40 validation, evaluate
every corruption x severity from the feature store.

    splits  = load_splits(cfg)                # clean TEST + validation rows of clean TRAIN
    found   = tune(logits of the validation rows)          # once
    clean   = evaluate(logits of clean TEST, found)
    cells   = evaluate(logits of data_{c}_{s}.npy, found)  # same betas, same text features

The corrupted clouds never reach :func:`pointcalip.pipeline.tune`: the config refuses any
other tuning split (:class:`pointcalip.benchmark.config.BenchmarkConfig`).
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..backbones import ClipBackbone, load_clip
from ..core.paths import data_dir, ensure_writable
from ..datasets import build_dataset, dataset_folder
from ..datasets.h5utils import fingerprint
from ..datasets.modelnet40c import LABEL_FILE, ORIGINAL, data_file, expected_files, find_root
from ..datasets.release import describe, modelnet40c_differences, splits_statement
from ..extract import extract
from ..prompts import load_templates
from ..report.results import RunInfo, backbone_label, run_name
from ..pipeline import class_text, compute_view_logits, data_key, evaluate, load_splits, \
    open_store, split_store, tune
from .config import BenchmarkConfig
from .report import BenchmarkResult, SetScore

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
    the error says `pointcalip download modelnet40c --from PATH`)."""
    if cfg.benchmark.root:
        return Path(cfg.benchmark.root).expanduser()
    return dataset_folder(cfg.benchmark.name, root=data_dir())


def benchmark_key(cfg: BenchmarkConfig) -> Optional[str]:
    """What the benchmark's files are, wherever they live: a fingerprint of its
    ``label.npy`` and ``data_original.npy`` (None when the folder cannot be found yet)."""
    try:
        root = find_root(benchmark_root(cfg))
    except (OSError, ValueError):
        return None
    files = [root / name for name in (LABEL_FILE, data_file(ORIGINAL, None))]
    if not all(f.is_file() for f in files):
        return None
    return json.dumps(fingerprint(files), sort_keys=True)


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


def benchmark_sets(cfg: BenchmarkConfig, root: Path, classnames: Sequence[str]) -> list:
    """(name, dataset, corruption, severity) of every set the benchmark evaluates besides clean
    TEST: ``original`` first (corruption and severity None), then each corruption x severity
    (name ``<corruption>_<severity>``); labels index ``classnames``, the clean class list."""
    kwargs = {"num_points": cfg.data.num_points, "sampling": cfg.data.sampling,
              "classnames": list(classnames)}
    sets = [("original", build_dataset(cfg.benchmark.name, root, "test", corruption=ORIGINAL,
                                       **kwargs), None, None)]
    for corruption in cfg.benchmark.corruption_list:
        for severity in cfg.benchmark.severities:
            sets.append((f"{corruption}_{severity}",
                         build_dataset(cfg.benchmark.name, root, "test", corruption=corruption,
                                       severity=severity, **kwargs), corruption, severity))
    return sets


def benchmark_jobs(cfg: BenchmarkConfig, classnames: Sequence[str]) -> list:
    """(label, dataset, rows) of the corrupted sets a run of ``cfg`` encodes (the rows its
    ``limit`` keeps), for `pointcalip extract` (:func:`pointcalip.plan.feature_jobs`)."""
    return [("test", data, limit_rows(data.labels, cfg.limit, cfg.tune.seed))
            for _, data, _, _ in benchmark_sets(cfg, benchmark_root(cfg), classnames)]


def run_modelnet40c(cfg: BenchmarkConfig, backbone: Optional[ClipBackbone] = None,
                    argv: Optional[Sequence[str]] = None) -> BenchmarkResult:
    """Every stage for ``cfg``; ``argv`` is the command line recorded in the result."""
    t_start = time.perf_counter()
    store = open_store(cfg.cache_dir)
    templates = load_templates(cfg.templates)
    root = benchmark_root(cfg)
    splits = load_splits(cfg)                           # clean TEST + clean TRAIN validation
    ensure_writable(output_dir(cfg), "--set output_dir=DIR")
    projector = cfg.projector.build()
    if backbone is None:
        backbone = load_clip(cfg.backbone, device=cfg.device, engine=cfg.engine)
    device = backbone.device
    text = class_text(backbone, splits.classnames, cfg.templates)
    seed = cfg.tune.seed

    def logits_of(dataset, rows, name):
        features = extract(split_store(store, cfg.store, dataset, projector, backbone, text),
                           dataset, rows, projector, backbone, cfg.batch_size,
                           desc=f"encode {name}")
        return compute_view_logits(features, text, cfg.views, device)

    tune_rows = splits.tuning.rows[limit_rows(splits.tuning.dataset.labels[splits.tuning.rows],
                                              cfg.limit, seed)]
    t0 = time.perf_counter()
    found = tune(logits_of(splits.tuning.dataset, tune_rows, "clean val"), cfg.tune)
    timings = {"tune_s": time.perf_counter() - t0}

    def score(dataset, name, corruption=None, severity=None) -> SetScore:
        rows = limit_rows(dataset.labels, cfg.limit, seed)
        pointclip, calip = evaluate(logits_of(dataset, rows, name), text, found)
        return SetScore(name, len(rows), pointclip, calip, corruption, severity)

    t0 = time.perf_counter()
    clean = score(splits.test, f"{cfg.data.label} test")
    sets = benchmark_sets(cfg, root, splits.classnames)
    original = sets[0][1]
    if not np.array_equal(original.labels, splits.test.labels):
        log.warning("%s label.npy differs from the clean %s TEST labels", root, cfg.data.label)
    original_score = score(original, "original")
    cells = [score(data, name, corruption, severity)
             for name, data, corruption, severity in sets[1:]]
    timings["evaluate_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - t_start
    protocol = (f"tuned once on clean {cfg.data.label} validation: class-stratified "
                f"{cfg.tune.val_fraction:.0%} of TRAIN (seed {seed}, {len(tune_rows)} clouds); "
                f"never on corrupted or test data")
    views = list(cfg.views) if cfg.views is not None else list(range(projector.num_views))
    return BenchmarkResult(
        config=cfg, run=RunInfo.collect(device, backbone.precision, root, argv),
        benchmark=cfg.benchmark.name, backbone_identity=backbone.identity,
        projector_settings=projector.settings, views=views, templates=templates,
        tuning_protocol=protocol, tuning_clouds=len(tune_rows), found=found, clean=clean,
        original=original_score, cells=cells, timings=timings, classnames=splits.classnames,
        data=[splits_statement(cfg.data.label, splits), benchmark_statement(cfg, original, len(cells))])


def benchmark_statement(cfg: BenchmarkConfig, original, evaluated: int):
    """Whether the ModelNet40-C folder is the complete release (its clouds, its 75 corrupted
    arrays and the original), and how many of its corrupted sets this run evaluated."""
    corrupted = [f for f in expected_files() if f.startswith("data_") and f != data_file(ORIGINAL, None)]
    extra = modelnet40c_differences(original.root, expected_files())
    if evaluated < len(corrupted):
        extra.append(f"this run evaluated {evaluated} of its {len(corrupted)} corrupted sets "
                     f"(the config's corruptions and severities)")
    return describe(cfg.benchmark.name, {"test": original}, "modelnet40c", extra)
