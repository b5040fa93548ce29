"""Measure how many points each ModelNet40-C file stores, by running the official generator's
corruption functions (``data/generate_c.py`` of jiachens/ModelNet40-C, from a checkout OUTSIDE
this tree) on a few synthetic clouds.

    python scripts/measure_modelnet40c_points.py --checkout /tmp/mn40c [--clouds 8] \
        [--out tests/data/modelnet40c_points.json]

The generator stacks the corrupted clouds of a set with ``np.stack``, so every cloud of one file
has the same number of points; this script checks that the count does not vary between clouds
(whatever their shape) and prints one count per corruption x severity.

What is not run, and why (the JSON says so per set, ``"measured": false``):
* ``occlusion``: needs Open3D's visualiser (a window) to render depth; the generator keeps
  ``points[:n_points]`` with ``n_points=1024`` (padded by sampling when fewer were seen);
* ``distortion*``: need PyGeM (FFD / RBF), which deforms each point (count unchanged); run when
  PyGeM is importable.
``lidar`` runs the generator's ``simulate_lidar`` on a synthetic cloud and pose (its scan
pattern, then a fixed draw of 768 points) instead of the rendered depth points.
"""
from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path

import numpy as np

CORRUPTIONS = ("background", "cutout", "density", "density_inc", "distortion", "distortion_rbf",
               "distortion_rbf_inv", "gaussian", "impulse", "lidar", "occlusion", "rotation",
               "shear", "uniform", "upsampling")
SEVERITIES = (1, 2, 3, 4, 5)


def sphere_cloud(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` points on an ellipsoid's surface inside the unit cube, float32 ``[n, 3]``."""
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return (d * rng.uniform(0.4, 0.9, size=3)).astype(np.float32)


def load_generator(checkout: Path):
    """The generator module, imported from ``checkout/data``; PyGeM is stubbed when missing
    (the distortion sets are then not run)."""
    data = checkout / "data"
    if not (data / "generate_c.py").is_file():
        sys.exit(f"{data / 'generate_c.py'} not found: give --checkout the ModelNet40-C checkout")
    has_pygem = True
    try:
        import pygem  # noqa: F401
    except ImportError:
        has_pygem = False
        stub = types.ModuleType("pygem")
        stub.FFD = stub.RBF = stub.IDW = None
        sys.modules["pygem"] = stub
    sys.path.insert(0, str(data))
    import generate_c  # noqa: E402
    import occlusion   # noqa: E402
    return generate_c, occlusion, has_pygem


def measure(checkout: Path, clouds: int, seed: int) -> dict:
    gen, occ, has_pygem = load_generator(checkout)
    rng = np.random.default_rng(seed)
    table = {"original": {"points": gen.ORIG_NUM, "measured": False,
                          "how": "save_data stores data[:, index] with ORIG_NUM=1024 of 2048"}}
    for corruption in CORRUPTIONS:
        table[corruption] = {}
        for severity in SEVERITIES:
            if corruption == "occlusion":
                table[corruption][str(severity)] = {
                    "points": 1024, "measured": False,
                    "how": "occlusion_1(..., n_points=1024) keeps points[:n_points] (needs a display)"}
                continue
            if corruption.startswith("distortion") and not has_pygem:
                table[corruption][str(severity)] = {
                    "points": 1024, "measured": False,
                    "how": "PyGeM FFD/RBF map each point (count unchanged); PyGeM not installed"}
                continue
            gen.ORIG_NUM = 2048 if corruption == "density_inc" else 1024
            counts = set()
            for _ in range(clouds):
                cloud = sphere_cloud(gen.ORIG_NUM, rng)
                if corruption == "lidar":
                    _, pose = occ.lidar_pose(severity)
                    out = gen.simulate_lidar(cloud[:1024].astype(np.float64), pose.copy(), severity)
                else:
                    out = gen.MAP[corruption](cloud.copy(), severity)
                counts.add(int(np.asarray(out).shape[0]))
            if len(counts) != 1:
                raise SystemExit(f"{corruption}_{severity}: counts vary between clouds: {sorted(counts)}"
                                 f" (np.stack in save_data would fail)")
            table[corruption][str(severity)] = {"points": counts.pop(), "measured": True,
                                                "how": f"run on {clouds} synthetic clouds"}
    return table


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkout", type=Path, required=True,
                    help="a checkout of jiachens/ModelNet40-C (its data/ folder is imported)")
    ap.add_argument("--clouds", type=int, default=8, help="synthetic clouds per set")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="write the table as JSON here")
    args = ap.parse_args(argv)
    table = measure(args.checkout.expanduser(), args.clouds, args.seed)
    print(f"{'corruption':<20}" + "".join(f"{'s' + str(s):>7}" for s in SEVERITIES) + "  run?")
    print(f"{'original':<20}{table['original']['points']:>7}" + " " * 28 + "  code")
    for corruption in CORRUPTIONS:
        row = table[corruption]
        run = "yes" if all(v["measured"] for v in row.values()) else "code"
        print(f"{corruption:<20}" + "".join(f"{row[str(s)]['points']:>7}" for s in SEVERITIES)
              + f"  {run}")
    if args.out:
        payload = {"source": "jiachens/ModelNet40-C data/generate_c.py, "
                             "scripts/measure_modelnet40c_points.py",
                   "per_file": True, "sets": table}
        args.out.write_text(json.dumps(payload, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
