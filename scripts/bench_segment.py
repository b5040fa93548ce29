"""Time `pointcalip segment` from stored features on ShapeNetPart-sized random inputs.

    python scripts/bench_segment.py [--test 2874 --val 1870 --points 2048 --views V]
        [--tokens 196 --dim 512] [--scale 0.1] [--projector realistic --preset P]
        [--cache DIR]

Runs the stages `segment` runs after encoding, with its own functions (``tune_prompts``:
the VAL point logits on ``tune.points`` points and the per-category search; ``predict_split``:
the TEST pass, dense CLIP and tuned CALIP at every point), twice: a first run whose point
locations are computed (``locate``: rendering every view to find each point's pixel and
visibility) and written to the location cache, then a cached run that reads them. Default
projector: the one of configs/shapenetpart.yaml (V2's segmentation preset); ``--projector
realistic --preset pointclip_v2`` is V2's cheaper classification projector. Spatial tokens
are random unit vectors (one batch, reused; reading the feature store is not timed); clouds
are random blobs (many interior points: about 40% are visible in no view and take their
nearest visible point's label, far more than on ShapeNetPart's surface samples); part labels
are random. ``--scale`` runs a share of the shapes and also prints the times scaled up to the
full sizes (every stage is linear in the shapes). The cache goes to ``--cache`` (default: a
temporary folder, removed at the end) and its size on disk is reported.

``--encode ARCH`` (e.g. ViT-B/16; the published architecture with random weights, timing does
not depend on them) times what a first `segment` run does from nothing against encoding
alone: (1) encoding VAL and TEST into an empty feature store (``extract``: render, CLIP), then
(2) a first run into another empty store and location cache: the same encoding, where the
code supports it with the point locations kept from the same render
(``extract(..., locations=)``), then the tuning search and the TEST pass, whose locations
are read from the cache or, where encoding did not keep them, located (rendered again). It
prints both times and their ratio (goal <= 1.15), and the cost of locating per shape: a
separate render (``locate``) and the extra of one render giving images and locations
(``images_and_locations`` against ``projector(points)``). The script runs against any
checkout (``PYTHONPATH=<checkout>``), so a before/after comparison uses this one file.

``--locate-only [--repeats R]`` times only the locating: rendering the images, a separate
``locate`` and one render for both, interleaved round by round (best of R each, and the median
of the paired differences one render for both - images alone).
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pointcalip.commands.options import positive_int
from pointcalip.config import load_config
from pointcalip.datasets.shapenetpart import PART_COUNTS, PART_OFFSETS
from pointcalip.projection import build_projector
from pointcalip.segmentation.config import SegmentConfig
from pointcalip.segmentation.locations import LocationCache, bytes_per_shape
from pointcalip.segmentation.run import predict_split, tune_prompts


class Shapes:
    """A ShapeNetPart-like split of random clouds: ``points(rows)`` [b, N, 3], ``labels``
    [M] categories, ``pid`` [M, N] random global part ids of each shape's category."""

    def __init__(self, split: str, n: int, points: int, seed: int):
        rng = np.random.default_rng(seed)
        p = rng.normal(size=(n, points, 3)) * np.array([0.5, 0.9, 0.4])
        p /= np.linalg.norm(p, axis=2).max(axis=1)[:, None, None]
        self._points = p.astype(np.float32)
        self.labels = rng.integers(0, 16, size=n)
        counts = np.array(PART_COUNTS)[self.labels]
        self.pid = (np.array(PART_OFFSETS)[self.labels][:, None]
                    + (rng.random((n, points)) * counts[:, None]).astype(np.int64))
        self.index = np.arange(n)
        self.name, self.split = "bench", split
        self.settings = {"dataset": "bench", "split": split, "num_clouds": n,
                         "num_points": points, "seed": seed}

    def __len__(self) -> int:
        return len(self.labels)

    def points(self, rows):
        return torch.from_numpy(self._points[np.asarray(rows)])


class Tokens:
    """The feature-store surface the stages read: ``store.read(rows)`` -> (None, spatial
    [b, V, HW, C] float32 unit tokens, None); one random batch made once and reused."""

    def __init__(self, batch: int, views: int, tokens: int, dim: int):
        t = torch.nn.functional.normalize(torch.randn(batch, views, tokens, dim), dim=-1)
        self.pool = t.numpy()
        self.store = self

    def read(self, rows, views=None):
        pool = self.pool[:len(rows)]
        return None, pool if views is None else pool[:, views], None


class Timed:
    """Wraps ``obj``'s method ``name``, adding the seconds spent in it to ``seconds``."""

    def __init__(self, obj, name: str):
        self.seconds, inner = 0.0, getattr(obj, name)

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t0
        setattr(obj, name, timed)


