"""Time PointCALIP's beta / view-weight search on ModelNet40-sized random cached logits.

    python scripts/bench_search.py [--clouds 2468 --views 6 --classes 40 --grid 200] [--dense]

Prints seconds for the 200 x 200 beta search (and the dense reference with --dense, and the
view-weight search with --weights).
"""
from __future__ import annotations

import argparse
import time

import torch

from pointcalip.commands.options import non_negative_int, positive_int
from pointcalip.search import accuracy_table, beta_grid, search_betas, search_view_weights


def random_logits(clouds: int = 2468, views: int = 6, classes: int = 40, seed: int = 0):
    """ModelNet40-sized random per-view logits (l0, l1, l2 [N, V, K]) and labels [N]."""
    g = torch.Generator().manual_seed(seed)
    shape = (clouds, views, classes)
    l0 = 20 + 5 * torch.randn(shape, generator=g)
    l1 = 20 + 5 * torch.randn(shape, generator=g)
    l2 = 60 + 10 * torch.randn(shape, generator=g)
    labels = torch.randint(0, classes, (clouds,), generator=g)
    return l0, l1, l2, labels


def time_beta_search(l0, l1, l2, labels, grid: int = 200):
    """Seconds for the grid x grid beta search (CALIP's ranges), and its result."""
    t = time.perf_counter()
    res = search_betas(l0, l1, l2, labels, beta_grid(2.0, grid), beta_grid(0.1, grid))
    return time.perf_counter() - t, res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--clouds", type=positive_int, default=2468)
    p.add_argument("--views", type=positive_int, default=6)
    p.add_argument("--classes", type=positive_int, default=40)
    p.add_argument("--grid", type=positive_int, default=200)
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--dense", action="store_true", help="also time the dense reference")
    p.add_argument("--weights", action="store_true", help="also time the view-weight search")
    args = p.parse_args()

    l0, l1, l2, labels = random_logits(args.clouds, args.views, args.classes, args.seed)
    b2, b3 = beta_grid(2.0, args.grid), beta_grid(0.1, args.grid)
    seconds, res = time_beta_search(l0, l1, l2, labels, args.grid)
    print(f"envelope beta search {args.grid}x{args.grid}, N={args.clouds} V={args.views} "
          f"K={args.classes}: {seconds:.2f} s (target <= 10 s) "
          f"(beta2={res.beta2:.4f} beta3={res.beta3:.4f} acc={res.accuracy:.4f})")
    if args.dense:
        t = time.perf_counter()
        dense = accuracy_table(l0, l1, l2, labels, b2, b3, method="dense")
        print(f"dense reference: {time.perf_counter() - t:.2f} s; tables differ at "
              f"{int((dense != res.accuracy_table).sum())} of {dense.numel()} grid points "
              f"(dense argmaxes float32 logits, envelope works in float64: near-tie rounding)")
    if args.weights:
        t = time.perf_counter()
        w = search_view_weights(l0, l1, l2, labels, res.beta2, res.beta3)
        print(f"view-weight search ({len(w.view_weights)} views): "
              f"{time.perf_counter() - t:.2f} s -> {w.view_weights} acc={w.accuracy:.4f}")


if __name__ == "__main__":
    main()
