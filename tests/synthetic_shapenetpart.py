"""Write a small ShapeNetPart folder in the published layout (``hdf5_data/``) for tests.

Each shape is a cloud in the unit sphere whose points are labelled with the parts of its
category by height bands (part k of a category holds the k-th band along y), so part ids
depend on geometry; ``data`` [n, P, 3] float32, ``label`` [n, 1] uint8, ``pid`` [n, P] uint8.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

CATEGORIES = ["airplane", "bag", "cap", "car", "chair", "earphone", "guitar", "knife", "lamp",
              "laptop", "motorbike", "mug", "pistol", "rocket", "skateboard", "table"]
COUNTS = [4, 2, 2, 4, 4, 3, 3, 2, 4, 2, 6, 2, 3, 3, 3, 3]
OFFSETS = list(np.concatenate([[0], np.cumsum(COUNTS)[:-1]]).astype(int))


def banded_shapes(labels: np.ndarray, num_points: int, rng: np.random.Generator):
    """labels [n] -> (points [n, P, 3] float32, pid [n, P] int64): box-like clouds whose
    height bands are the category's parts."""
    n = labels.shape[0]
    pts = rng.uniform(-1, 1, size=(n, num_points, 3))
    pts *= np.array([0.5, 0.9, 0.4])
    pts /= np.linalg.norm(pts, axis=2).max(axis=1)[:, None, None]
    pid = np.zeros((n, num_points), dtype=np.int64)
    for i, c in enumerate(labels):
        y = pts[i, :, 1]
        edges = np.quantile(y, np.linspace(0, 1, COUNTS[c] + 1)[1:-1])
        pid[i] = OFFSETS[c] + np.searchsorted(edges, y)
    return pts.astype(np.float32), pid


def write_shapenetpart(root, sizes: dict, num_points: int = 64, seed: int = 0,
                       files: dict | None = None, categories=None) -> Path:
    """Write ``root/hdf5_data`` with ``sizes`` = {"train": n, "val": n, "test": n} shapes
    (categories cycling through ``categories``, default all 16) split over ``files[split]`` h5
    files (default 1); returns the ``hdf5_data`` folder."""
    ids = np.array([CATEGORIES.index(c) for c in categories or CATEGORIES])
    rng = np.random.default_rng(seed)
    folder = Path(root) / "hdf5_data"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "all_object_categories.txt").write_text(
        "".join(f"{c.capitalize()}\t{i:08d}\n" for i, c in enumerate(CATEGORIES)))
    for split, n in sizes.items():
        labels = ids[np.arange(n) % len(ids)]
        labels = labels[rng.permutation(n)]
        pts, pid = banded_shapes(labels, num_points, rng)
        parts = np.array_split(np.arange(n), (files or {}).get(split, 1))
        names = []
        for k, rows in enumerate(parts):
            name = f"ply_data_{split}{k}.h5"
            with h5py.File(folder / name, "w") as h5:
                h5["data"] = pts[rows]
                h5["label"] = labels[rows, None].astype(np.uint8)
                h5["pid"] = pid[rows].astype(np.uint8)
            names.append(f"hdf5_data/{name}")
        (folder / f"{split}_hdf5_file_list.txt").write_text("\n".join(names) + "\n")
    return folder