def one_run(splits, tokens, projector, cache_root, cfg):
    """The tuning search on VAL and the TEST pass -> (stage seconds, located, read)."""
    caches = {s: LocationCache(cache_root, d, projector, cfg.visible_tolerance)
              for s, d in splits.items()}
    render = Timed(projector, "locate")
    lookup = {s: Timed(c, "locate") for s, c in caches.items()}
    texts = {c: torch.nn.functional.normalize(torch.randn(PART_COUNTS[c], tokens.pool.shape[-1]),
                                              dim=-1) for c in range(16)}
    timings = {}
    choice = tune_prompts(tokens, splits["val"], [texts], caches["val"], cfg, timings)
    t0 = time.perf_counter()
    predict_split(tokens, splits["test"], texts, caches["test"], cfg, choice.params)
    times = {"val locate (tune points)": timings["tune_locate_s"],
             "val point logits": timings["tune_logits_s"],
             "search (per category)": timings["search_s"],
             "test pass": time.perf_counter() - t0}
    del projector.locate                                   # unwrapped for the next run
    located = {s: c.located for s, c in caches.items()}
    read = {s: c.read for s, c in caches.items()}
    return times, render.seconds, lookup["test"].seconds, located, read, choice


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
    ap.add_argument("--projector", default=None,
                    help="projector name (default: configs/shapenetpart.yaml's projector)")
    ap.add_argument("--preset", default=None,
                    help="its preset, e.g. pointclip_v2_seg or pointclip_v2 (realistic)")
    ap.add_argument("--cache", default=None, help="location cache folder (default: temporary)")
    ap.add_argument("--encode", default=None, metavar="ARCH",
                    help="time a first run from nothing against encoding alone, with CLIP "
                         "ARCH (random weights): ViT-B/16, ViT-B/32, RN50, ...")
    ap.add_argument("--engine", default="eager", help="image tower engine for --encode")
    ap.add_argument("--locate-only", action="store_true",
                    help="only time rendering, a separate locate and one render for both")
    ap.add_argument("--repeats", type=positive_int, default=3,
                    help="interleaved rounds of the locate timing (best and paired median)")
    args = ap.parse_args()
    torch.manual_seed(0)
    cfg = load_config(SegmentConfig, ["shapenetpart"], [f"batch_size={args.batch}"])
    if args.projector is None:
        projector = cfg.projector.build()
        label = f"{cfg.projector.name} {cfg.projector.options}"
    else:
        kwargs = {"preset": args.preset} if args.preset else {}
        projector = build_projector(args.projector, **kwargs)
        label = f"{args.projector} {kwargs}"
    if args.views is not None and projector.num_views != args.views:
        projector = projector.select_views(list(range(args.views)))
    args.views = projector.num_views
    n_val, n_test = max(1, round(args.val * args.scale)), max(1, round(args.test * args.scale))
    splits = {"val": Shapes("val", n_val, args.points, 1), "test": Shapes("test", n_test,
                                                                           args.points, 2)}
    tokens = Tokens(args.batch, args.views, args.tokens, args.dim)
    root = Path(args.cache) if args.cache else Path(tempfile.mkdtemp(prefix="bench-seg-"))
    print(f"{n_val} val / {n_test} test shapes, {args.points} points, {args.views} views "
          f"({label}), {args.tokens} x {args.dim} tokens, {torch.get_num_threads()} threads")
    try:
        if args.locate_only:
            print_locate_costs(projector, splits["test"], args.batch, args.repeats)
            return
        if args.encode:
            encode_comparison(args, splits, projector, cfg, root)
            return
        for run in ("first run (locations computed and cached)", "cached run (locations read)"):
            times, render, test_lookup, located, read, choice = one_run(
                splits, tokens, projector, root, cfg)
            total = sum(times.values())
            print(f"{run}: located {located}, read {read}")
            scaled = (lambda v: f"   (x{1 / args.scale:g}: {v / args.scale:.1f} s)"
                      if args.scale != 1 else "")
            for k, v in times.items():
                print(f"  {k:28s} {v:8.2f} s{scaled(v)}")
            print(f"    the test pass's locations took {test_lookup:.2f} s; rendering (locate) "
                  f"in all {render:.2f} s{scaled(render)}")
            print(f"  total {total:.2f} s{scaled(total)}, load average "
                  f"{os.getloadavg()[0]:.1f}")
        print(f"  search scored {sum(p.evaluated for p in choice.params.values())} candidates "
              f"(grid points and view-weight trials) over {len(choice.params)} categories")
        files = [f for f in (root / "locations").rglob("*") if f.is_file()]
        size = sum(f.stat().st_size for f in files)
        shapes = n_val + n_test
        print(f"location cache {root / 'locations'}: {size / 1e6:.1f} MB for {shapes} shapes "
              f"({size / shapes / 1e3:.1f} KB per shape; payload {bytes_per_shape(args.views, args.points) / 1e3:.1f} KB; "
              f"the full {args.val} + {args.test} shapes: {size / shapes * (args.val + args.test) / 1e6:.0f} MB)")
    finally:
        if not args.cache:
            shutil.rmtree(root, ignore_errors=True)


