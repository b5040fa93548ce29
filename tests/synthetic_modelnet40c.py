"""A ModelNet40-C folder in the published layout, tiny: ``data_{corruption}_{severity}.npy``
float32 [n, points, 3] for the 15 corruptions x 5 severities, ``data_original.npy`` and
``label.npy`` int64 [n, 1] (ModelNet40 label order).

Clouds are ``base`` (e.g. the test clouds of a planted ModelNet folder) when given, so that
``data_original.npy`` equals clean ModelNet40 TEST; the corrupted copies add Gaussian noise
growing with the severity (seeded), a stand-in for the real corruptions.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from pointcalip.datasets.modelnet40c import CORRUPTIONS, SEVERITIES, data_file


def write_modelnet40c(root, labels: Sequence[int], base: Optional[np.ndarray] = None,
                      num_points: int = 32, noise: float = 0.05, seed: int = 0,
                      corruptions: Sequence[str] = CORRUPTIONS) -> Path:
    """Write the folder ``root/modelnet40_c`` and return it. ``labels`` [n] in 0..39."""
    folder = Path(root) / "modelnet40_c"
    folder.mkdir(parents=True, exist_ok=True)
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    if base is None:
        base = rng.normal(size=(len(labels), num_points, 3)).astype(np.float32)
        base /= np.linalg.norm(base, axis=2).max(axis=1)[:, None, None]
    base = np.asarray(base, dtype=np.float32)
    np.save(folder / "label.npy", labels[:, None])
    np.save(folder / data_file("original", None), base)
    for c, corruption in enumerate(corruptions):
        for severity in SEVERITIES:
            jitter = rng.normal(scale=noise * severity * (1 + c % 3), size=base.shape)
            np.save(folder / data_file(corruption, severity), (base + jitter).astype(np.float32))
    return folder
