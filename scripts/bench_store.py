#!/usr/bin/env python
"""Time the feature store on a ModelNet40-sized split with random features: writing pieces,
finding the missing rows, and reading every row back through CALIP's view logits; then the
cost of checking each piece's checksums: opening the store and reading every row with and
without verification, from the page cache (warm) and with the files evicted from it (cold).

    python scripts/bench_store.py [--clouds 2468] [--views 6] [--tokens 49] [--dim 1024]
                                  [--batch 16] [--classes 40] [--dir /scratch/bench]
    python scripts/bench_store.py --views 10 --tokens 196 --dim 512     # ViT-B/16, 10 views

The features are random unit vectors (timing does not depend on their values). The default
folder is a temporary one, removed afterwards; the store needs clouds x views x (tokens + 1)
x dim x 2 bytes (1.5 GB at the defaults, 5.0 GB for ViT-B/16 with 10 views). "Cold" asks the
kernel to drop the store's pages (posix_fadvise DONTNEED; no root needed).
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pointcalip.commands.options import positive_int
from pointcalip.extract import ExtractStats, SplitFeatures
from pointcalip.store import FeatureStore
from pointcalip.pipeline import compute_view_logits


class Split:
    """Just what FeatureStore.open needs to know about a dataset split."""

    name, split = "bench", "test"

    def __init__(self, n: int):
        self.n = n
        self.settings = {"name": "bench", "n": n}

    def __len__(self) -> int:
        return self.n


class Shapes:
    """Stands for the projector (views) and the backbone (tokens, dim) in the store key."""

    name, identity, precision = "random", "random", "float16"

    def __init__(self, views: int, tokens: int, dim: int):
        self.num_views, self.num_tokens, self.embed_dim = views, tokens, dim
        self.settings = {"views": views}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clouds", type=positive_int, default=2468)
    ap.add_argument("--views", type=positive_int, default=6)
    ap.add_argument("--tokens", type=positive_int, default=49)
    ap.add_argument("--dim", type=positive_int, default=1024)
    ap.add_argument("--batch", type=positive_int, default=16, help="clouds per written piece")
    ap.add_argument("--classes", type=positive_int, default=40)
    ap.add_argument("--dir", default=None, help="where to build the store (default: a temporary folder)")
    args = ap.parse_args()
    n, v, hw, c = args.clouds, args.views, args.tokens, args.dim
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench_store-"))
    print(f"{n} clouds x {v} views x {hw + 1} tokens x {c} dims (float16: "
          f"{n * v * (hw + 1) * c * 2 / 1e9:.2f} GB), pieces of {args.batch} clouds, in {root}")
    try:
        shapes = Shapes(v, hw, c)
        store = FeatureStore(root).open(Split(n), shapes, shapes)
        rng = np.random.default_rng(0)
        g = rng.standard_normal((args.batch, v, c)).astype(np.float16)
        s = rng.standard_normal((args.batch, v, hw, c)).astype(np.float16)
        norms = np.ones((args.batch, v), np.float32)
        t0 = time.perf_counter()
        for start in range(0, n, args.batch):
            rows = np.arange(start, min(start + args.batch, n))
            store.write(rows, g[:len(rows)], s[:len(rows)], norms[:len(rows)])
        t_write = time.perf_counter() - t0

        t0 = time.perf_counter()
        fresh = FeatureStore(root).open(Split(n), shapes, shapes)     # a new process's view
        missing = fresh.missing()
        t_scan = time.perf_counter() - t0
        assert len(missing) == 0

        text = torch.nn.functional.normalize(torch.randn(args.classes, c), dim=-1)
        rows = np.arange(n)
        feats = SplitFeatures(fresh, rows, np.zeros(n, np.int64), ExtractStats(n, 0))
        t0 = time.perf_counter()
        compute_view_logits(feats, text)
        t_logits = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in feats.batches(64):
            pass
        t_read = time.perf_counter() - t0
        checks = {(verify, cold): read_all(root, n, shapes, verify, cold)
                  for cold in (False, True) for verify in (False, True)}
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)
    pieces = -(-n // args.batch)
    print(f"write {pieces} pieces: {t_write:.2f} s ({n / t_write:.0f} clouds/s)")
    print(f"open + find missing rows (checks {pieces} pieces' checksums): {t_scan:.2f} s")
    print(f"read every row (64 a batch): {t_read:.2f} s ({n / t_read:.0f} clouds/s)")
    print(f"read + CALIP view logits of every row: {t_logits:.2f} s "
          f"(CALIP alone {t_logits - t_read:.2f} s)")
    gb = n * v * (hw + 1) * c * 2 / 1e9
    print("\nchecksums (CRC-32 of every piece's arrays, checked when a process first opens it):")
    print("| page cache | verify | open + find missing | read every row | total | clouds/s | GB/s |")
    print("|---|---|---|---|---|---|---|")
    for (verify, cold), (t_open, t_rows) in checks.items():
        total = t_open + t_rows
        print(f"| {'cold' if cold else 'warm'} | {'yes' if verify else 'no'} | {t_open:.2f} s | "
              f"{t_rows:.2f} s | {total:.2f} s | {n / total:.0f} | {gb / total:.2f} |")
    for cold in (False, True):
        extra = sum(checks[(True, cold)]) / sum(checks[(False, cold)]) - 1
        print(f"verification costs {100 * extra:+.0f}% ({'cold' if cold else 'warm'} cache)")
    return 0


def evict(root: Path) -> None:
    """Ask the kernel to drop every file of ``root`` from the page cache."""
    for top, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(top, name), os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def read_all(root: Path, n: int, shapes: "Shapes", verify: bool, cold: bool):
    """A fresh process's view: (seconds to open and find the missing rows, which checks every
    piece when ``verify``; seconds to read every row, 64 a batch)."""
    if cold:
        evict(root)
    t0 = time.perf_counter()
    store = FeatureStore(root, verify=verify).open(Split(n), shapes, shapes)
    assert len(store.missing()) == 0
    t_open = time.perf_counter() - t0
    t0 = time.perf_counter()
    for start in range(0, n, 64):
        store.read(np.arange(start, min(start + 64, n)))
    return t_open, time.perf_counter() - t0


if __name__ == "__main__":
    raise SystemExit(main())
