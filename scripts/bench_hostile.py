"""Peak memory of reading a pickle bomb and of `pointcalip segment FILE` at many points.

    python scripts/bench_hostile.py [--points 200000] [--backbone CKPT] [--projector realistic]

Each measurement runs in its own Python process and reports that process's peak resident
memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``), less the peak of a process that
imports the same modules and does nothing (the baseline), and its wall time:

1. ``bomb``: reading a 188-byte Objaverse-LVIS object file whose pickle declares a
   (250,000,000 x 3) float64 ``xyz`` (6 GB) with ``read_xyz`` (refused; how fast, how much).
2. ``nearest``: the nearest-visible fallback alone on ``--points`` points, 40% of them
   seen in no view (random labels), against what the (unseen x seen) float64 matrix it
   replaced would have held.
3. ``segment``: the whole command, ``pointcalip segment cloud.npy --num-points N`` on a
   random blob of ``--points`` points (many interior points: the fallback's worst case), with
   ``--backbone`` (default: the tests' tiny random ViT, written to a temporary folder; the
   memory of a real CLIP's weights adds a constant, about 0.6 GB for ViT-B/16).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

_PEAK = "import json, resource; print(json.dumps({'peak_kb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))"


def run(code: str) -> dict:
    """Run ``code`` in a fresh Python; -> its last printed JSON line plus wall seconds."""
    import time

    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code) + "\n" + _PEAK],
                         capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if out.returncode:
        raise SystemExit(f"measurement failed:\n{out.stderr[-3000:]}")
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    result = {k: v for line in lines for k, v in line.items()}
    result["wall_s"] = wall
    return result


def write_bomb(path: Path, rows: int = 250_000_000) -> Path:
    """An object file whose pickle calls numpy's ``_reconstruct(ndarray, (rows, 3), 'f8')``."""
    import pickle

    reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]

    class Declares:
        def __reduce__(self):
            return reconstruct, (np.ndarray, (rows, 3), "f8")

    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False,
                                                 "shape": ()})
        pickle.dump({"xyz": Declares()}, f, protocol=3)
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--points", type=int, default=200_000)
    p.add_argument("--backbone", default=None, help="CLIP checkpoint (default: tiny random ViT)")
    p.add_argument("--projector", default="realistic")
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench_hostile-"))
    n = args.points

    base = run("import torch, pointcalip.datasets.objaverse_lvis, pointcalip.cli, "
               "pointcalip.segmentation.points")
    mb = lambda r: (r["peak_kb"] - base["peak_kb"]) / 1024  # noqa: E731

    bomb = write_bomb(tmp / "bomb.npy")
    r = run(f"""
        import torch, pointcalip.cli, pointcalip.segmentation.points
        from pointcalip.datasets.objaverse_lvis import read_xyz
        try:
            read_xyz({str(bomb)!r}, "bomb")
        except ValueError as err:
            print(json.dumps({{"error": str(err)}}))
        """.replace("json.dumps", "__import__('json').dumps"))
    print(f"bomb: {bomb.stat().st_size}-byte file declaring ({250_000_000:,} x 3) float64 "
          f"({250_000_000 * 3 * 8 / 1e9:.1f} GB): peak +{mb(r):.1f} MB over the baseline "
          f"({base['peak_kb'] / 1024:.0f} MB), {r['wall_s']:.2f} s (process included)")
    print(f"  -> {r.get('error', 'NOT REFUSED')[:160]}")

    r = run(f"""
        import time, torch
        from pointcalip.segmentation.points import nearest_visible
        g = torch.Generator().manual_seed(0)
        pts = torch.randn(1, {n}, 3, generator=g)
        seen = torch.rand(1, {n}, generator=g) >= 0.4
        t0 = time.perf_counter(); src = nearest_visible(pts, seen)
        print(__import__('json').dumps({{"s": time.perf_counter() - t0,
                                         "unseen": int((~seen).sum())}}))
        """)
    unseen = r["unseen"]
    print(f"nearest: {n:,} points, {unseen:,} unseen: {r['s']:.1f} s, peak +{mb(r):.0f} MB "
          f"(the whole (unseen x seen) float64 matrix: {unseen * (n - unseen) * 8 / 1e9:.1f} GB)")

    if args.backbone is None:
        sys.path.insert(0, str(ROOT / "tests"))
        from tiny_clip import write_tiny_checkpoints
        args.backbone = str(write_tiny_checkpoints(tmp / "clip")["vit"])
    cloud = tmp / "blob.npy"
    np.save(cloud, np.random.default_rng(0).normal(size=(n, 3)).astype(np.float32))
    cmd = ["segment", str(cloud), "--category", "chair", "--parts", "back", "seat", "leg",
           "--backbone", args.backbone, "--projector", args.projector, "--num-points", str(n),
           "--device", "cpu", "-o", str(tmp / "parts.ply")]
    r = run(f"""
        import sys
        from pointcalip.cli import main
        assert main({cmd!r}) == 0
        """)
    print(f"segment: pointcalip {' '.join(cmd[:1])} FILE --num-points {n:,} --projector "
          f"{args.projector}: peak {r['peak_kb'] / 1024:.0f} MB (+{mb(r):.0f} MB over the "
          f"baseline), {r['wall_s']:.1f} s")
    import shutil
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
