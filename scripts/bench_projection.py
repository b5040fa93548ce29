#!/usr/bin/env python
"""Throughput of the projectors (CLIP-ready 224x224 images) next to the official code.

    python scripts/bench_projection.py [--batch 32] [--points 1024] [--repeats 7] [--device cpu]

For each projector: clouds/s of ours and of the official implementation (the test-only port
in tests/official_projectors.py), the speed ratio, and how many output pixels agree within
1e-4. Timings are the best of `--repeats` runs after a warm-up (robust to a busy machine);
runs of ours and of the official code alternate.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import official_projectors as official  # noqa: E402

from pointcalip.projection import PointCLIPProjector, RealisticProjector  # noqa: E402


def random_clouds(batch: int, points: int, seed: int, device: str) -> torch.Tensor:
    """[batch, points, 3] clouds inside the unit sphere (as ModelNet40's h5 clouds)."""
    g = torch.Generator().manual_seed(seed)
    pts = torch.rand(batch, points, 3, generator=g) * 2 - 1
    pts = pts * torch.tensor([1.0, 0.7, 0.4])  # box-like, unequal sides
    return (pts / pts.norm(dim=-1).amax()).to(device)


def best_times(fns, x: torch.Tensor, repeats: int) -> list:
    """Best wall time of each fn(x) over `repeats` rounds (after a warm-up); in each round
    the functions run one after the other, so load from other processes hits both alike."""
    def sync():
        if x.is_cuda:
            torch.cuda.synchronize()
    for fn in fns:
        fn(x)
    sync()
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn(x)
            sync()
            best[i] = min(best[i], time.perf_counter() - t)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--points", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    x = random_clouds(args.batch, args.points, args.seed, args.device)
    v1_zs, v1_fs, v2 = official.PCViews(False), official.PCViews(True), official.Realistic_Projection()
    cases = [
        ("PointCLIP zero-shot (6 x 128 px)", PointCLIPProjector(), v1_zs.mv_proj),
        ("PointCLIP few-shot (10 x 224 px)", PointCLIPProjector(views="fewshot"), v1_fs.mv_proj),
        ("PointCLIP V2 realistic (10 x 110 px)", RealisticProjector(), v2.real_proj),
    ]
    print(f"{args.batch} clouds x {args.points} points, device {args.device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; best of {args.repeats}")
    print(f"{'projector':40s} {'ours/s':>9s} {'official/s':>11s} {'speed-up':>9s} {'pixels within 1e-4':>19s}")
    with torch.no_grad():
        for name, ours, ref in cases:
            t_ours, t_ref = best_times([ours, ref], x, args.repeats)
            a, r = ours(x), ref(x)
            agree = ((a.reshape(r.shape) - r).abs() <= 1e-4).float().mean().item()
            print(f"{name:40s} {args.batch / t_ours:9.1f} {args.batch / t_ref:11.1f} "
                  f"{t_ref / t_ours:8.2f}x {100 * agree:18.4f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
