"""Write small synthetic datasets in the published layouts (for tests; no network).

`write_modelnet40` writes a ``modelnet40_ply_hdf5_2048`` folder (shape_names.txt,
``data/...``-prefixed file lists, ply_data_{train,test}{i}.h5 with ``data`` [n, P, 3]
float32 centred inside the unit sphere, ``label`` uint8 [n, 1], ``normal``, ``faceId``);
`write_scanobjectnn` writes an ``h5_files`` folder with the three variants (``data``
[n, P, 3] NOT normalised, ``label`` [n], ``mask`` [n, P]). Each class is a distinct
ellipsoid, so clouds depend on their label.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

MODELNET40_CLASSES = [
    "airplane", "bathtub", "bed", "bench", "bookshelf", "bottle", "bowl", "car", "chair",
    "cone", "cup", "curtain", "desk", "door", "dresser", "flower_pot", "glass_box", "guitar",
    "keyboard", "lamp", "laptop", "mantel", "monitor", "night_stand", "person", "piano",
    "plant", "radio", "range_hood", "sink", "sofa", "stairs", "stool", "table", "tent",
    "toilet", "tv_stand", "vase", "wardrobe", "xbox",
]
MODELNET10_CLASSES = [
    "bathtub", "bed", "chair", "desk", "dresser", "monitor", "night_stand", "sofa", "table",
    "toilet",
]
SCANOBJECTNN_CLASSES = [
    "bag", "bin", "box", "cabinet", "chair", "desk", "display", "door", "shelf", "table",
    "bed", "pillow", "sink", "sofa", "toilet",
]
SCANOBJECTNN_FILES = {
    "OBJ_BG": ("main_split/training_objectdataset.h5", "main_split/test_objectdataset.h5"),
    "OBJ_ONLY": ("main_split_nobg/training_objectdataset.h5", "main_split_nobg/test_objectdataset.h5"),
    "PB_T50_RS": (
        "main_split/training_objectdataset_augmentedrot_scale75.h5",
        "main_split/test_objectdataset_augmentedrot_scale75.h5",
    ),
}


def class_clouds(labels: np.ndarray, num_points: int, rng: np.random.Generator) -> np.ndarray:
    """labels [n] -> clouds [n, num_points, 3] float32: ellipsoid surfaces whose axes depend
    on the label, centred and scaled inside the unit sphere (max radius 0.9 .. 1.0)."""
    n = labels.shape[0]
    d = rng.normal(size=(n, num_points, 3))
    d /= np.linalg.norm(d, axis=2, keepdims=True)
    axes = np.stack([1.0 + (labels % 3), 1.0 + (labels // 3) % 4, 1.0 + (labels // 12) % 4], 1)
    pts = d * axes[:, None, :]
    pts -= pts.mean(axis=1, keepdims=True)
    pts /= np.linalg.norm(pts, axis=2).max(axis=1)[:, None, None]
    return (pts * rng.uniform(0.9, 1.0, size=(n, 1, 1))).astype(np.float32)


def _labels(classes_idx: Sequence[int], per_class: int, rng) -> np.ndarray:
    lab = np.repeat(np.asarray(classes_idx, dtype=np.int64), per_class)
    return lab[rng.permutation(lab.size)]


def _write_h5(path: Path, data: np.ndarray, labels: np.ndarray, extra: dict) -> None:
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=data)
        f.create_dataset("label", data=labels)
        for k, v in extra.items():
            f.create_dataset(k, data=v)


def write_modelnet_clouds(folder, shape_names: Sequence[str], splits: dict,
                          files_per_split: int = 2, seed: int = 0) -> Path:
    """A folder in the ModelNet h5 layout holding given clouds: ``splits`` maps "train" /
    "test" to ``(clouds [n, P, 3] float32, labels [n])``. Each split is spread over
    ``files_per_split`` h5 files, listed with ``data/<folder name>/`` prefixes as in the
    published lists; ``normal`` and ``faceId`` keys are added (and ignored by the loader)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    (folder / "shape_names.txt").write_text("\n".join(shape_names) + "\n")
    for split, (clouds, labels) in splits.items():
        chunks = [c for c in np.array_split(np.arange(len(labels)), files_per_split) if c.size]
        listed = []
        for i, rows in enumerate(chunks):
            name = f"ply_data_{split}{i}.h5"
            n, p = len(rows), clouds.shape[1]
            _write_h5(folder / name, np.asarray(clouds[rows], np.float32),
                      np.asarray(labels[rows]).astype(np.uint8)[:, None],
                      {"normal": rng.normal(size=(n, p, 3)).astype(np.float32),
                       "faceId": rng.integers(0, 1000, size=(n, p)).astype(np.int32)})
            listed.append(f"data/{folder.name}/{name}")
        (folder / f"{split}_files.txt").write_text("\n".join(listed) + "\n")
    return folder


