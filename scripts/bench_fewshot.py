#!/usr/bin/env python
"""Time the few-shot methods on stored RN50-sized random features, with their shipped recipes
(configs/fewshot_defaults.yaml): wall time and peak memory per (method, seed).

    python scripts/bench_fewshot.py [--shots 16] [--classes 40] [--views 10] [--val 984]
                                    [--test 2468] [--methods tip tip_f adapter calip_fs]

A store of random unit features (16 shots x 40 classes + validation + test clouds, 10 views,
49 tokens x 1,024 dims) is written once into a temporary folder (or --dir); each method then
runs in its own process, which reads what it needs from the store, runs one seed exactly as
`pointcalip fewshot` does (train or search on validation, then test), and reports its time and
peak resident memory. The accuracies are meaningless (random features); the work is real.
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pointcalip.commands.options import positive_int
from pointcalip.extract import ExtractStats, SplitFeatures
from pointcalip.fewshot.config import FewShotConfig
from pointcalip.fewshot.data import shot_rows, validation_rows
from pointcalip.fewshot.run import RUNNERS
from pointcalip.fewshot.stages import FewShotSplits, Prepared, StoredFeatures, ZeroShotBase, run_folders
from pointcalip.store import FeatureStore
from pointcalip.pipeline import ViewLogits, compute_view_logits, tune

DIM, TOKENS = 1024, 49


class Split:
    """What the store and the runs need to know about a split: its size and labels."""

    def __init__(self, split: str, labels: np.ndarray):
        self.name, self.split, self.labels = "bench", split, labels
        self.classnames = [f"class{c}" for c in range(int(labels.max()) + 1)]
        self.settings = {"name": "bench", "split": split, "n": len(labels)}

    def __len__(self) -> int:
        return len(self.labels)


class Shapes:
    """Stands for the projector (views) and the backbone (tokens, dim, device) in the store."""

    name, identity, precision, device = "random", "random", "float16", torch.device("cpu")

    def __init__(self, views: int):
        self.num_views, self.num_tokens, self.embed_dim = views, TOKENS, DIM
        self.settings = {"views": views}


def splits(args):
    per_class_train = args.shots + -(-args.val // args.classes) + 1
    train = Split("train", np.repeat(np.arange(args.classes), per_class_train))
    test = Split("test", np.arange(args.test) % args.classes)
    return train, test


def fill(args, root: Path) -> None:
    """Random unit features for validation, every shot and the test split."""
    train, test = splits(args)
    shapes = Shapes(args.views)
    rng = np.random.default_rng(0)
    val = validation_rows(train.labels, args.val / len(train), 0)
    for split, rows in ((train, np.union1d(val, shot_rows(train.labels, val, args.shots, 1))),
                        (test, np.arange(len(test)))):
        store = FeatureStore(root).open(split, shapes, shapes)
        for start in range(0, len(rows), 64):
            chunk = rows[start:start + 64]
            unit = lambda *shape: (lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True))(  # noqa: E731
                rng.standard_normal(shape, dtype=np.float32))
            store.write(chunk, unit(len(chunk), args.views, DIM),
                        unit(len(chunk), args.views, TOKENS, DIM),
                        rng.uniform(1, 3, (len(chunk), args.views)).astype(np.float32))


def child(args, root: Path) -> dict:
    """Run one method for seed 1 from the store; -> seconds and peak memory."""
    cfg = FewShotConfig()
    cfg.tune.val_fraction = args.val / len(splits(args)[0])
    train, test = splits(args)
    shapes = Shapes(args.views)
    t0 = time.perf_counter()
    val = validation_rows(train.labels, cfg.tune.val_fraction, 0)
    rows = np.union1d(val, shot_rows(train.labels, val, args.shots, 1))
    store = FeatureStore(root)
    feats = {s.split: SplitFeatures(store.open(s, shapes, shapes), r, s.labels[r], ExtractStats(len(r), 0))
             for s, r in ((train, rows), (test, np.arange(len(test))))}
    text = torch.nn.functional.normalize(torch.randn(args.classes, DIM), dim=-1)
    logits = compute_view_logits(feats["train"], text)
    test_logits = compute_view_logits(feats["test"], text)
    at = np.searchsorted(rows, val)
    found = tune(ViewLogits(*(x[at] for x in logits.as_tuple()), logits.labels[at]), cfg.tune)
    t_zero = time.perf_counter() - t0
    out = Path(tempfile.mkdtemp(prefix="bench_fewshot_runs-"))
    data = FewShotSplits(root, train, test, val)
    stored = StoredFeatures(data, feats["train"], feats["test"])
    zero = ZeroShotBase(text, rows, logits, test_logits, found)
    ctx = Prepared(cfg, shapes, data, stored, zero, run_folders(cfg, out, False, stored, zero, shapes))
    t0 = time.perf_counter()
    run = RUNNERS[args.child](ctx, args.shots, 1)
    seconds = time.perf_counter() - t0
    shutil.rmtree(out, ignore_errors=True)
    return {"method": args.child, "seconds": seconds, "shared_s": t_zero, "epochs": run.epochs_run,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "trainable": run.trainable_parameters}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shots", type=positive_int, default=16)
    ap.add_argument("--classes", type=positive_int, default=40)
    ap.add_argument("--views", type=positive_int, default=10)
    ap.add_argument("--val", type=positive_int, default=984, help="validation clouds (10%% of ModelNet40 train)")
    ap.add_argument("--test", type=positive_int, default=2468)
    ap.add_argument("--methods", nargs="+", choices=sorted(RUNNERS), default=["tip", "tip_f", "adapter", "calip_fs"])
    ap.add_argument("--dir", default=None, help="store folder (default: a temporary one)")
    ap.add_argument("--child", choices=sorted(RUNNERS), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args, Path(args.dir))))
        return 0
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench_fewshot-"))
    print(f"{args.shots} shots x {args.classes} classes, {args.val} validation and {args.test} test "
          f"clouds, {args.views} views x {TOKENS + 1} tokens x {DIM} dims; torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads; store in {root}")
    try:
        t0 = time.perf_counter()
        fill(args, root)
        print(f"store written in {time.perf_counter() - t0:.1f} s")
        print(f"{'method':10s} {'seconds':>9s} {'epochs':>7s} {'peak MB':>9s} {'trainable':>10s}  "
              f"(+ reading the store, zero-shot logits and search, shared by all)")
        for method in args.methods:
            cmd = [sys.executable, __file__, "--child", method, "--dir", str(root), "--shots",
                   str(args.shots), "--classes", str(args.classes), "--views", str(args.views),
                   "--val", str(args.val), "--test", str(args.test)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"{method}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
                return 1
            r = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{method:10s} {r['seconds']:9.1f} {str(r['epochs'] or '-'):>7s} {r['peak_mb']:9.0f} "
                  f"{r['trainable']:10d}  (+ {r['shared_s']:.1f} s)")
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
