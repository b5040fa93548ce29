#!/usr/bin/env python
"""Write golden arrays for the tests: outputs of other projects' code on fixed inputs, and
regression outputs of our own code.

    python scripts/make_goldens.py --pointclip ~/src/PointCLIP --pointclip-v2 ~/src/PointCLIP_V2 [--out tests/data]
    python scripts/make_goldens.py --tiny-clip

The official code is run from the checkouts given (see scripts/official_code.py: imported at
run time, never copied here) and only its outputs are written, with the inputs they came
from, so the tests compare against stored arrays and never need the other repositories.

Golden kinds (each one function returning named arrays, one file, the flags it needs; every
kind whose flags are given is written):

  projector  --pointclip DIR --pointclip-v2 DIR  ->  projector_goldens.npz
      official PointCLIP (zero-shot, few-shot) and PointCLIP V2 (realistic) projections of
      fixed clouds (see `projector_goldens` for the keys).
  Tip-Adapter  --tip-adapter DIR  ->  tip_adapter_goldens.npz
      the official Tip-Adapter's training-free search and Tip-Adapter-F's training (first
      loss, gradient and key update, every loss, best keys, search, test accuracy) on fixed
      synthetic view features at 1 view and at 10 views with unequal view weights (see
      `tip_adapter_goldens`).
  PointCLIP adapter recipe  --pointclip-recipe DIR  ->  adapter_recipe_goldens.npz
      the learning rate of every epoch of PointCLIP's adapter training (Dassl3D's scheduler
      with its rn50.yaml settings) and its smooth_loss on random logits.
  tiny CLIP  --tiny-clip  ->  tiny_clip_goldens.npz
      our backbone's tokens and CALIP logits for the tiny seeded test CLIPs: regression
      goldens that catch numeric drift (see `tiny_clip_goldens`).

To add a kind: write `<kind>_goldens(args) -> dict of arrays`, add its flags in `add_flags`
and a `GoldenKind` to GOLDEN_KINDS. Every file also gets `meta_*` strings: torch and NumPy
versions, the date and the command line.
"""
from __future__ import annotations

import argparse
import datetime
import io
import os
import platform
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Sequence, Tuple

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from official_code import (OfficialCodeError, describe_checkout, describe_tip_adapter,  # noqa: E402
                           pointclip_adapter_recipe, pointclip_v2_projection, pointclip_views,
                           run_tip_adapter, to_numpy)

Arrays = Dict[str, np.ndarray]
REPO = Path(__file__).resolve().parent.parent


# --- fixed inputs ----------------------------------------------------------------------------------

def fixed_cloud(shape: str, n: int, seed: int) -> np.ndarray:
    """[n, 3] float32 points inside the unit sphere, not centred on the origin (the V2
    projector re-centres on the bounding box, PointCLIP does not).

    box: a solid box with unequal sides; shell: points near an ellipsoid's surface; chair: a
    seat, a back and four legs (flat parts put many points into one pixel).
    """
    rng = np.random.default_rng(seed)
    if shape == "box":
        p = rng.uniform(-1, 1, size=(n, 3)) * [1.0, 0.8, 0.5]
    elif shape == "shell":
        d = rng.normal(size=(n, 3))
        p = d / np.linalg.norm(d, axis=1, keepdims=True) * [0.9, 0.6, 0.75]
        p += rng.normal(scale=0.01, size=(n, 3))
    elif shape == "chair":  # y up; parts as (low corner, high corner, share of the points)
        parts = [((-.5, -.1, -.5), (.5, 0., .5), .35), ((-.5, 0., .4), (.5, .9, .5), .3)]
        parts += [((x, -.8, z), (x + .08, -.1, z + .08), .0875) for x in (-.5, .42) for z in (-.5, .42)]
        counts = rng.multinomial(n, [w for _, _, w in parts])
        p = np.concatenate([rng.uniform(lo, hi, size=(m, 3)) for (lo, hi, _), m in zip(parts, counts)])
        p = p[rng.permutation(n)]
    else:
        raise ValueError(f"unknown fixed cloud shape {shape!r}; use box, shell or chair")
    p = p + rng.uniform(-0.1, 0.1, size=3)                      # off-centre
    return (p / np.linalg.norm(p, axis=1).max() * 0.95).astype(np.float32)


