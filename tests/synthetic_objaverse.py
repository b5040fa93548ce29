"""An Objaverse-LVIS folder in OpenShape's published layout, tiny::

    <root>/objaverse_lvis/meta_data/split/lvis.json
    <root>/objaverse_lvis/objaverse-processed/merged_for_training_final/Objaverse/000-00<g>/<uid>.npy

Each object file is ``np.save`` of a dict as OpenShape's are: ``xyz`` float32 [points, 3],
``rgb`` [points, 3] in [0, 1], and the string / list / feature entries its README lists
(``dataset``, ``group``, ``id``, ``text``, ``text_feat``). The split's ``data_path`` entries
are written as OpenShape's are, under ``/mnt/data/objaverse-processed/...``.

Clouds are y-up boxes, tall along y (``height`` times their width): the stored orientation.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from pointcalip.datasets.objaverse_lvis import SPLIT_FILE

CATEGORIES = ("bow_(weapon)", "CD_player", "aerosol_can", "Bible")
WRITTEN_ROOT = "/mnt/data/objaverse-processed/merged_for_training_final/Objaverse"


def tall_box(rng, num_points: int, height: float = 3.0) -> np.ndarray:
    """[num_points, 3] float32 points uniform in a box ``height`` times taller (y) than wide,
    off the origin (so centring matters)."""
    pts = rng.uniform(-0.5, 0.5, size=(num_points, 3)) * np.array([1.0, height, 1.0])
    return (pts + np.array([0.3, 1.0, -0.2])).astype(np.float32)


def write_objaverse_lvis(root, categories: Sequence[str] = CATEGORIES, per_class: int = 2,
                         num_points: int = 64, seed: int = 0) -> Path:
    """Write the folder ``root/objaverse_lvis`` and return it: ``per_class`` objects per
    category, split entries in category-major order (not the label order)."""
    folder = Path(root) / "objaverse_lvis"
    (folder / SPLIT_FILE).parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    entries = []
    for c, category in enumerate(categories):
        for k in range(per_class):
            uid = f"{c:02d}{k:02d}" + "ab" * 14
            group = f"000-{(c + k) % 3:03d}"
            path = folder / "objaverse-processed/merged_for_training_final/Objaverse" / group / f"{uid}.npy"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, {"dataset": "Objaverse", "group": group, "id": uid,
                           "xyz": tall_box(rng, num_points),
                           "rgb": rng.uniform(size=(num_points, 3)).astype(np.float32),
                           "text": [category.replace("_", " ")],
                           "text_feat": [{"original": rng.normal(size=8).astype(np.float32)}]},
                    allow_pickle=True)
            entries.append({"uid": uid, "category": category,
                            "data_path": f"{WRITTEN_ROOT}/{group}/{uid}.npy"})
    (folder / SPLIT_FILE).write_text(json.dumps(entries))
    return folder
