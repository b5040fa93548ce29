#!/usr/bin/env python
"""Golden arrays from the official PointCLIP V2 segmentation code (``zeroshot_seg/`` of
yangyangyang127/PointCLIP_V2, imported at run time from the checkout given, never copied
here); only its inputs and outputs are written.

* ``v2_shape_iou_golden.npz``: ``calculate_shape_IoU`` (``util.py``) on seeded random predictions.
* ``v2_seg_projection_golden.npz`` (``--projector``): the segmentation projector
  (``realistic_projection.py``: ``Realistic_Projection.get_img``, then ``main.py``'s
  ``Extractor.mv_proj``: crop 20:204, resize to 224, point locations mapped) on seeded clouds,
  on the CPU, twice: as published, and with ``index_put``'s duplicate writes pinned to the
  largest value (see `pinned_index_put`).

    python scripts/make_segmentation_goldens.py --pointclip-v2 ~/src/PointCLIP_V2 [--projector] [--out tests/data]

The official projector calls ``.cuda()`` and builds a dense 112 x 224 x 224 grid per view: on
the CPU it takes about a minute per cloud.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import subprocess
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from official_code import _cuda_means, _quiet  # noqa: E402  (.cuda() -> .to(device); old-torch warnings)


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


def _load(name: str, path: Path) -> types.ModuleType:
    if not path.is_file():
        raise SystemExit(f"{path} not found: --pointclip-v2 must be a PointCLIP_V2 checkout")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def official_seg_projector(checkout: Path):
    """``Realistic_Projection`` (built for the CPU) and ``Extractor.mv_proj`` from the checkout's
    zeroshot_seg folder. main.py imports CLIP, the data loader and the prompt search at module
    level: those names are stubs while it is imported (``mv_proj`` only reads ``self.get_img``),
    ``realistic_projection`` is the file itself; sys.modules is restored afterwards, no bytecode
    is written, and main.py's ``warnings.filterwarnings("ignore")`` is undone."""
    root = checkout / "zeroshot_seg"
    stub = types.ModuleType
    names = ("clip", "best_param", "data", "post_search", "realistic_projection")
    saved = {n: sys.modules.pop(n) for n in names if n in sys.modules}
    write_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        with warnings.catch_warnings():
            projection = _load("realistic_projection", root / "realistic_projection.py")
            sys.modules.update({n: stub(f"stub of PointCLIP V2's {n}") for n in names[:4]})
            sys.modules["clip"].clip = None
            sys.modules["data"].ShapeNetPart = None
            sys.modules["post_search"].search_prompt = sys.modules["post_search"].search_vweight = None
            sys.modules["realistic_projection"] = projection
            main_py = _load("v2_seg_main", root / "main.py")
    finally:
        for n in names:
            sys.modules.pop(n, None)
        sys.modules.update(saved)
        sys.dont_write_bytecode = write_bytecode
    cudnn_benchmark = torch.backends.cudnn.benchmark          # Grid2Image sets it to False
    with _cuda_means("cpu"):
        proj = projection.Realistic_Projection(gpu="cpu")
    torch.backends.cudnn.benchmark = cudnn_benchmark
    return proj, main_py.Extractor.mv_proj


@contextlib.contextmanager
def pinned_index_put():
    """``Tensor.index_put`` (accumulate=False) whose duplicate indices keep the largest value.
    points2grid writes each point's depth into its voxel with index_put; where several points
    share a voxel, which write wins is unspecified (CUDA: any; CPU: in practice the last). The
    max-pool that follows keeps maxima, so the largest is the deterministic reading."""
    original = torch.Tensor.index_put

    def index_put(self, indices, values, accumulate=False):
        if accumulate:
            return original(self, indices, values, accumulate)
        flat = sum(i.long() * stride for i, stride in zip(indices, self.stride()))
        out = self.clone().flatten()
        out.scatter_reduce_(0, flat, values.expand(flat.shape).to(out.dtype), "amax", include_self=False)
        return out.view(self.shape)

    torch.Tensor.index_put = index_put
    try:
        yield
    finally:
        torch.Tensor.index_put = original


