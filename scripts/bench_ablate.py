#!/usr/bin/env python
"""Time every ablation study on ModelNet40-sized cached features.

    python scripts/bench_ablate.py [--studies views terms ...] [--projector realistic]
                                   [--test 2468] [--val 984] [--classes 40] [--grid 200]
                                   [--dir /scratch/bench]

Builds feature stores with random RN50-shaped features (unit vectors, float16: ModelNet40's
2,468 test clouds and a 984-cloud validation set of its train split, 6 PointCLIP views x
(49 + 1) tokens x 1,024 dims, or V2's 10 views with --projector realistic; the projectors
study needs both), then runs each
study the way `pointcalip ablate` does, each with a fresh context (so every study pays for
reading the store and its own CALIP passes), with CLIP RN50's architecture and random
weights as the text encoder (for the prompts study). Timing does not depend on the values.
Reported per study: the study itself (what `pointcalip ablate` spends after loading CLIP)
and writing its files (tables, PNGs, report). The default folder is a temporary one,
removed afterwards; the stores need about 4 GB (2 GB without the projectors study).

    python scripts/bench_ablate.py --segmentation [--set KEY=VALUE ...]

Part segmentation: every point of a study is a whole `pointcalip segment` run, so what a
study costs is its number of runs (times one run, timed by scripts/bench_segment.py) and the
view images it encodes beyond the config's own projector. This prints both for each study
of the segmentation config (`shapenetpart` plus the --set overrides), from the same plans the
studies run (nothing is run or encoded).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench_zeroshot import rn50_random   # scripts/ is on sys.path
from pointcalip.ablation.config import (STUDIES, AblationConfig, load_ablation_config,
                                        segmentation_studies)
from pointcalip.ablation.context import AblationContext
from pointcalip.ablation.output_files import write_study
from pointcalip.ablation.run import RUNNERS
from pointcalip.commands.options import positive_int
from pointcalip.config import ProjectorConfig, TuneConfig
from pointcalip.prompts import load_classnames
from pointcalip.store import FeatureStore
from pointcalip.pipeline import TuningSet, ZeroShotSplits

TRAIN_CLOUDS = 9840


class Split:
    """What the store and the studies need of a dataset split (no clouds: all is stored)."""

    name = "bench-modelnet40"

    def __init__(self, split: str, n: int, classnames, seed: int):
        self.split, self.n, self.classnames = split, n, classnames
        self.labels = np.random.default_rng(seed).integers(0, len(classnames), n)
        self.settings = {"name": self.name, "split": split, "n": n}

    def __len__(self) -> int:
        return self.n


def fill(store, rows: np.ndarray, rng: np.random.Generator, batch: int = 16) -> None:
    """Write random unit features for ``rows`` in pieces of ``batch`` clouds."""
    v, hw, c = store.num_views, store.num_tokens, store.embed_dim
    for start in range(0, len(rows), batch):
        chunk = rows[start:start + batch]
        x = rng.standard_normal((len(chunk), v, hw + 1, c), dtype=np.float32)
        x /= np.linalg.norm(x, axis=-1, keepdims=True)
        store.write(chunk, x[:, :, 0], x[:, :, 1:], np.ones((len(chunk), v), np.float32))


def segmentation_plan(overrides) -> None:
    """Print each segmentation study's `segment` runs and new view images per shape."""
    from pointcalip.ablation.segment import prompt_sources, view_subsets

    cfg = load_ablation_config(["shapenetpart"], [*overrides,
                                                  f"studies={segmentation_studies()}"])
    v = cfg.projector.build().num_views
    key = repr(sorted(cfg.projector.build().settings.items()))
    subsets = {s for group in view_subsets(v, cfg.views_study.order or range(v)).values()
               for s in group}
    others = [p for p in cfg.projectors_study.projectors
              if repr(sorted(p.build().settings.items())) != key]
    plan = {"terms": (2 if cfg.tune.view_weights else 1, 0),
            "views": (len(subsets), sum(len(s) for s in subsets if len(s) < v)),
            "prompts": (len(prompt_sources(cfg)), 0),
            "projectors": (len(cfg.projectors_study.projectors),
                           sum(p.build().num_views for p in others)),
            "backbones": (len(cfg.backbones_study.backbones), 0)}
    print(f"shapenetpart, {cfg.projector.name} ({v} views), {cfg.backbone}; the config's own "
          f"encoding: {v} view images per shape")
    print("| study | segment runs | new view images per shape |")
    print("|---|---|---|")
    for study in segmentation_studies():
        runs, images = plan[study]
        print(f"| {study} | {runs} | {images} |")