# --- golden kinds ----------------------------------------------------------------------------------

SMALL_CLOUDS = (("box", 0), ("shell", 1), ("chair", 2))  # (shape, seed), 1024 points each
LARGE_CLOUD = ("chair", 3, 20_000)                        # (shape, seed, points)
IMAGE_CLOUD = 0                                           # the small cloud whose CLIP images are kept
V2_IMAGE_VIEWS = (0, 9)                                   # V2 images are dense: two views (two tilts)


def projector_goldens(args: argparse.Namespace) -> Arrays:
    """Official projections of fixed clouds. Keys (float32 unless said otherwise):

    clouds [3, 1024, 3]                      the inputs (box, shell, chair), fed as they are
    pointclip_zeroshot_maps [3, 6, 128, 128] PCViews.get_img of trainers/mv_utils_zs.py
    pointclip_fewshot_maps [3, 10, 224, 224] PCViews.get_img of trainers/mv_utils_fs.py
    realistic_maps [3, 10, 110, 110]         Realistic_Projection.get_img (one channel)
    pointclip_zeroshot_images [6, 224, 224]  PointCLIP_ZS.mv_proj of cloud `image_cloud`,
    pointclip_fewshot_images [10, 224, 224]  PointCLIP_Model.mv_proj, and PointCLIPV2_ZS.real_proj
    realistic_images [2, 224, 224]           for the views `realistic_image_views`: channel 0 only,
                                             the three channels being equal (checked here)
    image_cloud, realistic_image_views       int64 indices
    large_cloud [1, 20000, 3]                many points per pixel
    large_pointclip_zeroshot_maps [1, 6, 128, 128], large_realistic_maps [1, 10, 110, 110]
    meta_pointclip_commit, meta_pointclip_v2_commit, meta_*_url, meta_*_sha256 (the files used)
    """
    zeroshot = pointclip_views(args.pointclip)
    fewshot = pointclip_views(args.pointclip, fewshot=True)
    realistic = pointclip_v2_projection(args.pointclip_v2)
    clouds = np.stack([fixed_cloud(shape, 1024, seed) for shape, seed in SMALL_CLOUDS])
    shape, seed, n = LARGE_CLOUD
    large = fixed_cloud(shape, n, seed)[None]
    pts, big = torch.from_numpy(clouds), torch.from_numpy(large)
    one = pts[IMAGE_CLOUD:IMAGE_CLOUD + 1]

    out: Arrays = {"clouds": clouds, "large_cloud": large, "image_cloud": np.array(IMAGE_CLOUD),
                   "realistic_image_views": np.array(V2_IMAGE_VIEWS)}
    for key, proj in (("pointclip_zeroshot", zeroshot), ("pointclip_fewshot", fewshot), ("realistic", realistic)):
        out[f"{key}_maps"] = to_numpy(proj.maps(pts))
        images = to_numpy(proj.images(one))[0]                    # [V, 3, 224, 224]
        if not all(np.array_equal(images[:, 0], images[:, c]) for c in (1, 2)):
            raise OfficialCodeError(f"{proj.name}: the three image channels differ; store them all")
        out[f"{key}_images"] = images[list(V2_IMAGE_VIEWS) if key == "realistic" else slice(None), 0]
    out["large_pointclip_zeroshot_maps"] = to_numpy(zeroshot.maps(big))
    out["large_realistic_maps"] = to_numpy(realistic.maps(big))
    for which, path in (("pointclip", args.pointclip), ("pointclip_v2", args.pointclip_v2)):
        for field, value in describe_checkout(path, which).items():
            out[f"meta_{which}_{field}"] = np.array(value)
    return out


TINY_CLASSES = ("airplane", "chair", "lamp", "night_stand")
TINY_TEMPLATES = ("point cloud depth map of a {}.", "a depth map of a {}.")
TINY_HEAD = (1.3, 0.07, (1.0, 0.5, 0.25, 1.0, 0.75, 0.5))    # beta2, beta3, view weights