def seg_clouds(count: int = 3, points: int = 2048, seed: int = 20) -> np.ndarray:
    """[count, points, 3] float32 seeded clouds of different shapes: an ellipsoid shell, a box
    filled uniformly, and a shell with a rod through it (front and back surfaces overlap)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((count, points, 3), np.float32)
    for i in range(count):
        kind = i % 3
        if kind == 0:
            p = rng.normal(size=(points, 3))
            p = p / np.linalg.norm(p, axis=1, keepdims=True) * [1.0, 0.6, 0.4]
        elif kind == 1:
            p = rng.uniform(-1, 1, size=(points, 3)) * [0.5, 1.0, 0.8]
        else:
            p = rng.normal(size=(points, 3))
            p = p / np.linalg.norm(p, axis=1, keepdims=True) * 0.6
            rod = points // 4
            p[:rod] = np.stack([rng.uniform(-1, 1, rod), rng.normal(0, 0.03, rod), rng.normal(0, 0.03, rod)], 1)
        out[i] = p
    return out


def run_official(proj, mv_proj, clouds: np.ndarray) -> dict:
    """The official projector on each cloud -> {"images" [C, V, 224, 224] float32 (channel 0
    of mv_proj's 3 equal channels), "is_seen" [C, V, N] bool, "point_loc" [C, V, N, 2] (after
    mv_proj's crop mapping), "raw_point_loc" [C, V, N, 2] (get_img's, before it)}."""
    out = {"images": [], "is_seen": [], "point_loc": [], "raw_point_loc": []}
    for i, cloud in enumerate(clouds):
        recorded = {}

        def get_img(pc):
            recorded["out"] = proj.get_img(pc)
            return recorded["out"]
        with torch.no_grad(), _cuda_means("cpu"), _quiet():
            img, is_seen, point_loc = mv_proj(types.SimpleNamespace(get_img=get_img), torch.from_numpy(cloud)[None])
        if not (torch.equal(img[:, 0], img[:, 1]) and torch.equal(img[:, 0], img[:, 2])):
            raise SystemExit("the official images' 3 channels differ: store all three")
        out["images"].append(img[:, 0].numpy())
        out["is_seen"].append(is_seen.numpy() > 0.5)
        out["point_loc"].append(point_loc.numpy())
        out["raw_point_loc"].append(recorded["out"][2].numpy())
        print(f"cloud {i + 1}/{len(clouds)} done", flush=True)
    return {k: np.stack(v) for k, v in out.items()}


def pack_projection(clouds: np.ndarray, published: dict, pinned: dict) -> dict:
    """The arrays stored (about 1.5 MB compressed): the pinned run's images as float16, the
    published run's as the float16 pixels where they differ from those (flat indices and
    values), both runs' visibility, and the point locations (equal in both runs)."""
    for key in ("point_loc", "raw_point_loc"):
        if not np.array_equal(published[key], pinned[key]):
            raise SystemExit(f"{key} differs between the published and the pinned run")
    raw = published["raw_point_loc"]
    if raw.min() < 0 or raw.max() > 255:
        raise SystemExit("raw point locations outside 0..255: store them as int16")
    images, base = published["images"].astype(np.float16), pinned["images"].astype(np.float16)
    changed = np.flatnonzero(images != base)
    return {"points": clouds, "pinned_images": base, "pinned_is_seen": pinned["is_seen"],
            "changed_pixels": changed.astype(np.int32), "changed_values": images.flatten()[changed],
            "is_seen": published["is_seen"], "point_loc": published["point_loc"].astype(np.int16),
            "raw_point_loc": raw.astype(np.uint8)}


def projector_goldens(checkout: Path, commit: str, out_dir: Path) -> None:
    proj, mv_proj = official_seg_projector(checkout)
    clouds = seg_clouds()
    print("published code:")
    published = run_official(proj, mv_proj, clouds)
    print("index_put pinned to the largest duplicate write:")
    with pinned_index_put():
        pinned = run_official(proj, mv_proj, clouds)
    out = out_dir / "v2_seg_projection_golden.npz"
    np.savez_compressed(out, **pack_projection(clouds, published, pinned), source=np.array(
        f"yangyangyang127/PointCLIP_V2 {commit} zeroshot_seg/realistic_projection.py "
        "Realistic_Projection(gpu='cpu').get_img via zeroshot_seg/main.py Extractor.mv_proj, on "
        "the CPU; images: channel 0 of 3 equal ones, float16; pinned_*: index_put keeps the "
        "largest duplicate write; published images = pinned_images with changed_pixels "
        "(flat indices) set to changed_values"))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pointclip-v2", type=Path, required=True, help="PointCLIP_V2 checkout")
    ap.add_argument("--commit", default=None, help="the checkout's commit, when it is an "
                    "exported tree without .git")
    ap.add_argument("--projector", action="store_true", help="also write the segmentation "
                    "projector goldens (minutes on the CPU)")
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
    if args.projector:
        projector_goldens(args.pointclip_v2, commit, args.out)
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
