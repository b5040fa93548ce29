"""Benchmark the zero-shot pipeline: CLIP encoding throughput, the share of time spent
outside the CLIP forward, and the 200 x 200 beta search on ModelNet40-sized logits.

    .venv/bin/python scripts/bench_zeroshot.py [--clouds 16] [--device cpu]

Uses an RN50-sized CLIP with random weights (timing does not depend on the weights), so it
runs offline. "Outside the CLIP forward" = projection + CALIP attention + view aggregation,
i.e. everything the zero-shot classifier adds around `encode_images`.
"""
from __future__ import annotations

import argparse
import time

import clip.model
import torch

from pointcalip.backbones import ClipBackbone
from pointcalip.calip import aggregate_views, calip_logits
from pointcalip.commands.options import device as device_arg, positive_int
from pointcalip.projection import PointCLIPProjector, RealisticProjector
from bench_search import random_logits, time_beta_search  # scripts/ is on sys.path


def rn50_random(device: torch.device) -> ClipBackbone:
    """CLIP RN50's architecture (as `clip.load('RN50')` builds it) with random weights."""
    model = clip.model.CLIP(embed_dim=1024, image_resolution=224, vision_layers=(3, 4, 6, 3),
                            vision_width=64, vision_patch_size=None, context_length=77,
                            vocab_size=49408, transformer_width=512, transformer_heads=8,
                            transformer_layers=12)
    if device.type == "cuda":
        clip.model.convert_weights(model)
    return ClipBackbone(model.to(device), name="RN50-random", identity="random")


def timed(fn, device, repeat=3):
    """Best wall time of `repeat` runs of fn() (after one warm-up), and its result."""
    out = fn()
    best = float("inf")
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench_pipeline(backbone, projector, points, text, device):
    b, v = points.shape[0], projector.num_views
    t_proj, images = timed(lambda: projector(points), device)
    flat = images.flatten(0, 1)
    t_enc, (g, s) = timed(lambda: backbone.encode_images(flat), device, repeat=2)
    t_plain, _ = timed(lambda: backbone.model.encode_image(flat.to(backbone.dtype)), device, repeat=2)

    def fuse():
        l0, l1, l2 = (x.view(b, v, -1) for x in calip_logits(g, s, text))
        return aggregate_views(l0, l1, l2, 1.0, 0.05)

    t_calip, _ = timed(fuse, device)
    outside = t_proj + t_calip
    total = outside + t_enc
    name = type(projector).__name__
    print(f"{name:>20}: {b} clouds x {v} views = {b * v} images | projection {t_proj * 1e3:7.1f} ms | "
          f"encode_images {t_enc * 1e3:8.1f} ms ({b * v / t_enc:6.1f} img/s; plain encode_image "
          f"{b * v / t_plain:6.1f} img/s) | CALIP+aggregation {t_calip * 1e3:6.1f} ms | "
          f"outside the CLIP forward: {100 * outside / total:4.2f}% (target <= 5%)")


def bench_search(n=2468, v=6, k=40, grid=200):
    seconds, _ = time_beta_search(*random_logits(n, v, k), grid=grid)
    print(f"beta search {grid} x {grid} on [{n} clouds, {v} views, {k} classes]: {seconds:.2f} s "
          f"(target <= 10 s)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clouds", type=positive_int, default=8, help="clouds per batch")
    parser.add_argument("--device", type=device_arg, default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    backbone = rn50_random(device)
    text = torch.nn.functional.normalize(torch.randn(40, backbone.embed_dim, device=device), dim=-1)
    points = (torch.rand(args.clouds, 1024, 3, device=device) - 0.5)
    for projector in (PointCLIPProjector(), RealisticProjector()):
        bench_pipeline(backbone, projector, points, text, device)
    bench_search()


if __name__ == "__main__":
    main()
