#!/usr/bin/env python
"""Images per second of CLIP's image tower through ``encode_images`` on the CPU: PyTorch with
every image in one forward call (16 clouds x 6 views = 96 images, as PointCALIP encoded them
before ``images_per_call``; ResNets also as before, in the NCHW memory format), PyTorch in one
call and in chunks, and ONNX Runtime in chunks. "vs before" is relative to the model's first row.

    .venv/bin/python scripts/bench_engine.py [--models rn50,vitb32] [--images 96]
        [--per-call 8] [--repeats 3] [--threads N] [--cache-dir DIR]

The models have the published architectures with random weights (timing does not depend on the
weights; runs offline). The repeats are interleaved (every setting once, then again), so a
disturbance on the machine spreads over all settings; the table shows the median and every run.
"max diff" is the largest difference of any unit-normalised token (global and spatial) from
the model's first row. ``--per-call 2,4,8,16,32`` sweeps the chunk size. The exported
graphs go to a temporary folder unless ``--cache-dir`` is given. Needs
``pip install 'pointcalip[cpu-fast]'`` for the ONNX Runtime rows.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import clip.model
import torch

from pointcalip.backbones import CPU_IMAGES_PER_CALL, ClipBackbone
from pointcalip.commands.options import positive_int
from pointcalip.backbones.onnx import onnxruntime_missing

TEXT = dict(context_length=77, vocab_size=49408, transformer_width=512, transformer_heads=8,
            transformer_layers=12)
#: The published image towers (as clip.model.build_model reads them from OpenAI's files).
MODELS = {
    "rn50": ("RN50", dict(embed_dim=1024, image_resolution=224, vision_layers=(3, 4, 6, 3),
                          vision_width=64, vision_patch_size=None)),
    "rn101": ("RN101", dict(embed_dim=512, image_resolution=224, vision_layers=(3, 4, 23, 3),
                            vision_width=64, vision_patch_size=None)),
    "vitb32": ("ViT-B/32", dict(embed_dim=512, image_resolution=224, vision_layers=12,
                                vision_width=768, vision_patch_size=32)),
    "vitb16": ("ViT-B/16", dict(embed_dim=512, image_resolution=224, vision_layers=12,
                                vision_width=768, vision_patch_size=16)),
}


def random_clip(key: str, seed: int = 0) -> clip.model.CLIP:
    """The published architecture ``key`` with seeded random fp32 weights. CLIP's own init
    zeroes each ResNet block's last BatchNorm scale (``bn3``), which would switch the residual
    branches off; they get scale 1, so every layer contributes to the tokens."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = clip.model.CLIP(**MODELS[key][1], **TEXT).eval()
    for name, module in model.visual.named_modules():
        if name.endswith("bn3"):
            torch.nn.init.ones_(module.weight)
    return model


def per_call_list(text: str) -> list:
    """``--per-call 4,8,16`` -> [4, 8, 16]."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"must be positive integers separated by commas, "
                                         f"got {text!r}")
    return values


def model_list(text: str) -> list:
    """``--models rn50,vitb32`` -> ["rn50", "vitb32"], each one of MODELS."""
    keys = [k.strip().lower() for k in text.split(",") if k.strip()]
    unknown = [k for k in keys if k not in MODELS]
    if not keys or unknown:
        raise argparse.ArgumentTypeError(f"must be some of {', '.join(MODELS)} separated by "
                                         f"commas, got {text!r}")
    return keys


class Before(ClipBackbone):
    """PointCALIP's ResNets before channels_last: weights and input in NCHW."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.model.visual.to(memory_format=torch.contiguous_format)

    def _model_input(self, images: torch.Tensor) -> torch.Tensor:
        return super()._model_input(images).contiguous()


def encode(backbone: ClipBackbone, images: torch.Tensor, per_call: int):
    """(seconds, (global, spatial)) of one ``encode_images`` call."""
    start = time.perf_counter()
    out = backbone.encode_images(images, batch_size=per_call)
    return time.perf_counter() - start, out