def locate_costs(projector, shapes: Shapes, batch: int, repeats: int = 3) -> dict:
    """Seconds per shape (best of ``repeats`` on one batch): rendering the images
    (``projector(points)``), a separate ``locate`` and, where the projector has it, one render
    for both (``images_and_locations``). The calls are interleaved round by round, so a change
    of the machine's load hits all of them; ``"paired extra"`` is the median over rounds of
    (one render for both - render images), per shape."""
    pts = shapes.points(np.arange(min(batch, len(shapes))))
    calls = {"render images": lambda: projector(pts), "locate (second render)":
             lambda: projector.locate(pts)}
    if hasattr(projector, "images_and_locations"):
        calls["images + locations (one render)"] = lambda: projector.images_and_locations(pts)
    for call in calls.values():
        call()
    times = {name: [] for name in calls}
    cpu = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            t0, c0 = time.perf_counter(), time.process_time()
            call()
            times[name].append((time.perf_counter() - t0) / len(pts))
            cpu[name].append((time.process_time() - c0) / len(pts))
    out = {name: min(t) for name, t in times.items()}
    out.update({f"{name} [CPU time]": min(t) for name, t in cpu.items()})
    both = "images + locations (one render)"
    if both in times:
        out["paired extra"] = float(np.median(np.subtract(times[both], times["render images"])))
        out["paired extra [CPU time]"] = float(np.median(np.subtract(cpu[both],
                                                                     cpu["render images"])))
    return out


def print_locate_costs(projector, shapes: Shapes, batch: int, repeats: int) -> None:
    costs = locate_costs(projector, shapes, batch, repeats)
    extra = {k: costs.pop(f"paired extra{k}", None) for k in ("", " [CPU time]")}
    for name, sec in costs.items():
        print(f"  {name:47s} {sec:.4f} s per shape (best of {repeats}, interleaved)")
    for k, paired in extra.items():
        if paired is not None:
            both = costs[f"images + locations (one render){k}"]
            print(f"  locating in the encoding render costs{k} {both - costs['render images' + k]:+.4f}"
                  f" s per shape (best against best), {paired:+.4f} s (median of the paired "
                  f"rounds)")
    print(f"  load average {os.getloadavg()[0]:.1f} (CPU time: the process's, all threads)")


def encode_comparison(args, splits, projector, cfg, root: Path) -> None:
    """Encoding alone against a first run from nothing (see the module doc)."""
    import inspect
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_engine import MODELS, random_clip
    from pointcalip.backbones import ClipBackbone
    from pointcalip.extract import extract
    from pointcalip.store import FeatureStore

    key = {spec[0]: k for k, spec in MODELS.items()}.get(args.encode, args.encode)
    if key not in MODELS:
        raise SystemExit(f"--encode: unknown architecture {args.encode!r}; one of "
                         f"{', '.join(spec[0] for spec in MODELS.values())}")
    backbone = ClipBackbone(random_clip(key), name=f"{MODELS[key][0]}-random",
                            identity=f"random:{key}:seed0")
    backbone.set_engine(args.engine)
    one_pass = "locations" in inspect.signature(extract).parameters
    dim = int(backbone.encode_prompts([["a"]]).shape[-1])
    texts = {c: torch.nn.functional.normalize(torch.randn(PART_COUNTS[c], dim), dim=-1)
             for c in range(16)}
    print(f"--encode {MODELS[key][0]} (random weights, engine {args.engine}); this code "
          f"{'keeps locations from the encoding render' if one_pass else 'locates separately'}")

    print_locate_costs(projector, splits["test"], args.batch, args.repeats)

    t0 = time.perf_counter()
    store = FeatureStore(root / "alone")
    for name in ("val", "test"):
        d = splits[name]
        extract(store.open(d, projector, backbone), d, None, projector, backbone, args.batch,
                desc=f"encode {name}")
    encode = time.perf_counter() - t0
    print(f"  encoding alone (val + test): {encode:.2f} s, load average "
          f"{os.getloadavg()[0]:.1f}")

    render = Timed(projector, "locate")
    t0 = time.perf_counter()
    store = FeatureStore(root / "first")
    caches = {s: LocationCache(store.root, d, projector, cfg.visible_tolerance)
              for s, d in splits.items()}
    feats = {}
    for name in ("val", "test"):
        d = splits[name]
        kw = {"locations": caches[name]} if one_pass else {}
        feats[name] = extract(store.open(d, projector, backbone), d, None, projector,
                              backbone, args.batch, desc=f"encode {name}", **kw)
    t_enc = time.perf_counter() - t0
    timings = {}
    choice = tune_prompts(feats["val"], splits["val"], [texts], caches["val"], cfg, timings)
    t1 = time.perf_counter()
    predict_split(feats["test"], splits["test"], texts, caches["test"], cfg, choice.params)
    t_test = time.perf_counter() - t1
    first = time.perf_counter() - t0
    del projector.locate
    print(f"  first run: {first:.2f} s = encoding {t_enc:.2f} + val locate "
          f"{timings['tune_locate_s']:.2f} + val logits {timings['tune_logits_s']:.2f} + "
          f"search {timings['search_s']:.2f} + test pass {t_test:.2f}; separate renders "
          f"(locate) {render.seconds:.2f} s; located "
          f"{ {s: c.located for s, c in caches.items()} }, read "
          f"{ {s: c.read for s, c in caches.items()} }")
    print(f"  first run / encoding alone = {first / encode:.3f} (goal <= 1.15), load average "
          f"{os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
