#!/usr/bin/env python
"""Golden arrays for the segmentation metric: the official PointCLIP V2 ``calculate_shape_IoU``
(``zeroshot_seg/util.py``, imported at run time from the checkout given, never copied here) on
seeded random predictions; only its inputs and outputs are written.

    python scripts/make_segmentation_goldens.py --pointclip-v2 ~/src/PointCLIP_V2 [--out tests/data]
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
from pathlib import Path

import numpy as np


def official_util(checkout: Path):
    path = checkout / "zeroshot_seg" / "util.py"
    if not path.is_file():
        raise SystemExit(f"{path} not found: --pointclip-v2 must be a PointCLIP_V2 checkout")
    spec = importlib.util.spec_from_file_location("v2_seg_util", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def random_case(util, seed: int = 20, shapes: int = 64, points: int = 96):
    """Seeded predictions inside each shape's category; ground truths use a random subset of
    the parts (empty unions happen); every 5th shape perfect, every 7th one part everywhere."""
    rng = np.random.default_rng(seed)
    counts, starts = np.array(util.seg_num), np.array(util.index_start)
    label = rng.integers(0, 16, size=(shapes, 1))
    seg = np.zeros((shapes, points), np.int64)
    pred = np.zeros((shapes, points), np.int64)
    for i in range(shapes):
        c = label[i, 0]
        used = rng.choice(counts[c], size=rng.integers(1, counts[c] + 1), replace=False)
        seg[i] = starts[c] + rng.choice(used, size=points)
        pred[i] = starts[c] + rng.integers(0, counts[c], size=points)
        if i % 5 == 0:
            pred[i] = seg[i]
        if i % 7 == 0:
            pred[i] = starts[c] + used[0]
    return pred, seg, label


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pointclip-v2", type=Path, required=True, help="PointCLIP_V2 checkout")
    ap.add_argument("--commit", default=None, help="the checkout's commit, when it is an "
                    "exported tree without .git")
    ap.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "tests" / "data")
    args = ap.parse_args()
    util = official_util(args.pointclip_v2)
    pred, seg, label = random_case(util)
    ious, category = util.calculate_shape_IoU(pred, seg, label, None, eva=True)
    cats = sorted(int(c) for c in category)
    commit = args.commit
    try:
        commit = commit or subprocess.run(["git", "-C", str(args.pointclip_v2), "rev-parse", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    out = args.out / "v2_shape_iou_golden.npz"
    np.savez_compressed(
        out, pred=pred.astype(np.uint8), seg=seg.astype(np.uint8), label=label.astype(np.uint8),
        shape_ious=np.array(ious), categories=np.array(cats),
        category_means=np.array([np.mean(category[c]) for c in cats]),
        source=np.array(f"yangyangyang127/PointCLIP_V2 {commit} zeroshot_seg/util.py "
                        f"calculate_shape_IoU(pred, seg, label, None, eva=True)"))
    print(f"wrote {out}: instance mIoU {np.mean(ious):.6f}")


if __name__ == "__main__":
    main()
