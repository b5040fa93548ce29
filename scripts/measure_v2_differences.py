"""Measure what each difference of PointCLIP V2's released segmentation code does to our pipeline.

    python scripts/measure_v2_differences.py [--shapes 2 --points 2048 --noise 1.0 --seed 0]
        [--categories lamp chair ...] [--json OUT]

V2's `zeroshot_seg/post_search.py` departs from our dense CLIP (betas 0, equal view weights)
in five ways; each is a switchable variant here, never in the library (docs/segmentation.md,
"Where we depart from V2's released code"):

* ``transposed_pixel``: points are read at the transposed pixel (its location holds (column,
  row) and is used as (row, column)), rounded up as ``ceil((raw - 20) * 224 / 184)``, and
  visible by V2's rule (|image - point intensity| <= 0.1) at that transposed pixel;
* ``channel_mixed_tokens``: the unit-length tokens [HW, C] are stored as a [C, h, w] map and
  read back with ``reshape(HW, C)`` (no transpose), so each "token" holds C consecutive values
  of the channel-major map: several channels of several positions;
* ``fp16_logits``: ``100 * F_s F_t^T`` computed in float16 (ours: float32 from float16 tokens);
* ``lamp_two_prompts``: lamp scored with 2 part prompts (the first two parts) but 4 parts in
  the metric, so its parts 2 and 3 are never predicted;
* ``unseen_part0``: a point visible in no view takes part 0 (ours: its nearest visible point's).

``v2_all`` applies all five together. Data: a planted setting (no CLIP weights are needed):
box-like clouds whose height bands are the category's parts (as ShapeNetPart's synthetic test
folder), rendered with V2's segmentation projector (``pointclip_v2_seg``, one render for
images and locations); each view's 14 x 14 tokens (C = 512) hold the mean text feature of the
parts of the visible points in that token, plus Gaussian noise of norm ``--noise``; part texts
are random unit vectors. Per variant it prints the share of points whose predicted part differs
from ours, instance and class mIoU and their change, and the largest change of a point's
summed logit. It also prints the constructed example of the empty-part rule behind V2's
inflated lamp IoU.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from typing import Dict

import numpy as np
import torch

from pointcalip.datasets.shapenetpart import PART_COUNTS, PART_OFFSETS, SHAPENETPART_CATEGORIES
from pointcalip.commands.options import positive_int
from pointcalip.dense_calip import read_at_pixels, tokens_to_grid
from pointcalip.segmentation import segmentation_scores
from pointcalip.segmentation.points import nearest_visible
from pointcalip.projection import RealisticProjector

VARIANTS = ("transposed_pixel", "channel_mixed_tokens", "fp16_logits", "lamp_two_prompts",
            "unseen_part0")
GRID, DIM, IMAGE = 14, 512, 224
LAMP = SHAPENETPART_CATEGORIES.index("lamp")


def banded_clouds(categories, shapes: int, points: int, rng: np.random.Generator):
    """-> points [M, N, 3] float32, category ids [M], local part ids [M, N]: clouds filling a
    box (many interior points, hidden from every view), parts = height bands."""
    cats = np.repeat(np.asarray(categories), shapes)
    pts = rng.uniform(-1, 1, size=(len(cats), points, 3)) * np.array([0.5, 0.9, 0.4])
    pts /= np.linalg.norm(pts, axis=2).max(axis=1)[:, None, None]
    part = np.zeros((len(cats), points), dtype=np.int64)
    for i, c in enumerate(cats):
        y = pts[i, :, 1]
        part[i] = np.searchsorted(np.quantile(y, np.linspace(0, 1, PART_COUNTS[c] + 1)[1:-1]), y)
    return torch.from_numpy(pts.astype(np.float32)), cats, torch.from_numpy(part)


def planted_tokens(xy, visible, part_text, noise: float, gen: torch.Generator) -> torch.Tensor:
    """xy [M, V, N, 2], visible [M, V, N], part_text [M, N, C] (each point's part text)
    -> tokens [M, V, HW, C] float16, unit rows: per token the mean text of its visible points
    plus noise of norm ``noise`` (tokens no point lands in: noise only)."""
    m, v, n, _ = xy.shape
    cell = (xy.round().clamp(0, IMAGE - 1) * GRID / IMAGE).long()
    token = cell[..., 1] * GRID + cell[..., 0]                                # [M, V, N]
    out = torch.empty(m, v, GRID * GRID, DIM, dtype=torch.float16)
    for i in range(m):                                                      # one shape at a time
        sums = torch.zeros(v, GRID * GRID, DIM)
        weight = visible[i].float().unsqueeze(2) * part_text[i].unsqueeze(0)   # [V, N, C]
        sums.scatter_add_(1, token[i].unsqueeze(2).expand(-1, -1, DIM), weight)
        counts = torch.zeros(v, GRID * GRID).scatter_add_(1, token[i], visible[i].float())
        mean = sums / counts.clamp(min=1).unsqueeze(2)
        tokens = mean + noise * torch.randn(mean.shape, generator=gen) / math.sqrt(DIM)
        out[i] = (tokens / tokens.norm(dim=2, keepdim=True)).half()
    return out


def transposed_locations(xy, depth, images, tolerance: float = 0.1):
    """V2's read: its location (x, y) rounded up after the crop, used as (row, column); its
    visibility: the image at that transposed pixel within ``tolerance`` of the point's value.
    -> (xy [M, V, N, 2] as (column, row) for :func:`read_at_pixels`, visible [M, V, N])."""
    official = torch.ceil(xy * 183 / 223 * 224 / 184).clamp(0, IMAGE - 1)   # our (x, y), V2's rounding
    row, col = official[..., 0].long(), official[..., 1].long()             # used as (row, column)
    m, v = xy.shape[:2]
    mi = torch.arange(m).view(m, 1, 1)
    vi = torch.arange(v).view(1, v, 1)
    seen = (images[mi, vi, row, col] - depth).abs() <= tolerance
    return torch.stack([col, row], dim=3).float(), seen


def predict(tokens, texts, xy, visible, points, cats, *, channel_mixed=False, fp16=False,
            lamp_two=False, part0=False):
    """Dense CLIP (betas 0, equal weights) -> (local part [M, N], summed logits [M, N, P])."""
    out, logits = [], []
    source_all = None if part0 else nearest_visible(points, visible.any(dim=1))
    for i in range(tokens.shape[0]):
        s = tokens[i].float()                                               # [V, HW, C]
        if channel_mixed:
            s = tokens[i].transpose(1, 2).contiguous().reshape(s.shape).float()
        t = texts[int(cats[i])]
        if lamp_two and int(cats[i]) == LAMP:
            t = t[:2]
        s0 = (100 * (s.half() @ t.half().T)).float() if fp16 else 100 * s @ t.T   # [V, HW, P]
        read = read_at_pixels(tokens_to_grid(s0), xy[i], IMAGE)            # [V, N, P]
        summed = (visible[i].float().unsqueeze(2) * read).sum(dim=0)        # [N, P]
        best = summed.argmax(dim=1)
        if source_all is not None:
            best = best[source_all[i]]
        full = torch.zeros(summed.shape[0], len(texts[int(cats[i])]))
        full[:, :summed.shape[1]] = summed
        out.append(best)
        logits.append(full)
    return torch.stack(out), logits


def empty_part_example() -> Dict[str, float]:
    """A lamp shape whose true parts are 0 and 1 only (8 points): scored over its 4 parts, a
    2-prompt prediction can never predict parts 2 and 3, so both count IoU 1 (empty union);
    the same two mistakes made by a 4-prompt prediction land in part 2 and cost its IoU."""
    from pointcalip.segmentation.metrics import shape_mious
    gt = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 1]])
    two = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 0]])        # 2 mistakes between parts 0 and 1
    four = torch.tensor([[0, 0, 0, 2, 1, 1, 1, 2]])       # the same 2 points called part 2
    return {"2 prompts, 4 parts scored": float(shape_mious(two, gt, 4)[0]),
            "4 prompts, 4 parts scored": float(shape_mious(four, gt, 4)[0]),
            "2 prompts, 2 parts scored": float(shape_mious(two, gt, 2)[0])}


def measure(categories, shapes: int = 2, points: int = 2048, noise: float = 1.0,
            seed: int = 0) -> dict:
    rng, gen = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    cats_ids = [SHAPENETPART_CATEGORIES.index(c) for c in categories]
    pts, cats, part = banded_clouds(cats_ids, shapes, points, rng)
    all_text = torch.randn(sum(PART_COUNTS), DIM, generator=gen)
    all_text = all_text / all_text.norm(dim=1, keepdim=True)
    texts = {c: all_text[PART_OFFSETS[c]:PART_OFFSETS[c] + PART_COUNTS[c]] for c in set(cats_ids)}
    projector = RealisticProjector(preset="pointclip_v2_seg")
    t0 = time.perf_counter()
    images, loc = projector.images_and_locations(pts)
    render = time.perf_counter() - t0
    offsets = torch.tensor([PART_OFFSETS[c] for c in cats]).view(-1, 1)
    tokens = planted_tokens(loc.xy, loc.visible, all_text[part + offsets], noise, gen)
    t_xy, t_vis = transposed_locations(loc.xy, loc.depth, images[:, :, 0])
    gt = part + offsets

    def run(name):
        on = set(VARIANTS) if name == "v2_all" else {name}
        xy, vis = (t_xy, t_vis) if "transposed_pixel" in on else (loc.xy, loc.visible)
        return predict(tokens, texts, xy, vis, pts, cats,
                       channel_mixed="channel_mixed_tokens" in on, fp16="fp16_logits" in on,
                       lamp_two="lamp_two_prompts" in on, part0="unseen_part0" in on)

    ours, ours_logits = run("ours")
    base = segmentation_scores(ours + offsets, gt, cats, SHAPENETPART_CATEGORIES, PART_OFFSETS,
                               PART_COUNTS)
    rows = {"ours": {"changed_points": 0.0, "instance_miou": base.instance,
                     "class_miou": base.class_, "max_logit_change": 0.0}}
    for name in VARIANTS + ("v2_all",):
        pred, logits = run(name)
        s = segmentation_scores(pred + offsets, gt, cats, SHAPENETPART_CATEGORIES, PART_OFFSETS,
                                PART_COUNTS)
        rows[name] = {"changed_points": float((pred != ours).float().mean()),
                      "instance_miou": s.instance, "class_miou": s.class_,
                      "max_logit_change": max(float((a - b).abs().max())
                                              for a, b in zip(logits, ours_logits))}
        if LAMP in cats_ids:
            rows[name]["lamp_miou"] = s.categories["lamp"].miou
    if LAMP in cats_ids:
        rows["ours"]["lamp_miou"] = base.categories["lamp"].miou
    return {"shapes": len(cats), "points": points, "noise": noise, "seed": seed,
            "unseen_share": float((~loc.visible.any(dim=1)).float().mean()),
            "transposed_visibility_agreement": float((t_vis == loc.visible).float().mean()),
            "render_s": render, "variants": rows, "empty_part_example": empty_part_example()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--categories", nargs="+", default=list(SHAPENETPART_CATEGORIES),
                    choices=SHAPENETPART_CATEGORIES)
    ap.add_argument("--shapes", type=positive_int, default=2, help="shapes per category")
    ap.add_argument("--points", type=positive_int, default=2048)
    ap.add_argument("--noise", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    out = measure(args.categories, args.shapes, args.points, args.noise, args.seed)
    print(f"{out['shapes']} shapes x {out['points']} points, noise {out['noise']}, seed "
          f"{out['seed']}; unseen points {out['unseen_share']:.1%}; V2's visibility at the "
          f"transposed pixel agrees with ours on {out['transposed_visibility_agreement']:.1%}; "
          f"load average {os.getloadavg()[0]:.1f}")
    lamp = "lamp_miou" in out["variants"]["ours"]
    print("| variant | points whose part changes | instance mIoU (change) | class mIoU (change) |"
          + (" lamp mIoU (change) |" if lamp else "") + " max logit change |")
    print("|---|---|---|---|" + ("---|" if lamp else "") + "---|")
    ref = out["variants"]["ours"]
    for name, r in out["variants"].items():
        cells = [f"{r['changed_points']:.1%}"]
        for key in ("instance_miou", "class_miou") + (("lamp_miou",) if lamp else ()):
            cells.append(f"{r[key]:.3f} ({r[key] - ref[key]:+.3f})")
        cells.append(f"{r['max_logit_change']:.3g}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("empty-part rule (one lamp shape, true parts 0 and 1): "
          + ", ".join(f"{k}: mIoU {v:.3f}" for k, v in out["empty_part_example"].items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