def tiny_clip_goldens(args: argparse.Namespace) -> Arrays:
    """Our own backbone and CALIP head on the tiny seeded CLIPs of tests/tiny_clip.py, so the
    tests catch numeric drift (open_clip-style regression goldens). Keys, per model `m` in
    resnet, vit (float32):

    tiny_clouds [2, 1024, 3]               inputs, projected by PointCLIPProjector() (6 views)
    m_global [12, 32], m_norms [12]        encode_images of the 2 x 6 views (unit rows, lengths)
    m_spatial [12, 49, 32]                 their spatial tokens
    m_text [4, 32]                         encode_text(TINY_CLASSES, TINY_TEMPLATES)
    m_l0, m_l1, m_l2 [2, 6, 4]             CalipHead.view_logits
    m_logits [2, 4]                        CalipHead(beta2, beta3, view weights of TINY_HEAD)
    """
    sys.path.insert(0, str(REPO / "tests"))
    import tempfile

    from pointcalip.backbones import load_clip  # first: it silences openai-clip's import warning
    from pointcalip.head import CalipHead
    from pointcalip.projection import PointCLIPProjector
    from tiny_clip import write_tiny_checkpoints

    clouds = np.stack([fixed_cloud(shape, 1024, seed) for shape, seed in SMALL_CLOUDS[:2]])
    images = PointCLIPProjector()(torch.from_numpy(clouds)).flatten(0, 1)
    out: Arrays = {"tiny_clouds": clouds}
    with tempfile.TemporaryDirectory() as tmp:      # loaded as the tests load them (load_clip)
        paths = write_tiny_checkpoints(tmp)
        backbones = {name: load_clip(paths[name], device="cpu") for name in ("resnet", "vit")}
    for name, backbone in backbones.items():
        g, s, norms = backbone.encode_images(images, return_norms=True)
        text = backbone.encode_text(TINY_CLASSES, TINY_TEMPLATES)
        beta2, beta3, weights = TINY_HEAD
        head = CalipHead(text, beta2, beta3, weights)
        views = head.view_logits(g.view(2, 6, -1), s.view(2, 6, *s.shape[1:]))
        arrays = {"global": g, "norms": norms, "spatial": s, "text": text, "l0": views[0],
                  "l1": views[1], "l2": views[2], "logits": head.aggregate(*views)}
        out.update({f"{name}_{k}": v.detach().numpy() for k, v in arrays.items()})
    return out


#: (case, views, view weights, text noise, cloud noise, lr) of the Tip-Adapter goldens; 4
#: classes, 32 channels, 4 shots a class, 10 validation and 10 test clouds a class, 20 epochs.
#: Chosen (once, by trying a few) so that zero-shot is about 50-60% on validation, the cache
#: helps, and training changes the validation accuracy over the epochs: the best epoch is
#: neither the first nor the last. v10 trains at Tip-Adapter-F's lr 1e-3; v1 (one batch of 16
#: shots an epoch) needs 1e-2 to move.
TIP_CASES = (("v1", 1, (1.0,), 3.0, 1.0, 1e-2),
             ("v10", 10, (1.0, 0.5, 0.25, 1.0, 0.75, 0.5, 0.3, 0.9, 0.6, 0.4), 6.0, 1.0, 1e-3))
TIP_CLASSES, TIP_CHANNELS, TIP_SHOTS, TIP_EVAL, TIP_EPOCHS = 4, 32, 4, 10, 20
TIP_TEXT_MIX = 0.05           # text = normalise(common + 0.05 (class direction + noise))


