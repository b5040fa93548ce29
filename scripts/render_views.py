#!/usr/bin/env python
"""Write a PNG montage of every view a projector makes of one point cloud: what CLIP sees.

    python scripts/render_views.py chair.ply --projector realistic -o chair_v2.png
    python scripts/render_views.py cloud.npy --projector pointclip --views fewshot
    python scripts/render_views.py --dataset modelnet40 --root DATA/modelnet40_ply_hdf5_2048 --index 0
    python scripts/render_views.py --synthetic chair --views ring:8:30:tb -o ring.png

Input: a `.npy` array [N, >=3] (used as is, first --num-points points), any file
`pointcalip.datasets.load_point_cloud` reads (.ply .pcd .off .obj ...: centred, unit sphere),
a dataset item, or a built-in synthetic shape. Tiles are the CLIP-ready 224 px images (or the
native maps with --native), one per view, labelled with the view's index and Euler angles.
PointCLIP depth maps hold raw depths (~0.6-2.6, background 0); for display each montage is
scaled by its largest value (brighter = farther). V2 maps are shown as they are (white
background, darker = farther).
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from pointcalip.commands.options import non_negative_int, positive_int
from pointcalip.projection import build_projector


def synthetic_cloud(shape: str, n: int = 2048, seed: int = 0) -> np.ndarray:
    """[n, 3] points on a simple y-up shape inside the unit sphere: chair, table, box or sphere."""
    rng = np.random.default_rng(seed)

    def box(lo, hi, m):  # m points uniform in an axis-aligned box
        return rng.uniform(lo, hi, size=(m, 3))

    if shape == "sphere":
        p = rng.normal(size=(n, 3))
        return 0.9 * p / np.linalg.norm(p, axis=1, keepdims=True)
    if shape == "box":
        p = rng.uniform(-1, 1, size=(n, 3))
        axis = rng.integers(0, 3, size=n)
        p[np.arange(n), axis] = np.sign(p[np.arange(n), axis])  # push onto a face
        return p * np.array([0.5, 0.3, 0.4])
    legs = [(sx * 0.35, sz * 0.35) for sx in (-1, 1) for sz in (-1, 1)]
    parts = [box((x - 0.04, -0.8, z - 0.04), (x + 0.04, -0.05, z + 0.04), n // 8) for x, z in legs]
    if shape == "chair":
        parts.append(box((-0.4, -0.05, -0.4), (0.4, 0.03, 0.4), n // 4))    # seat
        parts.append(box((-0.4, 0.03, -0.4), (0.4, 0.8, -0.34), n // 4))    # back rest at -z
    elif shape == "table":
        parts.append(box((-0.6, -0.05, -0.45), (0.6, 0.03, 0.45), n // 2))  # top
    else:
        raise ValueError(f"unknown synthetic shape {shape!r}: use chair, table, box or sphere")
    parts.append(parts[-1][: n - sum(len(q) for q in parts)])  # rounding: top up to exactly n points
    p = np.concatenate(parts)
    return p[rng.permutation(len(p))][:n]


def load_cloud(args) -> torch.Tensor:
    """-> [N, 3] float32 points from the chosen source."""
    if args.synthetic:
        return torch.from_numpy(synthetic_cloud(args.synthetic, args.num_points, args.seed)).float()
    if args.dataset:
        from pointcalip.datasets import build_dataset  # lazy: only this path needs the datasets
        ds = build_dataset(args.dataset, root=args.root, split=args.split, num_points=args.num_points)
        if not 0 <= args.index < len(ds):
            raise ValueError(f"--index {args.index} out of range: {args.dataset} {args.split} has {len(ds)} clouds")
        points, label = ds[args.index]
        names = getattr(ds, "classnames", None)
        print(f"{args.dataset}[{args.index}]: label {label}" + (f" ({names[label]})" if names else ""))
        return torch.as_tensor(points, dtype=torch.float32)
    if args.path is None:
        raise ValueError("give a cloud file, --dataset NAME --root DIR --index I, or --synthetic SHAPE")
    path = Path(args.path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if path.suffix.lower() == ".npy":
        from pointcalip.datasets.files import read_numpy_cloud  # lazy; checks the array's layout
        points = read_numpy_cloud(path)[: args.num_points]
        if not np.isfinite(points).all():
            raise ValueError(f"{path}: holds NaN/inf coordinates; repair it or let "
                             f"load_point_cloud drop them (pass a .txt copy)")
        return torch.from_numpy(np.ascontiguousarray(points)).float()
    from pointcalip.datasets import load_point_cloud  # lazy
    return load_point_cloud(path, num_points=args.num_points)


def parse_views(text: str | None):
    """'fewshot' | '0,2,4' | 'ring:N[:ELEV[:tb]]' -> a projector `views=` argument."""
    if text is None:
        return None
    if text.startswith("ring:"):
        parts = text.split(":")[1:]
        try:
            spec = {"ring": int(parts[0])}
            if len(parts) > 1 and parts[1]:
                spec["elevation"] = float(parts[1])
        except ValueError:
            raise ValueError(f"--views {text!r}: write ring:N[:ELEVATION[:tb]], e.g. ring:8:30:tb") from None
        if len(parts) > 2:
            spec["top_bottom"] = parts[2] == "tb"
        return spec
    if all(part.strip().isdigit() for part in text.split(",")):
        return [int(part) for part in text.split(",")]
    return text


#: caption strip under each tile: its height and the font size, in pixels
CAPTION, FONT_SIZE = 24, 17


def montage(tiles: np.ndarray, labels: list, cols: int) -> Image.Image:
    """tiles [V, S, S] in [0, 1] -> one grey image, `cols` tiles a row, a caption under each
    (white on dark grey, FONT_SIZE px)."""
    v, s, _ = tiles.shape
    rows = math.ceil(v / cols)
    gap = 4
    canvas = Image.new("L", (cols * (s + gap) + gap, rows * (s + CAPTION + gap) + gap), color=40)
    draw = ImageDraw.Draw(canvas)
    for i in range(v):
        x, y = gap + (i % cols) * (s + gap), gap + (i // cols) * (s + CAPTION + gap)
        canvas.paste(Image.fromarray((np.clip(tiles[i], 0, 1) * 255).round().astype(np.uint8)), (x, y))
        size = FONT_SIZE                      # smaller only where a caption is wider than its tile
        font = ImageFont.load_default(size=size)
        while size > 10 and draw.textlength(labels[i], font=font) > s - 6:
            size -= 1
            font = ImageFont.load_default(size=size)
        draw.text((x + 3, y + s + CAPTION // 2), labels[i], fill=255, font=font, anchor="lm")
    return canvas


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("path", nargs="?", help="cloud/mesh file (.npy used as is; others via load_point_cloud)")
    ap.add_argument("--dataset", help="modelnet40 | modelnet10 | scanobjectnn (with --root and --index)")
    ap.add_argument("--root", help="dataset folder (default: the installed one)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--index", type=non_negative_int, default=0)
    ap.add_argument("--synthetic", choices=["chair", "table", "box", "sphere"], help="built-in shape")
    ap.add_argument("--seed", type=non_negative_int, default=0, help="seed of the synthetic shape")
    ap.add_argument("--num-points", type=positive_int, default=1024)
    ap.add_argument("--projector", choices=["pointclip", "realistic"], default="pointclip")
    ap.add_argument("--views", help="preset name, indices '0,2,4', or 'ring:N[:ELEVATION[:tb]]'")
    ap.add_argument("--preset", help="preset the view indices refer to (e.g. fewshot)")
    ap.add_argument("--native", action="store_true", help="show the native maps, not the 224 px images")
    ap.add_argument("--cols", type=positive_int, default=None, help="tiles per row (default: all views in 1-2 rows)")
    ap.add_argument("-o", "--out", default="views.png", help="output PNG (default views.png)")
    args = ap.parse_args(argv)

    try:
        points = load_cloud(args)
        kwargs = {"views": parse_views(args.views)}
        if args.preset:
            kwargs["preset"] = args.preset
        proj = build_projector(args.projector, **kwargs)
    except (ValueError, KeyError, RuntimeError, OSError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"render_views.py: error: {message}", file=sys.stderr)
        return 2
    tiles = proj.project(points)[0] if args.native else proj(points)[0, :, 0]  # [V, S, S]
    if args.projector == "pointclip":
        tiles = tiles / tiles.max().clamp_min(1e-12)
    angles = proj.view_set.angles
    tilts = proj.view_set.tilts or (0.0,) * proj.num_views
    labels = [f"{i}: ({', '.join(f'{math.degrees(a):.0f}°' for a in ang)})"
              + (f" tilt {math.degrees(t):.0f}°" if t else "") for i, (ang, t) in enumerate(zip(angles, tilts))]
    cols = args.cols or (proj.num_views if proj.num_views <= 6 else math.ceil(proj.num_views / 2))
    image = montage(tiles.numpy(), labels, cols)
    try:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        image.save(args.out)
    except (OSError, ValueError) as err:  # unwritable folder, unknown image extension
        print(f"render_views.py: error: cannot write {args.out}: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {proj.num_views} views of {len(points)} points, "
          f"{type(proj).__name__} {tiles.shape[-1]} px tiles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
