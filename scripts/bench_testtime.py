"""What the online test-time cache costs per cloud on stored features (docs/test-time-cache.md).

    python scripts/bench_testtime.py [--clouds 2468] [--classes 40] [--capacity 3]
                                     [--views 6] [--dim 1024] [--tokens 49] [--threads N]

Features shaped as RN50's under the PointCLIP projector (6 views x 1024 channels, 7 x 7
spatial tokens: the descriptor has 6144 channels), float32 as the store reads them back,
base logits with a spread of confidences (so both caches fill and replace). Timed, per cloud,
by the stream runner of `pointcalip adapt` (pointcalip.testtime.run_stream): the positive
cache alone, positive + negative (the target: under 1 ms), the full method with the local
cache (its step only), and the per-cloud k-means that makes the local keys. Prints the
estimate for a ModelNet40-C run (76 sets x 2468 clouds x 5 orders, 4 cache rows).
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch
import torch.nn.functional as F

from pointcalip.testtime import OnlineCache, StreamInputs, kmeans_centres, run_stream


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clouds", type=int, default=2468)
    ap.add_argument("--classes", type=int, default=40)
    ap.add_argument("--capacity", type=int, default=3)
    ap.add_argument("--views", type=int, default=6)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--tokens", type=int, default=49)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    n, k, v = args.clouds, args.classes, args.views
    keys = F.normalize(torch.randn(n, v * args.dim, generator=g), dim=1)
    scale = v ** 0.5
    base = scale * torch.randn(n, k, generator=g) * torch.rand(n, 1, generator=g) * 6
    labels = torch.randint(0, k, (n,), generator=g).numpy()
    spatial = torch.randn(n, v, args.tokens, args.dim, generator=g).half()   # as stored
    order = np.arange(n)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads; {n} clouds, K={k}, "
          f"k={args.capacity}, descriptor {v * args.dim} channels, {v}x{args.tokens} tokens")

    t0 = time.perf_counter()
    centres = torch.cat([kmeans_centres(spatial[i:i + 32], m=3, seed=0)
                         for i in range(0, n, 32)])
    kmeans_ms = (time.perf_counter() - t0) / n * 1e3
    inputs = StreamInputs(base, keys, labels, centres)

    rows = {"+ positive": dict(neg_capacity=0),
            "+ positive + negative": dict(),
            "+ local (full; step only)": dict(local=True)}
    ms = {}
    for name, kw in rows.items():
        run = run_stream(inputs, order, lambda: OnlineCache(k, capacity=args.capacity, scale=scale,
                                                           **kw))
        ms[name] = run.seconds_per_cloud * 1e3
        print(f"  {name:28s} {ms[name]:7.3f} ms per cloud")
    print(f"  {'k-means centres (m = 3)':28s} {kmeans_ms:7.3f} ms per cloud (once per cloud, "
          f"shared by every order)")
    full = ms["+ local (full; step only)"] + kmeans_ms
    print(f"  {'full method incl. k-means':28s} {full:7.3f} ms per cloud")
    per_order = sum(ms.values()) * 76 * 2468 / 1e3
    print(f"ModelNet40-C estimate: 76 sets x 2468 clouds: {per_order / 60:.1f} min per order for the "
          f"three cache rows, {5 * per_order / 60 + 76 * 2468 * kmeans_ms / 6e4:.1f} min for 5 orders "
          f"(k-means once per cloud)")
    target = ms["+ positive + negative"]
    print(f"target global + negative < 1 ms per cloud: {'met' if target < 1 else 'NOT met'} "
          f"({target:.3f} ms)")


if __name__ == "__main__":
    main()
