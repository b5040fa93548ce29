#!/usr/bin/env python
"""Throughput of the projectors (CLIP-ready 224x224 images), optionally next to the official code.

    python scripts/bench_projection.py [--batch 32] [--points 1024] [--repeats 7] [--device cpu]
    python scripts/bench_projection.py --pointclip ~/src/PointCLIP --pointclip-v2 ~/src/PointCLIP_V2
    python scripts/bench_projection.py --only realistic realistic_seg --batch 4 --points 2048

For each projector: clouds/s of ours; with --pointclip and --pointclip-v2 (checkouts of
https://github.com/ZrrSkywalker/PointCLIP and https://github.com/yangyangyang127/PointCLIP_V2,
run through scripts/official_code.py) also clouds/s of the official code, the speed ratio,
and how many output pixels agree within 1e-4 (V2's segmentation projector, `realistic_seg`, has
no official counterpart here: scripts/make_segmentation_goldens.py checks it). Timings are the best of `--repeats` runs after
a warm-up (robust to a busy machine); runs of ours and of the official code alternate.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from official_code import OfficialCodeError, pointclip_v2_projection, pointclip_views  # noqa: E402

from pointcalip.commands.options import device, non_negative_int, positive_int  # noqa: E402
from pointcalip.projection import PointCLIPProjector, RealisticProjector  # noqa: E402


#: case name -> (label, projector factory)
CASES = {
    "zeroshot": ("PointCLIP zero-shot (6 x 128 px)", PointCLIPProjector),
    "fewshot": ("PointCLIP few-shot (10 x 224 px)", lambda: PointCLIPProjector(views="fewshot")),
    "realistic": ("PointCLIP V2 realistic (10 x 110 px)", RealisticProjector),
    "realistic_seg": ("PointCLIP V2 segmentation (10 x 184 px)",
                      lambda: RealisticProjector(preset="pointclip_v2_seg")),
}


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
    ap.add_argument("--batch", type=positive_int, default=32)
    ap.add_argument("--points", type=positive_int, default=1024)
    ap.add_argument("--repeats", type=positive_int, default=7)
    ap.add_argument("--device", type=device, default="cpu")
    ap.add_argument("--seed", type=non_negative_int, default=0)
    ap.add_argument("--pointclip", metavar="DIR", help="checkout of the official PointCLIP repository")
    ap.add_argument("--pointclip-v2", metavar="DIR", help="checkout of the official PointCLIP V2 repository")
    ap.add_argument("--only", nargs="+", choices=CASES, default=list(CASES), metavar="CASE",
                    help=f"projectors to time (default all): {', '.join(CASES)}")
    args = ap.parse_args()
    if (args.pointclip is None) != (args.pointclip_v2 is None):
        ap.error("give both --pointclip and --pointclip-v2 to time the official code, or neither")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error(f"--device {args.device}: CUDA is not available here; use --device cpu")

    names = [n for n in CASES if n in args.only]
    cases = [(CASES[n][0], CASES[n][1]()) for n in names]
    official = None
    if args.pointclip:
        makers = {"zeroshot": lambda: pointclip_views(args.pointclip, device=args.device),
                  "fewshot": lambda: pointclip_views(args.pointclip, fewshot=True, device=args.device),
                  "realistic": lambda: pointclip_v2_projection(args.pointclip_v2, device=args.device)}
        try:
            official = [makers[n]() if n in makers else None for n in names]
        except OfficialCodeError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1

    x = random_clouds(args.batch, args.points, args.seed, args.device)
    print(f"{args.batch} clouds x {args.points} points, device {args.device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; best of {args.repeats}")
    if official is None:
        print(f"{'projector':40s} {'ours/s':>9s}")
    else:
        print(f"{'projector':40s} {'ours/s':>9s} {'official/s':>11s} {'speed-up':>9s} {'pixels within 1e-4':>19s}")
    with torch.no_grad():
        for k, (name, ours) in enumerate(cases):
            if official is None or official[k] is None:
                (t_ours,) = best_times([ours], x, args.repeats)
                print(f"{name:40s} {args.batch / t_ours:9.1f}")
                continue
            ref = official[k]
            t_ours, t_ref = best_times([ours, ref.images], x, args.repeats)
            a, r = ours(x), ref.images(x)
            agree = ((a - r).abs() <= 1e-4).float().mean().item()
            print(f"{name:40s} {args.batch / t_ours:9.1f} {args.batch / t_ref:11.1f} "
                  f"{t_ref / t_ours:8.2f}x {100 * agree:18.4f}%")
    if official is None:
        print("(to time the official code too, add --pointclip DIR --pointclip-v2 DIR: checkouts of "
              "github.com/ZrrSkywalker/PointCLIP and github.com/yangyangyang127/PointCLIP_V2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
