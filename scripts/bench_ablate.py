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
from pointcalip.ablation.config import STUDIES, AblationConfig
from pointcalip.ablation.context import AblationContext
from pointcalip.ablation.report import write_study
from pointcalip.ablation.run import RUNNERS
from pointcalip.commands.options import positive_int
from pointcalip.config import ProjectorConfig, TuneConfig
from pointcalip.prompts import load_classnames
from pointcalip.store import FeatureStore
from pointcalip.zeroshot import TuningSet, ZeroShotSplits

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


def main() -> int:
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