def tip_features(views: int, seed: int, text_noise: float, noise: float):
    """Synthetic CLIP-like view features: per class and view a prototype (a class direction
    shared by the views plus a view's own), each cloud = normalise(prototype + noise); text =
    normalise(common + 0.05 (class direction + text noise)), a narrow cone as CLIP's text
    features are (zero-shot logits that differ by a few units between classes). -> text
    [K, C], and per split (shots, val, test) global [n, V, C] (unit rows) and labels [n]."""
    g = torch.Generator().manual_seed(seed)
    k, c = TIP_CLASSES, TIP_CHANNELS
    norm = lambda x: torch.nn.functional.normalize(x, dim=-1)  # noqa: E731
    direction = norm(torch.randn(k, 1, c, generator=g))
    prototypes = norm(direction + 0.7 * norm(torch.randn(k, views, c, generator=g)))
    common = norm(torch.randn(c, generator=g))
    text = norm(common + TIP_TEXT_MIX * (direction[:, 0] + text_noise * norm(torch.randn(k, c, generator=g))))
    splits = {}
    for split, per_class in (("shots", TIP_SHOTS), ("val", TIP_EVAL), ("test", TIP_EVAL)):
        labels = torch.arange(k).repeat_interleave(per_class)
        splits[split] = (norm(prototypes[labels] + noise * norm(torch.randn(len(labels), views, c, generator=g))),
                         labels)
    return text, splits


def tip_adapter_goldens(args: argparse.Namespace) -> Arrays:
    """The official Tip-Adapter (scripts/official_code.py `run_tip_adapter`) on the features
    of `tip_features`, fed as Tip-Adapter sees a cloud: f = normalise(concat_v(w_v F_v)) and
    zero-shot weights normalise(tile_V(text)). Keys per case `c` in v1, v10 (float32 unless
    said otherwise; Tip's logit scale, i.e. its alpha):

    c_weights [V] (float64), c_lr        view weights, Tip-Adapter-F's learning rate
    c_text [K, C]                        unit class features
    c_{shots,val,test}_global [n, V, C]  unit view features; c_{shots,val,test}_labels [n] int64
    c_tip_beta, c_tip_alpha (float64)    training-free search_hp on validation
    c_losses [epochs] (float64)          Tip-Adapter-F's loss at every step (one batch an epoch)
    c_first_grad, c_keys_before, c_keys_after_first [M, V*C]   its first step
    c_best_keys [M, V*C]                 the keys of its best epoch (on validation)
    c_epoch_accuracies [epochs] (float64) its validation accuracy after each epoch, percent
    c_f_beta, c_f_alpha (float64)        its search_hp after training
    c_test_accuracy (float64)            run_tip_adapter of the best keys on test, percent
    epochs; meta_tip_adapter_commit, _url, _sha256
    """
    out: Arrays = {"epochs": np.array(TIP_EPOCHS)}
    for i, (case, views, weights, text_noise, noise, lr) in enumerate(TIP_CASES):
        text, splits = tip_features(views, 100 + i, text_noise, noise)
        w = torch.tensor(weights, dtype=torch.float32).view(1, -1, 1)
        desc = {s: torch.nn.functional.normalize((g * w).flatten(1), dim=-1) for s, (g, _) in splits.items()}
        clip_weights = torch.nn.functional.normalize(text.repeat(1, views), dim=-1).t()
        run = run_tip_adapter(args.tip_adapter, desc["shots"], splits["shots"][1], desc["val"], splits["val"][1],
                              desc["test"], splits["test"][1], clip_weights, TIP_CLASSES, lr, TIP_EPOCHS)
        out[f"{case}_weights"] = np.array(weights, dtype=np.float64)
        out[f"{case}_lr"] = np.array(lr)
        out[f"{case}_text"] = to_numpy(text)
        for split, (g, labels) in splits.items():
            out[f"{case}_{split}_global"] = to_numpy(g)
            out[f"{case}_{split}_labels"] = labels.numpy().astype(np.int64)
        for field, value in vars(run).items():
            out[f"{case}_{field}"] = np.asarray(value, dtype=np.float64 if np.isscalar(value) else None)
    for field, value in describe_tip_adapter(args.tip_adapter).items():
        out[f"meta_tip_adapter_{field}"] = np.array(value)
    return out


@dataclass(frozen=True)
class GoldenKind:
    name: str
    filename: str
    flags: Tuple[str, ...]                       # argparse dests that must all be given
    build: Callable[[argparse.Namespace], Arrays]


