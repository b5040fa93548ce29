"""A ModelNet40-C folder in the published layout, tiny in clouds but with the release's own
point counts: ``data_{corruption}_{severity}.npy`` float32 [n, points, 3] for the 15
corruptions x 5 severities, ``data_original.npy`` [n, 1024, 3] and ``label.npy`` int64 [n, 1]
(ModelNet40 label order).

The number of points of each file is the official generator's
(``tests/data/modelnet40c_points.json``, measured by ``scripts/measure_modelnet40c_points.py``
from jiachens/ModelNet40-C's ``data/generate_c.py``): background and upsampling append points
after the clean ones (1,046..1,075 and 1,228..2,048), cutout / density / lidar keep fewer
(964..724, 949..649, 768), the others keep 1,024.

Clouds are the first 1,024 points of ``base`` (e.g. the test clouds of a planted ModelNet
folder) when given, so that ``data_original.npy`` equals clean ModelNet40 TEST read with
``num_points=1024``; each corrupted copy adds seeded Gaussian noise growing with the severity,
then appends points (background: uniform in the cube [-1, 1]^3, as the generator does;
upsampling: jittered copies of clean points) or keeps a seeded subset of its points.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from pointcalip.datasets.modelnet40c import CORRUPTIONS, SEVERITIES, data_file

COUNTS_FILE = Path(__file__).parent / "data" / "modelnet40c_points.json"
CLEAN_POINTS = 1024


def release_counts() -> dict:
    """``{(corruption, severity): points}`` of the official release, and ``("original", None)``."""
    sets = json.loads(COUNTS_FILE.read_text())["sets"]
    out = {("original", None): int(sets["original"]["points"])}
    for corruption in CORRUPTIONS:
        for severity in SEVERITIES:
            out[(corruption, severity)] = int(sets[corruption][str(severity)]["points"])
    return out


def corrupt(clean: np.ndarray, points: int, corruption: str, scale: float,
            rng: np.random.Generator) -> np.ndarray:
    """[n, 1024, 3] clean clouds -> [n, points, 3]: noisy clean points, then appended or kept."""
    noisy = clean + rng.normal(scale=scale, size=clean.shape)
    n, p, _ = clean.shape
    if points > p:
        extra = points - p
        if corruption == "upsampling":
            idx = rng.integers(0, p, size=(n, extra))
            add = np.take_along_axis(clean, idx[..., None], axis=1) + rng.uniform(-0.05, 0.05, (n, extra, 3))
        else:
            add = rng.uniform(-1, 1, size=(n, extra, 3))
        return np.concatenate([noisy, add], axis=1).astype(np.float32)
    keep = np.sort(np.argsort(rng.random((n, p)), axis=1)[:, :points], axis=1)
    return np.take_along_axis(noisy, keep[..., None], axis=1).astype(np.float32)


def write_modelnet40c(root, labels: Sequence[int], base: Optional[np.ndarray] = None,
                      noise: float = 0.05, seed: int = 0,
                      corruptions: Sequence[str] = CORRUPTIONS) -> Path:
    """Write the folder ``root/modelnet40_c`` and return it. ``labels`` [n] in 0..39;
    ``base`` [n, >=1024, 3] clean clouds (default: random ones)."""
    folder = Path(root) / "modelnet40_c"
    folder.mkdir(parents=True, exist_ok=True)
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    if base is None:
        base = rng.normal(size=(len(labels), CLEAN_POINTS, 3)).astype(np.float32)
        base /= np.linalg.norm(base, axis=2).max(axis=1)[:, None, None]
    clean = np.asarray(base, dtype=np.float32)[:, :CLEAN_POINTS]
    counts = release_counts()
    np.save(folder / "label.npy", labels[:, None])
    np.save(folder / data_file("original", None), clean)
    for c, corruption in enumerate(corruptions):
        for severity in SEVERITIES:
            scale = noise * severity * (1 + c % 3)
            np.save(folder / data_file(corruption, severity),
                    corrupt(clean, counts[(corruption, severity)], corruption, scale, rng))
    return folder
