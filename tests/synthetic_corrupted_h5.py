"""ModelNet-C and ScanObjectNN-C folders in their published layouts, tiny in clouds but with
the point counts of ModelNet-C's generator (jiawei-ren/ModelNet-C
``build_modelnetc/corrupt_utils.py``, from 1,024 clean points): dropout_global keeps
int(1024 * (1 - rate)) for rates 0.25..0.75, dropout_local drops 100 * (level + 1), add_global
adds 10 * (level + 1), add_local adds 100 * (level + 1); scale / jitter / rotate keep 1,024.
Data dtypes follow the generator too: jitter, rotate and add_global come out float64.

* ModelNet-C: ``modelnet_c/clean.h5`` and ``modelnet_c/{corruption}_{0..4}.h5``, ``label``
  int64 ``[n, 1]``;
* ScanObjectNN-C: ``sonn_c/{variant}/{corruption}_{0..4}.h5`` (and ``clean.h5`` if asked),
  ``label`` ``[n]``, and ``sonn_c/shape_names.txt``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import h5py
import numpy as np

CORRUPTIONS = ("scale", "jitter", "rotate", "dropout_global", "dropout_local", "add_global",
               "add_local")
LEVELS = (0, 1, 2, 3, 4)
FLOAT64 = ("jitter", "rotate", "add_global")


def modelnet_c_points(corruption: str, level: int, clean: int = 1024) -> int:
    """Points per cloud of ``{corruption}_{level}.h5`` (the generator's arithmetic)."""
    if corruption == "dropout_global":
        return int(clean * (1 - (0.25, 0.375, 0.5, 0.625, 0.75)[level]))
    if corruption == "dropout_local":
        return clean - 100 * (level + 1)
    if corruption == "add_global":
        return clean + 10 * (level + 1)
    if corruption == "add_local":
        return clean + 100 * (level + 1)
    return clean


def _corrupted(clean: np.ndarray, corruption: str, level: int, rng) -> np.ndarray:
    points = modelnet_c_points(corruption, level, clean.shape[1])
    noisy = clean + rng.normal(scale=0.01 * (level + 1), size=clean.shape)
    if points > clean.shape[1]:
        add = rng.uniform(-0.5, 0.5, size=(clean.shape[0], points - clean.shape[1], 3))
        out = np.concatenate([noisy, add], axis=1)
    else:
        out = noisy[:, :points]
    return out.astype(np.float64 if corruption in FLOAT64 else np.float32)


def _write(path: Path, data: np.ndarray, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=data)
        f.create_dataset("label", data=labels)


def _clean(n: int, base: Optional[np.ndarray], rng) -> np.ndarray:
    if base is None:
        base = rng.normal(size=(n, 1024, 3))
        base /= np.linalg.norm(base, axis=2).max(axis=1)[:, None, None]
    return np.asarray(base, dtype=np.float32)[:, :1024]


def write_modelnet_c(root, labels: Sequence[int], base: Optional[np.ndarray] = None,
                     seed: int = 0) -> Path:
    """Write ``root/modelnet_c`` and return it; ``labels`` [n] in ModelNet40's 0..39."""
    folder = Path(root) / "modelnet_c"
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels, dtype=np.int64)[:, None]
    clean = _clean(len(labels), base, rng)
    _write(folder / "clean.h5", clean, labels)
    for c in CORRUPTIONS:
        for level in LEVELS:
            _write(folder / f"{c}_{level}.h5", _corrupted(clean, c, level, rng), labels)
    return folder


def write_scanobjectnn_c(root, labels: Sequence[int], variants=("obj_bg", "hardest"),
                         with_clean: bool = False, base: Optional[np.ndarray] = None,
                         seed: int = 0) -> Path:
    """Write ``root/sonn_c`` (the given variants, each with the same clouds scaled by 3: scans
    are not unit-sphere normalised) and return it; ``labels`` [n] in 0..14."""
    from pointcalip.prompts import load_classnames

    folder = Path(root) / "sonn_c"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "shape_names.txt").write_text("\n".join(load_classnames("scanobjectnn")) + "\n")
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels, dtype=np.int64)
    clean = 3 * _clean(len(labels), base, rng)
    for variant in variants:
        if with_clean:
            _write(folder / variant / "clean.h5", clean, labels)
        for c in CORRUPTIONS:
            for level in LEVELS:
                _write(folder / variant / f"{c}_{level}.h5", _corrupted(clean, c, level, rng), labels)
    return folder
