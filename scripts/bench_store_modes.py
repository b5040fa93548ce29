#!/usr/bin/env python
"""Choose what the feature store keeps (``store: tokens | tokens8 | logits``) by measurement:
bytes per cloud, the error each mode adds to CALIP's logits, and the store size per dataset x
backbone x mode.

    .venv/bin/python scripts/bench_store_modes.py [--clouds 8] [--sources tiny,rn50,structured]

For each source of features, every mode's store is written and read back through
:class:`pointcalip.store.FeatureStore` (the real pieces), the per-view CALIP logits are taken
from it as the zero-shot runs take them (:func:`pointcalip.pipeline.compute_view_logits`),
and they are compared with the logits of the float32 features before any storage:

- ``max|dl1|``, ``max|dl2|``: the largest error of a per-view term (x100 logits);
- ``max|dlogit|``: the largest error of the aggregated logits at beta2 = 2, beta3 = 0.1 (the
  tuning grid's largest betas: the token terms weigh most), over 10 views;
- ``top-1``: clouds whose prediction at those betas is the float32 one.

Sources (no real CLIP weights are needed or downloaded):

- ``tiny``: the tiny seeded ViT of tests/tiny_clip.py (49 x 32) on projected ellipsoid clouds,
  ModelNet40's 40 class names;
- ``rn50``, ``vitb16``: CLIP's published RN50 (7x7 x 1024) and ViT-B/16 (196 x 512)
  architectures with seeded random weights (scripts/bench_engine.py) on the same clouds;
  ViT-B/16 takes minutes on a small CPU;
- ``structured``: ViT-L/14-shaped tokens (256 x 768) and 1,156 classes (Objaverse-LVIS), built
  to have what random vectors lack: class texts that share a common direction (cosine ~0.6),
  global features that lean towards their class's text, tokens that follow their image's
  global feature and, for a third of them, the class, plus two outlier channels holding half
  of each token's squared length (as trained CLIP ViTs have), the worst case for a per-token
  int8 scale;
- ``random``: random unit vectors of the same shape (a poor proxy: shown for contrast).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench_store import Shapes, Split            # scripts/ is on sys.path
from pointcalip.calip import aggregate_views
from pointcalip.commands.options import positive_int
from pointcalip.extract import ExtractStats, SplitFeatures
from pointcalip.head import CalipHead
from pointcalip.prompts import load_classnames
from pointcalip.store import STORE_MODES, FeatureStore, bytes_per_cloud
from pointcalip.pipeline import TEMPERATURE, compute_view_logits

REPO = Path(__file__).resolve().parents[1]
VIEWS = 10
BETA2, BETA3 = 2.0, 0.1
SOURCES = ("tiny", "rn50", "vitb16", "structured", "random")
#: backbones as the store holds them: (spatial tokens, dim)
BACKBONES = {"RN50": (49, 1024), "ViT-B/16": (196, 512), "ViT-L/14": (256, 768)}
#: evaluated splits: (clouds, classes); ShapeNetPart is part segmentation (tokens only)
DATASETS = {"ModelNet40 test": (2468, 40), "ModelNet40-C (75 sets + original)": (76 * 2468, 40),
            "ScanObjectNN PB_T50_RS test": (2882, 15), "Objaverse-LVIS": (46205, 1156),
            "ShapeNetPart test": (2874, None)}


def unit(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x, dim=-1)


def clip_source(key: str, n: int):
    """(global [n, V, C], spatial [n, V, HW, C], text [K, C], labels [n]) float32 from a CLIP
    (``tiny``: tests/tiny_clip.py; else bench_engine's random-weight architectures) on
    ellipsoid clouds seen from 10 views."""
    sys.path.insert(0, str(REPO / "tests"))
    from synthetic_data import class_clouds
    from pointcalip.backbones import ClipBackbone
    from pointcalip.projection import build_projector

    if key == "tiny":
        from tiny_clip import tiny_vit_model
        model = tiny_vit_model(0)
    else:
        from bench_engine import random_clip
        model = random_clip(key)
    backbone = ClipBackbone(model, name=key, identity=key)
    names = load_classnames("modelnet40")
    labels = np.arange(n) % len(names)
    clouds = torch.from_numpy(class_clouds(labels, 1024, np.random.default_rng(0)))
    projector = build_projector("pointclip", views="fewshot")
    g, s = backbone.encode_images(projector(clouds).flatten(0, 1))
    text = backbone.encode_text(names, ["point cloud depth map of a {}."])
    v = projector.num_views
    return g.view(n, v, -1), s.view(n, v, *s.shape[1:]), text, labels


def structured_source(n: int, random: bool = False, hw: int = 256, c: int = 768, k: int = 1156):
    """ViT-L/14-shaped features with CLIP-like structure (module doc), or random unit vectors."""
    gen = torch.Generator().manual_seed(0)
    rand = lambda *shape: torch.randn(*shape, generator=gen)  # noqa: E731
    labels = np.arange(n) % k
    if random:
        return unit(rand(n, VIEWS, c)), unit(rand(n, VIEWS, hw, c)), unit(rand(k, c)), labels
    common = unit(rand(c))
    text = unit(0.77 * common + 0.64 * unit(rand(k, c)))                     # cosine ~0.6
    lab = torch.as_tensor(labels)
    g = unit(0.3 * text[lab][:, None] + unit(rand(n, VIEWS, c)))              # [n, V, C]
    obj = (torch.rand(n, VIEWS, hw, 1, generator=gen) < 1 / 3).float()         # object tokens
    s = unit(0.6 * g[:, :, None] + 0.4 * obj * text[lab][:, None, None]
             + 0.6 * unit(rand(n, VIEWS, hw, c)))
    outliers = torch.zeros(c)
    outliers[[c // 7, c // 2]] = 1.0              # two channels with half the squared length
    signs = torch.where(torch.rand(n, VIEWS, hw, 1, generator=gen) < 0.5, -1.0, 1.0)
    s = unit(s * 0.5 ** 0.5 + signs * outliers * 0.5)
    return g, s, text, labels


def stored_logits(root: Path, mode: str, g, s, text, batch: int = 4):
    """Write g [n, V, C], s [n, V, HW, C] into a ``mode`` store under ``root`` as extraction
    does (float16 features; logits from them on the CPU) and read the view logits back as
    the zero-shot runs do -> (ViewLogits, seconds to write, seconds to read)."""
    n, v, hw, c = s.shape
    shapes = Shapes(v, hw, c)
    store = FeatureStore(root).open(Split(n), shapes, shapes, mode,
                                    text.numpy() if mode == "logits" else None, TEMPERATURE)
    head = CalipHead(text, num_views=v, temperature=TEMPERATURE)
    t0 = time.perf_counter()
    for start in range(0, n, batch):
        rows = np.arange(start, min(start + batch, n))
        g16, s16 = g[rows].half(), s[rows].half()
        norms = np.ones((len(rows), v), np.float32)
        if mode == "logits":
            logits = [x.numpy() for x in head.view_logits(g16.float(), s16.float())]
            store.write(rows, g16.numpy(), None, norms, logits=logits)
        else:
            store.write(rows, g16.numpy(), s16.numpy(), norms)
    t_write = time.perf_counter() - t0
    t0 = time.perf_counter()
    feats = SplitFeatures(store, np.arange(n), np.zeros(n, np.int64), ExtractStats(n, 0))
    out = compute_view_logits(feats, text)
    return out, t_write, time.perf_counter() - t0


def compare(ref, got) -> dict:
    """Errors of ``got`` (l0, l1, l2 [n, V, K]) against ``ref`` (module doc)."""
    a, b = (aggregate_views(*x, BETA2, BETA3) for x in (ref, got))
    return {"l1": float((ref[1] - got[1]).abs().max()), "l2": float((ref[2] - got[2]).abs().max()),
            "logit": float((a - b).abs().max()),
            "top1": float((a.argmax(-1) == b.argmax(-1)).double().mean())}


def measure(name: str, g, s, text, work: Path) -> list:
    """Table rows of one source: every mode, plus float16 logits (not a mode) for contrast."""
    n, v, hw, c = s.shape
    k = text.shape[0]
    ref = CalipHead(text, num_views=v, temperature=TEMPERATURE).view_logits(g, s)
    rows, got = [], {}
    for mode in STORE_MODES:
        got[mode], t_write, t_read = stored_logits(work / name / mode, mode, g, s, text)
        err = compare(ref, got[mode].as_tuple())
        rows.append((name, f"{hw}x{c}, K={k}", mode, bytes_per_cloud(mode, v, hw, c, k), err,
                     1e3 * t_write / n, 1e3 * t_read / n))
    half = tuple(x.half().float() for x in got["logits"].as_tuple())
    rows.append((name, f"{hw}x{c}, K={k}", "logits as float16 (not offered)",
                 bytes_per_cloud("logits", v, hw, c, k) - 3 * v * k * 2, compare(ref, half),
                 None, None))
    vs_tokens = max(float((x - y).abs().max()) for x, y in
                    zip(got["logits"].as_tuple(), got["tokens"].as_tuple()))
    print(f"{name}: logits store vs logits computed from the tokens store: max |diff| "
          f"{vs_tokens:.2e}", flush=True)
    return rows


def human(size: float) -> str:
    return f"{size / 1e9:,.1f} GB" if size >= 1e9 else f"{size / 1e6:,.0f} MB"


def size_table() -> str:
    lines = ["| dataset | clouds | K | backbone | tokens | tokens8 | logits |", "|---|---|---|---|---|---|---|"]
    for dataset, (n, k) in DATASETS.items():
        for backbone, (hw, c) in BACKBONES.items():
            sizes = [human(n * bytes_per_cloud(mode, VIEWS, hw, c, k or 0))
                     if k or mode != "logits" else "- (needs tokens)" for mode in STORE_MODES]
            lines.append(f"| {dataset} | {n:,} | {k or '-'} | {backbone} | " + " | ".join(sizes) + " |")
    return "\n".join(lines)


def source_list(text: str) -> list:
    keys = [k.strip() for k in text.split(",") if k.strip()]
    if not keys or any(k not in SOURCES for k in keys):
        raise argparse.ArgumentTypeError(f"must be some of {', '.join(SOURCES)} separated by "
                                         f"commas, got {text!r}")
    return keys


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clouds", type=positive_int, default=8, help="clouds per CLIP source")
    ap.add_argument("--synthetic-clouds", type=positive_int, default=32,
                    help="clouds of the structured and random sources")
    ap.add_argument("--sources", type=source_list, default=["tiny", "rn50", "structured", "random"])
    args = ap.parse_args(argv)
    torch.set_grad_enabled(False)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_store_modes-") as tmp:
        for name in args.sources:
            t0 = time.perf_counter()
            if name in ("structured", "random"):
                g, s, text, _ = structured_source(args.synthetic_clouds, random=name == "random")
            else:
                g, s, text, _ = clip_source(name, args.clouds)
            print(f"{name}: {tuple(s.shape)} tokens, {text.shape[0]} classes "
                  f"({time.perf_counter() - t0:.1f} s to make)", flush=True)
            rows += measure(name, g, s, text, Path(tmp))
    ms = lambda x: "-" if x is None else f"{x:.1f}"  # noqa: E731
    print(f"\nErrors against float32 features, {VIEWS} views, aggregated at beta2={BETA2}, "
          f"beta3={BETA3}:\n")
    print("(write: quantising and writing pieces; for logits also computing them. read: "
          "reading back and, for token modes, computing CALIP's view logits)\n")
    print("| source | tokens x dim, classes | mode | bytes/cloud | max abs dl1 | max abs dl2 | "
          "max abs dlogit | top-1 agree | write ms/cloud | read ms/cloud |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, shape, mode, size, e, tw, tr in rows:
        print(f"| {name} | {shape} | {mode} | {size:,} | {e['l1']:.4f} | {e['l2']:.4f} | "
              f"{e['logit']:.4f} | {100 * e['top1']:.1f}% | {ms(tw)} | {ms(tr)} |")
    print(f"\nStore size of the evaluated split, {VIEWS} views (tokens: float16 global + tokens; "
          f"tokens8: int8 tokens + a float32 scale per token; logits: l0, l1, l2 float32 + "
          f"float16 global):\n")
    print(size_table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