def main() -> int:
    if "--segmentation" in sys.argv[1:]:
        sp = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
        sp.add_argument("--segmentation", action="store_true")
        sp.add_argument("--set", dest="overrides", action="append", default=[])
        segmentation_plan(sp.parse_args().overrides)
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--studies", nargs="+", choices=STUDIES, default=list(STUDIES))
    ap.add_argument("--test", type=positive_int, default=2468, help="test clouds")
    ap.add_argument("--val", type=positive_int, default=984, help="validation clouds (of 9,840 train)")
    ap.add_argument("--classes", type=positive_int, default=40)
    ap.add_argument("--grid", type=positive_int, default=200, help="beta grid points per axis")
    ap.add_argument("--projector", choices=["pointclip", "realistic"], default="pointclip",
                    help="the projector of every study but projectors (pointclip: 6 views, "
                         "63 subsets; realistic: 10 views, 1023 subsets)")
    ap.add_argument("--dir", default=None, help="where to build the stores (default: a temporary folder)")
    args = ap.parse_args()
    if args.val > TRAIN_CLOUDS:
        ap.error(f"argument --val: must be at most {TRAIN_CLOUDS}")
    names = load_classnames("modelnet40")
    if args.classes > len(names):
        names = names + [f"class {i}" for i in range(len(names), args.classes)]
    names = names[:args.classes]
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench_ablate-"))
    torch.manual_seed(0)
    backbone = rn50_random(torch.device("cpu"))
    backbone.name, backbone.identity = "RN50", "random-rn50"
    projectors = [ProjectorConfig("pointclip", {"views": "zeroshot"}), ProjectorConfig("realistic")]
    main_projector = projectors[0] if args.projector == "pointclip" else projectors[1]
    cfg = AblationConfig(backbone="RN50", cache_dir=str(root / "store"),
                         output_dir=str(root / "out"), device="cpu", projector=main_projector,
                         tune=TuneConfig(grid=args.grid), studies=list(args.studies))
    cfg.projectors_study.projectors = projectors
    cfg.backbones_study.backbones = ["RN50", "RN101"]
    test, train = Split("test", args.test, names, 1), Split("train", TRAIN_CLOUDS, names, 2)
    val_rows = np.sort(np.random.default_rng(3).choice(TRAIN_CLOUDS, args.val, replace=False))
    splits = ZeroShotSplits(root, test, TuningSet(train, val_rows, "val", f"val: {args.val} "
                                                  f"clouds of TRAIN (random features)"))
    try:
        t0 = time.perf_counter()
        rng = np.random.default_rng(0)
        wanted = projectors if "projectors" in args.studies else [main_projector]
        for pcfg in wanted:
            projector = pcfg.build()
            for split, rows in ((test, np.arange(args.test)), (train, val_rows)):
                fill(FeatureStore(cfg.cache_dir).open(split, projector, backbone), rows, rng)
        print(f"stores: {args.test} test + {args.val} validation clouds x (49 + 1) tokens x 1024 "
              f"dims, float16, for {' and '.join(p.name for p in wanted)} "
              f"({', '.join(str(p.build().num_views) for p in wanted)} views) in "
              f"{time.perf_counter() - t0:.1f} s; grid {args.grid} x {args.grid}; "
              f"{torch.get_num_threads()} threads")
        print("| study | study (s) | files (s) | rows |")
        print("|---|---|---|---|")
        for study in args.studies:
            ctx = AblationContext(cfg, backbone, splits)
            t0 = time.perf_counter()
            result = RUNNERS[study](ctx)
            t_study = time.perf_counter() - t0
            t0 = time.perf_counter()
            write_study(result, Path(cfg.output_dir) / study, [])
            t_files = time.perf_counter() - t0
            print(f"| {study} | {t_study:.1f} | {t_files:.1f} | {len(result.table.rows)} |")
            sys.stdout.flush()
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