def bench_model(key: str, args, cache_dir: str) -> list:
    """Time every setting of one model -> table rows (model, setting, per call, rates, diff)."""
    name = MODELS[key][0]
    model = random_clip(key)
    eager = ClipBackbone(model, name=f"{name}-random", identity=f"random:{key}:seed0")
    settings = []
    if not eager.is_vit:
        before = Before(random_clip(key), name=f"{name}-random", identity="before")
        settings.append(("eager NCHW, one call", before, args.images))
    settings.append(("eager, one call", eager, args.images))
    settings += [("eager, chunked", eager, n) for n in args.per_call]
    if not args.no_engine:
        fast = ClipBackbone(model, name=f"{name}-random", identity=f"random:{key}:seed0")
        start = time.perf_counter()
        fast.set_engine("onnxruntime", cache_dir=cache_dir)
        print(f"  {name}: ONNX graph ready in {time.perf_counter() - start:.1f} s "
              f"(exported on first use, then read from {cache_dir})", flush=True)
        settings += [("onnxruntime, chunked", fast, n) for n in args.per_call]
    images = torch.rand(args.images, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    for _, backbone, n in settings:                                    # warm-up
        encode(backbone, images[:min(n, 4)], n)
    rates = [[] for _ in settings]
    outputs = [None] * len(settings)
    for repeat in range(args.repeats):
        for i, (label, backbone, n) in enumerate(settings):
            seconds, out = encode(backbone, images, n)
            rates[i].append(args.images / seconds)
            outputs[i] = outputs[i] if outputs[i] is not None else out
        print(f"  {name}: repeat {repeat + 1}/{args.repeats}: " +
              ", ".join(f"{label} x{n} {r[-1]:.1f}" for (label, _, n), r in zip(settings, rates)),
              flush=True)
    reference = outputs[0]
    rows = []
    for (label, _, n), r, out in zip(settings, rates, outputs):
        diff = max(float((a - b).abs().max()) for a, b in zip(out, reference))
        rows.append((name, label, n, r, diff))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=model_list, default=["rn50", "vitb32"],
                    help=f"some of {', '.join(MODELS)}, separated by commas (default rn50,vitb32)")
    ap.add_argument("--images", type=positive_int, default=96,
                    help="images per encode_images call (default 96 = 16 clouds x 6 views)")
    ap.add_argument("--per-call", type=per_call_list, default=[CPU_IMAGES_PER_CALL],
                    help=f"images per forward call of the chunked rows, e.g. 2,4,8,16,32 "
                         f"(default {CPU_IMAGES_PER_CALL}, PointCALIP's CPU default)")
    ap.add_argument("--repeats", type=positive_int, default=3)
    ap.add_argument("--threads", type=positive_int, default=None,
                    help="torch (and ONNX Runtime) threads (default: torch's, one per core)")
    ap.add_argument("--no-engine", action="store_true", help="PyTorch rows only")
    ap.add_argument("--cache-dir", default=None,
                    help="where ONNX graphs are kept (default: a temporary folder, removed)")
    args = ap.parse_args(argv)
    if not args.no_engine and onnxruntime_missing():
        print(f"bench_engine.py: the ONNX Runtime rows need {onnxruntime_missing()}; install "
              f"it with pip install 'pointcalip[cpu-fast]', or pass --no-engine", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.images} random "
          f"images of 224 px per encode_images call, {args.repeats} interleaved repeats",
          flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_engine-") as tmp:
        for key in args.models:
            rows += bench_model(key, args, args.cache_dir or tmp)
    print(f"\n{'model':9} {'setting':22} {'per call':>8} {'img/s':>7} {'vs before':>11} "
          f"{'max diff':>9}  runs (img/s)")
    base = {}
    for name, label, n, r, diff in rows:
        median = statistics.median(r)
        base.setdefault(name, median)
        print(f"{name:9} {label:22} {n:8d} {median:7.1f} {median / base[name]:10.2f}x "
              f"{diff:9.1e}  " + " ".join(f"{v:.1f}" for v in r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