def adapter_recipe_goldens(args: argparse.Namespace) -> Arrays:
    """PointCLIP's adapter recipe from its checkout (scripts/official_code.py
    `pointclip_adapter_recipe`):

    adapter_lr_per_epoch [250] (float64)   the learning rate of each epoch (Dassl3D's warm-up +
                                           cosine, stepped per epoch), adapter_base_lr
    smooth_logits [6, 5], smooth_labels [6] random logits and labels, smooth_loss: its loss
    meta_pointclip_recipe_commit
    """
    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(6, 5, generator=g), torch.tensor([0, 1, 2, 3, 4, 0])
    out = pointclip_adapter_recipe(args.pointclip_recipe, logits, labels)
    out["meta_pointclip_recipe_commit"] = np.array(subprocess.run(
        ["git", "-C", str(args.pointclip_recipe), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        or "unknown")
    return out


GOLDEN_KINDS: Sequence[GoldenKind] = (
    GoldenKind("projector", "projector_goldens.npz", ("pointclip", "pointclip_v2"), projector_goldens),
    GoldenKind("tiny CLIP", "tiny_clip_goldens.npz", ("tiny_clip",), tiny_clip_goldens),
    GoldenKind("Tip-Adapter", "tip_adapter_goldens.npz", ("tip_adapter",), tip_adapter_goldens),
    GoldenKind("PointCLIP adapter recipe", "adapter_recipe_goldens.npz", ("pointclip_recipe",),
               adapter_recipe_goldens),
)


def add_flags(ap: argparse.ArgumentParser) -> None:
    g = ap.add_argument_group("projector goldens")
    g.add_argument("--pointclip", metavar="DIR", help="checkout of https://github.com/ZrrSkywalker/PointCLIP")
    g.add_argument("--pointclip-v2", metavar="DIR",
                   help="checkout of https://github.com/yangyangyang127/PointCLIP_V2")
    g = ap.add_argument_group("Tip-Adapter goldens")
    g.add_argument("--tip-adapter", metavar="DIR", help="checkout of https://github.com/gaopengcuhk/Tip-Adapter")
    g = ap.add_argument_group("PointCLIP adapter recipe goldens")
    g.add_argument("--pointclip-recipe", metavar="DIR",
                   help="checkout of https://github.com/ZrrSkywalker/PointCLIP (Dassl3D included)")
    g = ap.add_argument_group("tiny CLIP goldens (our own code; regenerate only after a deliberate "
                              "change of numbers)")
    g.add_argument("--tiny-clip", action="store_const", const=True, default=None,
                   help="tokens, text features and CALIP logits of the tiny test CLIPs")


# --- writing ---------------------------------------------------------------------------------------

def common_metadata() -> Arrays:
    return {"meta_torch": np.array(torch.__version__), "meta_numpy": np.array(np.__version__),
            "meta_python": np.array(platform.python_version()),
            "meta_date": np.array(datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
            "meta_command": np.array("python scripts/make_goldens.py " + " ".join(map(shlex.quote, sys.argv[1:])))}


def write(path: Path, arrays: Arrays) -> None:
    """np.savez_compressed, via a buffer so a failure leaves no half-written file."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buf.getvalue())
    except OSError as e:
        raise OfficialCodeError(f"cannot write {path}: {e.strerror or e} (choose another --out)") from None
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    for key, a in arrays.items():
        shown = str(a) if a.dtype.kind == "U" else f"{a.dtype} {list(a.shape)}"
        print(f"  {key:32s} {shown}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(REPO / "tests" / "data"), help="folder for the .npz files (tests/data)")
    add_flags(ap)
    args = ap.parse_args(argv)
    todo = []
    for kind in GOLDEN_KINDS:
        given = [f for f in kind.flags if getattr(args, f) is not None]
        if given and len(given) < len(kind.flags):
            missing = [f"--{f.replace('_', '-')}" for f in kind.flags if f not in given]
            ap.error(f"{kind.name} goldens need {' and '.join(missing)} as well")
        if given:
            todo.append(kind)
    if not todo:
        ap.error("nothing to write: give the flags of at least one golden kind ("
                 + "; ".join(" ".join(f"--{f.replace('_', '-')} DIR" for f in k.flags) for k in GOLDEN_KINDS) + ")")
    try:
        for kind in todo:
            write(Path(args.out) / kind.filename, {**kind.build(args), **common_metadata()})
    except OfficialCodeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
