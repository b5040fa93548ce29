"""Benchmark feature extraction end to end: clouds/s from the h5 file to the feature store.

    .venv/bin/python scripts/bench_throughput.py                 # every section, ~25 min on 2 cores
    .venv/bin/python scripts/bench_throughput.py --sections engines --backbones RN50
    .venv/bin/python scripts/bench_throughput.py --sections zeroshot --goal-test 48

Offline: CLIP architectures with random weights (timing does not depend on the weights),
saved as state-dict checkpoints and loaded through `load_clip`, and a synthetic ModelNet40
folder in the published h5 layout; the fast engine's graphs are exported into a temporary
home, so its one-off export (a few seconds per checkpoint) is inside the timings. Sections:

- ``engines``: per backbone and projector, `encode_missing` (load -> project -> encode ->
  store) into a fresh store, with today's defaults and with the path before PointCALIP 0.2
  ("one call": every image of a block in one eager CLIP call, no channels_last), eager
  chunked, and the fast CPU engine when installed. On a GPU: float16, images/s, clouds/s,
  peak memory.
- ``torchrun``: `pointcalip extract` as one process, and under torchrun with 1 and 2 ranks
  (gloo on the CPU, NCCL on GPUs), wall time including start-up.
- ``zeroshot``: the whole `run_zeroshot` (test split + validation subset, RN50, 6 views)
  with the pre-0.2 path and with today's defaults, side by side, and the time both would take
  on the real ModelNet40 (2,468 test + 984 validation clouds) at the measured speed.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from pointcalip.backbones import ClipBackbone, load_clip
from pointcalip.commands.options import positive_int
from pointcalip.config import ProjectorConfig, ZeroShotConfig
from pointcalip.datasets import MODELNET40_CLASSES, ModelNet40
from pointcalip.backbones.engines import available_engines
from pointcalip.extract import encode_missing
from pointcalip.store import FeatureStore
from pointcalip.zeroshot import run_zeroshot
from bench_engine import MODELS, random_clip  # scripts/ is on sys.path

#: the published architectures by CLIP name -> scripts/bench_engine.py's key
ARCHITECTURES = {name: key for key, (name, _) in MODELS.items()}
PROJECTORS = {"pointclip": ProjectorConfig("pointclip", {"views": "zeroshot"}),
              "realistic": ProjectorConfig("realistic")}
MODELNET40_TEST, MODELNET40_VAL = 2468, 984


def random_checkpoint(arch: str, folder: Path) -> Path:
    """A state-dict file of CLIP ``arch`` with random weights (written once per folder)."""
    path = folder / f"{arch.replace('/', '-')}-random.pt"
    if not path.exists():
        torch.save(random_clip(ARCHITECTURES[arch]).state_dict(), path)
    return path


def synthetic_modelnet40(folder: Path, n_test: int, n_train: int, points: int = 2048) -> Path:
    """A ModelNet40 folder (published h5 layout) of random clouds, labels cycling the 40
    classes."""
    root = folder / "modelnet40_ply_hdf5_2048"
    root.mkdir(parents=True, exist_ok=True)
    (root / "shape_names.txt").write_text("\n".join(MODELNET40_CLASSES) + "\n")
    rng = np.random.default_rng(0)
    for split, n in (("test", n_test), ("train", n_train)):
        with h5py.File(root / f"ply_data_{split}0.h5", "w") as f:
            f["data"] = rng.uniform(-1, 1, (n, points, 3)).astype(np.float32)
            f["label"] = (np.arange(n) % 40).astype(np.uint8)[:, None]
        (root / f"{split}_files.txt").write_text(f"data/{root.name}/ply_data_{split}0.h5\n")
    return root


def path_before_0_2(backbone: ClipBackbone) -> None:
    """Make ``backbone`` encode as PointCALIP 0.1 did: PyTorch, every image of a block in one
    call, ResNet weights and input in the NCHW memory format."""
    backbone.set_engine("eager")
    backbone.images_per_call = None
    backbone.model.visual.to(memory_format=torch.contiguous_format)
    backbone._model_input = lambda images: ClipBackbone._model_input(backbone, images).contiguous()


def modes(device: str):
    """(label, load_clip engine, adjust(backbone) or None) of the paths compared."""
    if device != "cpu":
        return [("float16 GPU", "eager", None)]
    out = [("one call (0.1)", "eager", path_before_0_2), ("eager chunked", "eager", None)]
    out += [(f"{name} chunked", name, None) for name in available_engines() if name != "eager"]
    return out


def bench_engines(args, work: Path, data: Path) -> None:
    print(f"\n## engines: encode_missing, {args.clouds} clouds, batch_size {args.batch_size} "
          f"clouds, device {args.device}\n")
    print("| backbone | projector | path | clouds/s | images/s | vs one call | peak GPU memory |")
    print("|---|---|---|---|---|---|---|")
    dataset = ModelNet40(data, "test", num_points=1024)
    rows = np.arange(args.clouds)
    for arch in args.backbones:
        ckpt = random_checkpoint(arch, work)
        for pname in args.projectors:
            projector = PROJECTORS[pname].build()
            base = None
            for label, engine, adjust in modes(args.device):
                backbone = load_clip(ckpt, device=args.device, engine=engine)
                if adjust:
                    adjust(backbone)
                warm = projector(torch.as_tensor(dataset.points(rows[:1])).to(args.device))
                backbone.encode_images(warm.flatten(0, 1))
                if args.device != "cpu":
                    torch.cuda.reset_peak_memory_stats()
                store = FeatureStore(Path(tempfile.mkdtemp(dir=work))).open(dataset, projector,
                                                                           backbone)
                t0 = time.perf_counter()
                encode_missing(store, dataset, rows, projector, backbone, args.batch_size)
                seconds = time.perf_counter() - t0
                speed = len(rows) / seconds
                base = base or speed
                memory = (f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB"
                          if args.device != "cpu" else "-")
                print(f"| {arch} | {pname} | {label} | {speed:.2f} | "
                      f"{speed * projector.num_views:.1f} | {speed / base:.2f}x | {memory} |",
                      flush=True)


def _extract_command(launcher, data: Path, ckpt: Path, store: Path, args):
    return [*launcher, "extract", "--config", "modelnet40", "--splits", "test",
            "--set", f"data.root={data}", "--set", f"backbone={ckpt}",
            "--set", f"cache_dir={store}", "--set", f"batch_size={args.batch_size}",
            "--set", f"device={args.device}"]


def bench_torchrun(args, work: Path, data: Path) -> None:
    n = len(ModelNet40(data, "test", num_points=1024))
    ckpt = random_checkpoint(args.backbones[0], work)
    load_clip(ckpt, device=args.device)      # the fast engine's graph is exported before timing
    ranks = [1, 2] if args.device == "cpu" else [1, torch.cuda.device_count()]
    print(f"\n## torchrun: pointcalip extract of {n} test clouds, {args.backbones[0]}, "
          f"pointclip projector, wall time with start-up (graph already exported)\n")
    print("| launch | processes | threads each | wall s | clouds/s |")
    print("|---|---|---|---|---|")
    python = [sys.executable, "-m"]
    launches = [("python -m pointcalip", [*python, "pointcalip"], 1, torch.get_num_threads())]
    for r in dict.fromkeys(ranks):
        threads = max(1, torch.get_num_threads() // r)
        launches.append((f"torchrun --nproc_per_node={r}",
                         [*python, "torch.distributed.run", "--standalone",
                          f"--nproc_per_node={r}", "-m", "pointcalip"], r, threads))
    for label, launcher, procs, threads in launches:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        store = Path(tempfile.mkdtemp(dir=work))
        t0 = time.perf_counter()
        subprocess.run(_extract_command(launcher, data, ckpt, store, args), check=True, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seconds = time.perf_counter() - t0
        print(f"| {label} | {procs} | {threads} | {seconds:.1f} | {n / seconds:.2f} |", flush=True)


def bench_zeroshot(args, work: Path) -> None:
    n_train = args.goal_test * 10        # a 10% validation subset about as large as the test split
    data = synthetic_modelnet40(work / "goal", args.goal_test, n_train)
    ckpt = random_checkpoint("RN50", work)
    print(f"\n## zeroshot: run_zeroshot, RN50, pointclip projector (6 views), {args.goal_test} "
          f"test clouds + validation subset of {n_train} train clouds, batch_size 16\n")
    print("| path | wall s | clouds encoded | clouds/s | real ModelNet40 (3,452 clouds) | speed-up |")
    print("|---|---|---|---|---|---|")
    first = None
    for label, engine, adjust in modes("cpu")[:1] + modes("cpu")[-1:]:
        cfg = ZeroShotConfig(backbone=str(ckpt), cache_dir=str(Path(tempfile.mkdtemp(dir=work))),
                             output_dir=str(work / "out"), device="cpu")
        cfg.data.root = str(data)
        cfg.tune.grid = 50
        t0 = time.perf_counter()
        backbone = load_clip(ckpt, device="cpu", engine=engine)
        if adjust:
            adjust(backbone)
        result = run_zeroshot(cfg, backbone=backbone)
        seconds = time.perf_counter() - t0
        clouds = sum(f.stats.encoded for f in result.features.values())
        speed = clouds / seconds
        first = first or seconds
        full_h = (MODELNET40_TEST + MODELNET40_VAL) / speed / 3600
        print(f"| {label} | {seconds:.1f} | {clouds} | {speed:.2f} | about {full_h:.1f} h | "
              f"{first / seconds:.2f}x |", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", nargs="+", choices=["engines", "torchrun", "zeroshot"],
                        default=["engines", "torchrun", "zeroshot"])
    parser.add_argument("--backbones", nargs="+", choices=list(ARCHITECTURES),
                        default=["RN50", "ViT-B/32"])
    parser.add_argument("--projectors", nargs="+", choices=list(PROJECTORS),
                        default=["pointclip", "realistic"])
    parser.add_argument("--clouds", type=positive_int, default=32,
                        help="clouds per measurement of the engines section")
    parser.add_argument("--torchrun-clouds", type=positive_int, default=64,
                        help="test clouds of the synthetic dataset, which the torchrun section "
                             "extracts")
    parser.add_argument("--batch-size", type=positive_int, default=16, help="clouds per block")
    parser.add_argument("--goal-test", type=positive_int, default=32,
                        help="test clouds of the zeroshot section")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, device {args.device}"
          + (f" ({torch.cuda.get_device_name()})" if args.device != "cpu" else
             f", {torch.get_num_threads()} threads") + f", engines {available_engines()}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["POINTCALIP_HOME"] = str(work)    # graphs are exported inside the timings
        data = synthetic_modelnet40(work / "data", max(args.clouds, args.torchrun_clouds), 40)
        if "engines" in args.sections:
            bench_engines(args, work, data)
        if "torchrun" in args.sections:
            bench_torchrun(args, work, data)
        if "zeroshot" in args.sections and args.device == "cpu":
            bench_zeroshot(args, work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