def write_modelnet_folder(
    folder,
    shape_names: Sequence[str],
    n_train_per_class: int,
    n_test_per_class: int,
    num_points: int = 2048,
    seed: int = 0,
    classes: Sequence[str] | None = None,
    files_per_split: int = 2,
) -> Path:
    """A folder in the ModelNet h5 layout with the given ``shape_names``; clouds only for
    ``classes`` (default: all), each class a distinct ellipsoid (:func:`class_clouds`)."""
    rng = np.random.default_rng(seed)
    names = list(shape_names)
    use = [names.index(c) for c in (classes or names)]
    splits = {}
    for split, per in (("train", n_train_per_class), ("test", n_test_per_class)):
        labels = _labels(use, per, rng)
        splits[split] = (class_clouds(labels, num_points, rng), labels)
    return write_modelnet_clouds(folder, names, splits, files_per_split, seed)


def write_modelnet40(
    root,
    n_train_per_class: int,
    n_test_per_class: int,
    num_points: int = 2048,
    seed: int = 0,
    classes: Sequence[str] | None = None,
) -> Path:
    """Write ``root/modelnet40_ply_hdf5_2048`` (all 40 names in shape_names.txt; clouds for
    ``classes`` only, default all 40) and return that folder."""
    return write_modelnet_folder(
        Path(root) / "modelnet40_ply_hdf5_2048", MODELNET40_CLASSES, n_train_per_class,
        n_test_per_class, num_points, seed, classes,
    )


def write_modelnet10(root, n_train_per_class: int, n_test_per_class: int,
                     num_points: int = 2048, seed: int = 0) -> Path:
    """Write a ModelNet10 folder in the same layout (10 names) at ``root/modelnet10_hdf5``."""
    return write_modelnet_folder(
        Path(root) / "modelnet10_hdf5", MODELNET10_CLASSES, n_train_per_class,
        n_test_per_class, num_points, seed,
    )


def write_scanobjectnn(
    root,
    n_train_per_class: int,
    n_test_per_class: int,
    num_points: int = 2048,
    seed: int = 0,
    variants: Sequence[str] = ("OBJ_BG", "OBJ_ONLY", "PB_T50_RS"),
    offset: float = 3.0,
    scale: float = 2.5,
) -> Path:
    """Write ``root/h5_files`` with the given variants and return that folder. Clouds are
    shifted by up to ``offset`` and scaled by up to ``scale`` (not unit-sphere normalised,
    like the real scans); labels are int64 ``[n]``; ``mask`` int32 ``[n, P]``."""
    folder = Path(root) / "h5_files"
    rng = np.random.default_rng(seed)
    for variant in variants:
        for rel, per in zip(SCANOBJECTNN_FILES[variant], (n_train_per_class, n_test_per_class)):
            lab = _labels(range(15), per, rng)
            pts = class_clouds(lab, num_points, rng)
            pts = pts * rng.uniform(1.0, scale, size=(lab.size, 1, 1)) + rng.uniform(
                -offset, offset, size=(lab.size, 1, 3))
            mask = rng.integers(-1, 2, size=(lab.size, num_points)).astype(np.int32)
            _write_h5(folder / rel, pts.astype(np.float32), lab, {"mask": mask})
    return folder


def shape_family_clouds(families: np.ndarray, num_points: int, rng: np.random.Generator) -> np.ndarray:
    """families [n] in 0..3 -> clouds [n, num_points, 3] float32: 0 a sphere shell, 1 a thin rod,
    2 a flat disk, 3 a cube surface, each stretched per axis by a random factor in [0.7, 1],
    centred and scaled into the unit sphere. Their depth maps differ enough for the tiny random
    CLIPs' features to separate them (few-shot tests), unlike the class names given to them."""
    out = np.empty((len(families), num_points, 3), dtype=np.float32)
    for i, family in enumerate(families):
        if family == 0:
            p = rng.normal(size=(num_points, 3))
            p /= np.linalg.norm(p, axis=1, keepdims=True)
        elif family == 1:
            p = np.concatenate([rng.uniform(-1, 1, (num_points, 1)),
                                rng.normal(0, 0.03, (num_points, 2))], axis=1)
        elif family == 2:
            r, t = np.sqrt(rng.uniform(0, 1, num_points)), rng.uniform(0, 2 * np.pi, num_points)
            p = np.stack([r * np.cos(t), rng.normal(0, 0.01, num_points), r * np.sin(t)], axis=1)
        else:
            p = rng.uniform(-1, 1, (num_points, 3))
            face = rng.integers(0, 3, num_points)
            p[np.arange(num_points), face] = np.sign(p[np.arange(num_points), face])
        p = p * rng.uniform(0.7, 1.0, 3)
        p -= p.mean(axis=0)
        out[i] = p / np.linalg.norm(p, axis=1).max()
    return out
