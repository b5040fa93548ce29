"""Memory of opening every ModelNet40-C set at once, as `pointcalip extract --config modelnet40c`
plans its jobs (each set is opened, checked and kept until it is encoded).

    python scripts/bench_open_sets.py [--work DIR] [--clouds 2468]

Writes a ModelNet40-C folder of the release's size into ``--work`` (random clouds; 77 arrays
with the release's per-file point counts, tests/data/modelnet40c_points.json: ~2.4 GB at 2,468
clouds), then, in a fresh Python, opens all 77 sets and reports that process's peak resident
memory (``ru_maxrss``) less the peak of a process that imports the same modules (baseline),
the time to open them, and the memory held after serving one batch of each.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
COUNTS = ROOT / "tests" / "data" / "modelnet40c_points.json"

_OPEN = """
import json, resource, sys, time
from pointcalip.datasets.modelnet40c import CORRUPTIONS, SEVERITIES, ModelNet40C
root, serve = sys.argv[1], sys.argv[2] == "serve"
t0 = time.perf_counter()
sets = [ModelNet40C(root, corruption="original")]
sets += [ModelNet40C(root, corruption=c, severity=s) for c in CORRUPTIONS for s in SEVERITIES]
seconds = time.perf_counter() - t0
if serve:
    for ds in sets:
        ds.points(range(64))
        ds.close()
print(json.dumps({"sets": len(sets), "seconds": seconds,
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""

_BASE = """
import json, resource
import pointcalip.datasets.modelnet40c
print(json.dumps({"peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def write_release(folder: Path, clouds: int) -> int:
    """The release's 77 arrays with random clouds; -> bytes written."""
    from pointcalip.datasets.modelnet40c import data_file

    sets = json.loads(COUNTS.read_text())["sets"]
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    np.save(folder / "label.npy", rng.integers(0, 40, size=(clouds, 1)))
    total = 0
    for corruption, entry in sets.items():
        for severity, points in ([(None, entry["points"])] if corruption == "original"
                                 else [(int(s), e["points"]) for s, e in entry.items()]):
            path = folder / data_file(corruption, severity)
            if not path.is_file():
                np.save(path, rng.standard_normal((clouds, int(points), 3), dtype=np.float32))
            total += path.stat().st_size
    return total


def run(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True,
                         text=True, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench_open_sets")
    ap.add_argument("--clouds", type=int, default=2468)
    args = ap.parse_args()
    folder = args.work / "modelnet40_c"
    size = write_release(folder, args.clouds)
    base = run(_BASE)["peak_kb"]
    opened = run(_OPEN, str(folder), "open")
    served = run(_OPEN, str(folder), "serve")
    print(f"ModelNet40-C, {args.clouds} clouds per set: {size / 1e9:.2f} GB in 77 arrays")
    print(f"open all {opened['sets']} sets: {opened['seconds']:.1f} s, peak "
          f"+{(opened['peak_kb'] - base) / 1024:.0f} MB over the imports ({base / 1024:.0f} MB)")
    print(f"open all, then serve 64 clouds of each and close it: peak "
          f"+{(served['peak_kb'] - base) / 1024:.0f} MB")


if __name__ == "__main__":
    main()
