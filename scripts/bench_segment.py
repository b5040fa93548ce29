"""Time `pointcalip segment` from stored features on ShapeNetPart-sized random inputs.

    python scripts/bench_segment.py [--test 2874 --val 1870 --points 2048 --views V]
        [--tokens 196 --dim 512] [--scale 0.1] [--projector realistic]

Stages timed as `segment` runs them after encoding: the VAL point logits (locate, dense
CALIP terms, reads at the points on `tune.points` points, nearest-visible fallback), the
per-category search, and the TEST pass (the same at every point, dense CLIP and tuned CALIP
predictions from one `locate` per batch). `locate` (rendering the depth maps to find each
point's pixel and visibility) is also reported on its own. Spatial tokens are random unit
vectors (one batch, reused; reading the store is not timed); clouds are random blobs (many
interior points: about 40% are visible in no view and take their nearest visible point's
label, far more than on ShapeNetPart's surface samples). `--scale` runs a share of the shapes
and also prints the times scaled up to the full sizes.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from pointcalip.commands.options import positive_int
from pointcalip.datasets.shapenetpart import PART_COUNTS
from pointcalip.projection import build_projector
from pointcalip.segmentation.config import SegmentConfig
from pointcalip.segmentation.points import PointLogits, predict_local
from pointcalip.segmentation.run import shape_point_logits, tune
from pointcalip.segmentation.search import Group


def clouds(n: int, points: int, rng) -> torch.Tensor:
    p = rng.normal(size=(n, points, 3)) * np.array([0.5, 0.9, 0.4])
    p /= np.linalg.norm(p, axis=2).max(axis=1)[:, None, None]
    return torch.from_numpy(p.astype(np.float32))


def batches(n, args, rng):
    """Batches of (spatial, points, categories). The tokens are one random batch made once
    and reused (as the store would hand them over: making them is not timed)."""
    pool = torch.nn.functional.normalize(
        torch.randn(args.batch, args.views, args.tokens, args.dim), dim=-1)
    for s in range(0, n, args.batch):
        b = min(args.batch, n - s)
        yield pool[:b], clouds(b, args.points, rng), rng.integers(0, 16, size=b)


class TimedLocate:
    """The projector, with the seconds spent in ``locate`` added up in ``seconds``."""

    def __init__(self, projector):
        self.projector, self.seconds = projector, 0.0

    def __getattr__(self, name):
        return getattr(self.projector, name)

    def locate(self, *args, **kwargs):
        t0 = time.perf_counter()
        out = self.projector.locate(*args, **kwargs)
        self.seconds += time.perf_counter() - t0
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--test", type=positive_int, default=2874)
    ap.add_argument("--val", type=positive_int, default=1870)
    ap.add_argument("--points", type=positive_int, default=2048)
    ap.add_argument("--views", type=positive_int, default=None,
                    help="the projector's first VIEWS views (default: all; realistic 10, "
                         "pointclip 6)")
    ap.add_argument("--tokens", type=positive_int, default=196)
    ap.add_argument("--dim", type=positive_int, default=512)
    ap.add_argument("--batch", type=positive_int, default=16)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--projector", default="realistic")
    args = ap.parse_args()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    cfg = SegmentConfig()
    projector = build_projector(args.projector)
    if args.views is not None and projector.num_views != args.views:
        projector = projector.select_views(list(range(args.views)))
    args.views = projector.num_views
    projector = TimedLocate(projector)
    texts = {c: torch.nn.functional.normalize(torch.randn(PART_COUNTS[c], args.dim), dim=-1)
             for c in range(16)}
    n_val, n_test = max(1, round(args.val * args.scale)), max(1, round(args.test * args.scale))
    times = {}

    t0 = time.perf_counter()
    keep = np.sort(rng.choice(args.points, size=min(cfg.tune.points, args.points), replace=False))
    parts: dict = {}
    for spatial, pts, cats in batches(n_val, args, rng):
        for c, (sel, lg) in shape_point_logits(spatial, pts, cats, texts, projector, True, None,
                                               keep).items():
            gt = torch.randint(0, PART_COUNTS[c], (len(sel), keep.size))
            parts.setdefault(c, []).append((lg, gt))
    groups = {c: Group(PointLogits(*(torch.cat([getattr(lg, k) for lg, _ in v])
                                     for k in ("s0", "s1", "s2", "visible", "source"))),
                       torch.cat([g for _, g in v]), PART_COUNTS[c]) for c, v in parts.items()}
    times["val point logits"] = time.perf_counter() - t0

    located = {"val": projector.seconds}

    t0 = time.perf_counter()
    params = tune(groups, cfg)
    times["search (per category)"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    for spatial, pts, cats in batches(n_test, args, rng):
        for c, (sel, lg) in shape_point_logits(spatial, pts, cats, texts, projector, True,
                                               None).items():
            predict_local(lg)
            p = params[c]
            predict_local(lg, p.beta2, p.beta3, p.view_weights)
    times["test pass"] = time.perf_counter() - t0
    located["test"] = projector.seconds - located["val"]
    total = sum(times.values())
    print(f"{n_val} val / {n_test} test shapes, {args.points} points, {args.views} views "
          f"({args.projector}), {args.tokens} x {args.dim} tokens, {torch.get_num_threads()} "
          f"threads, load average {os.getloadavg()[0]:.1f} at the end")
    for k, v in times.items():
        print(f"  {k:26s} {v:8.2f} s   (x{1 / args.scale:g}: {v / args.scale:8.1f} s)")
        if k in ("val point logits", "test pass"):
            split = k.split()[0]
            print(f"    of which locate {located[split]:.2f} s")
    print(f"  search scored {sum(p.evaluated for p in params.values())} candidates "
          f"(grid points and view-weight trials) over {len(params)} categories")
    print(f"  total {total:.2f} s (scaled to the full splits: {total / args.scale:.0f} s)")


if __name__ == "__main__":
    main()
