"""ShapeNetPart (16 categories, 50 parts) from the h5 release ``shapenet_part_seg_hdf5_data``.

The folder (``hdf5_data/`` or its parent) holds ``ply_data_train0..5.h5``, ``ply_data_val0.h5``,
``ply_data_test0..1.h5`` (listed in ``{train,val,test}_hdf5_file_list.txt``), each with
``data`` [n, 2048, 3] float32, ``label`` [n, 1] category id 0..15 and ``pid`` [n, 2048] global
part id 0..49. Split sizes of the release are checked on load (a differing folder is reported,
not refused). Part names are data: ``configs/shapenetpart_parts.yaml``, replaceable per run.

    ds = ShapeNetPart(root, split="val")
    points, category, pid = ds[0]       # [2048, 3] float32, int, [2048] int64 (global part ids)
    ds.parts["chair"]                   # ['back', 'seat', 'leg', 'armrest']
    ds.part_ids(4)                      # global ids of category 4 (chair): [12, 13, 14, 15]
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from ..core.paths import confined
from ..core.words import count

log = logging.getLogger(__name__)

#: the 16 categories in category-id order, and their part counts (facts of the release)
SHAPENETPART_CATEGORIES = [
    "airplane", "bag", "cap", "car", "chair", "earphone", "guitar", "knife", "lamp", "laptop",
    "motorbike", "mug", "pistol", "rocket", "skateboard", "table",
]
PART_COUNTS = [4, 2, 2, 4, 4, 3, 3, 2, 4, 2, 6, 2, 3, 3, 3, 3]
PART_OFFSETS = [int(x) for x in np.concatenate([[0], np.cumsum(PART_COUNTS)[:-1]])]
NUM_PARTS = int(sum(PART_COUNTS))  # 50
SPLIT_SIZES = {"train": 12137, "val": 1870, "test": 2874}
SPLITS = ("train", "val", "test", "trainval")
FOLDER = "hdf5_data"
_HINT = ("get shapenet_part_seg_hdf5_data.zip and run "
         "`pointcalip download shapenetpart --from shapenet_part_seg_hdf5_data.zip`")


def part_ids(category: int) -> list[int]:
    """Global part ids of a category id (consecutive from its offset)."""
    return list(range(PART_OFFSETS[category], PART_OFFSETS[category] + PART_COUNTS[category]))


def part_category() -> np.ndarray:
    """[50] int64: the category id of each global part id."""
    return np.repeat(np.arange(len(PART_COUNTS)), PART_COUNTS)


def load_part_names(path=None) -> dict:
    """{category: [part names in global id order]} from ``configs/shapenetpart_parts.yaml`` or
    ``path``; checked: the 16 categories, each with its number of parts."""
    from ..prompts import configs_root, read_yaml
    path = Path(path) if path is not None else configs_root() / "shapenetpart_parts.yaml"
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ValueError(f"part-name file {path} must map each category to its list of parts")
    missing = [c for c in SHAPENETPART_CATEGORIES if c not in data]
    extra = [c for c in data if c not in SHAPENETPART_CATEGORIES]
    if missing or extra:
        raise ValueError(f"part-name file {path}: categories missing {missing}, unknown {extra}; "
                         f"it must name the 16 ShapeNetPart categories")
    out = {}
    for cat, parts in zip(SHAPENETPART_CATEGORIES, PART_COUNTS):
        names = data[cat]
        if not isinstance(names, list) or len(names) != parts:
            raise ValueError(f"part-name file {path} key {cat!r}: expected a list of {parts} "
                             f"part names (global part-id order), got {names!r}")
        out[cat] = [str(n) for n in names]
    return out


def find_root(root) -> Path:
    """The ``hdf5_data`` folder: ``root`` itself or ``root/hdf5_data``."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"ShapeNetPart folder {root} does not exist; {_HINT}")
    if not list(root.glob("ply_data_*.h5")) and (root / FOLDER).is_dir():
        return root / FOLDER
    return root


def split_files(root: Path, split: str) -> list[Path]:
    """The h5 files of ``split``: from ``<split>_hdf5_file_list.txt`` when present (entries
    are read by file name), else ``ply_data_<split>*.h5`` in name order."""
    listing = root / f"{split}_hdf5_file_list.txt"
    if listing.is_file():
        files = [confined(root, Path(line.strip()).name, f"{listing} line {i}")
                 for i, line in enumerate(listing.read_text().splitlines(), start=1)
                 if line.strip()]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"{listing} lists files that are missing: {missing}; {_HINT}")
    else:
        files = sorted(root.glob(f"ply_data_{split}*.h5"),
                       key=lambda p: (len(p.name), p.name))
    if not files:
        raise FileNotFoundError(f"ShapeNetPart folder {root} holds no {split} files "
                                f"(ply_data_{split}*.h5 or {split}_hdf5_file_list.txt); {_HINT}")
    return files


class ShapeNetPart:
    """ShapeNetPart clouds with category labels and per-point global part ids.

    Args:
        root: the ``hdf5_data`` folder (or its parent).
        split: ``"train"``, ``"val"``, ``"test"`` or ``"trainval"``.
        num_points: first N points of each cloud (``None``: all 2048).
        categories: keep only these category names (default: all 16); labels stay the
            category ids 0..15 of the release.
        parts: part-name file (default ``configs/shapenetpart_parts.yaml``).

    ``ds[i]`` -> (points [num_points, 3] float32 tensor, category id int, pid [num_points]
    int64 tensor); ``ds.labels`` [n], ``ds.pid`` [n, num_points] (numpy), ``ds.index`` [n]
    (row in the whole split, what predictions.npz records), ``ds.classnames`` (16),
    ``ds.parts`` {category: names}.
    """

    def __init__(self, root, split: str = "test", num_points: int | None = None,
                 categories: Sequence[str] | None = None, parts=None) -> None:
        from . import h5utils   # imports torch: not at module import (config checks)

        if split not in SPLITS:
            raise ValueError(f"unknown ShapeNetPart split {split!r}; use one of {list(SPLITS)}")
        self.name = "shapenetpart"
        self.split = split
        self.variant = None
        self.classnames = list(SHAPENETPART_CATEGORIES)
        self.parts = load_part_names(parts)
        self.root = find_root(root)
        names = ["train", "val"] if split == "trainval" else [split]
        self.files = [f for s in names for f in split_files(self.root, s)]
        data, labels, pids = [], [], []
        for path in self.files:
            with h5utils.open_h5(path, _HINT) as h5:
                d = h5utils.require_key(h5, "data", path, _HINT)
                h5utils.check_points_shape(d.shape, path)
                d = np.asarray(h5utils.read_dataset(d, path, "data", _HINT), dtype=np.float32)
                lab = h5utils.read_dataset(h5utils.require_key(h5, "label", path, _HINT),
                                           path, "label", _HINT)
                pid = np.asarray(h5utils.read_dataset(h5utils.require_key(h5, "pid", path, _HINT),
                                                      path, "pid", _HINT))
            n, p = d.shape[:2]
            lab = h5utils.check_labels(lab, n, len(SHAPENETPART_CATEGORIES), path,
                                       "the 16 ShapeNetPart categories")
            if pid.shape != (n, p):
                raise ValueError(f"h5 file {path} key 'pid' has shape {tuple(pid.shape)}; "
                                 f"expected [{n}, {p}] (one part id per point of 'data')")
            pid = h5utils.whole_numbers(pid, path, "pid")      # 1.7 is not part 1
            owner = part_category()
            bad = (pid < 0) | (pid >= NUM_PARTS)
            bad |= ~bad & (owner[np.clip(pid, 0, NUM_PARTS - 1)] != lab[:, None])
            if bad.any():
                row, col = np.argwhere(bad)[0]
                raise ValueError(f"h5 file {path} key 'pid' row {row} point {col}: part id "
                                 f"{pid[row, col]} is not a part of category "
                                 f"{SHAPENETPART_CATEGORIES[lab[row]]} (ids "
                                 f"{part_ids(int(lab[row]))}); the file is damaged. {_HINT}")
            h5utils.check_finite(d, path, np.arange(n))
            data.append(d), labels.append(lab), pids.append(pid)
        stored = {a.shape[1] for a in data}
        if len(stored) != 1:
            raise ValueError(f"ShapeNetPart {split} files store different point counts {stored}")
        self.stored_points = stored.pop()
        if num_points is not None and not (1 <= int(num_points) <= self.stored_points):
            raise ValueError(f"num_points must be between 1 and {self.stored_points} "
                             f"(points stored per cloud); got {num_points}")
        self.num_points = None if num_points is None else int(num_points)
        keep = slice(None) if num_points is None else slice(0, self.num_points)
        self._points = np.concatenate(data)[:, keep]
        self._labels = np.concatenate(labels).astype(np.int64)
        self._pid = np.concatenate(pids)[:, keep]
        self.index = np.arange(len(self._labels), dtype=np.int64)
        self._check_sizes(names)
        if categories is not None:
            wanted = []
            for c in categories:
                if c not in SHAPENETPART_CATEGORIES:
                    raise ValueError(f"unknown ShapeNetPart category {c!r}; use names from "
                                     f"{SHAPENETPART_CATEGORIES}")
                wanted.append(SHAPENETPART_CATEGORIES.index(c))
            sel = np.isin(self._labels, wanted)
            self._points, self._labels = self._points[sel], self._labels[sel]
            self._pid, self.index = self._pid[sel], self.index[sel]
        self.categories = None if categories is None else list(categories)
        self._fingerprint = h5utils.fingerprint(self.files)

    def _check_sizes(self, names) -> None:
        expected = sum(SPLIT_SIZES[s] for s in names)
        if len(self._labels) != expected:
            self.size_note = (f"ShapeNetPart {self.split} in {self.root} holds "
                              f"{count(len(self._labels), 'shape')}; the release has {expected}")
            log.warning("%s (a partial or modified copy: results are not comparable)",
                        self.size_note)
        else:
            self.size_note = None

    def __len__(self) -> int:
        return int(self._labels.shape[0])

    @property
    def labels(self) -> np.ndarray:
        """Category ids [n] int64."""
        return self._labels

    @property
    def pid(self) -> np.ndarray:
        """Global part ids [n, num_points] int64."""
        return self._pid

    @property
    def num_classes(self) -> int:
        return len(self.classnames)

    def part_ids(self, category: int) -> list[int]:
        return part_ids(category)

    def points(self, indices=None):
        """Clouds at ``indices`` (default all): [m, num_points, 3] float32 tensor."""
        import torch
        idx = slice(None) if indices is None else np.asarray(indices, dtype=np.int64)
        return torch.from_numpy(np.ascontiguousarray(self._points[idx]))

    def __getitem__(self, i: int):
        import torch
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for ShapeNetPart {self.split} "
                             f"({count(len(self), 'shape')})")
        return (torch.from_numpy(self._points[i].copy()), int(self._labels[i]),
                torch.from_numpy(self._pid[i].copy()))

    @property
    def settings(self) -> dict:
        return {"dataset": self.name, "variant": None, "split": self.split,
                "num_points": self.num_points, "sampling": "first", "normalize": False,
                "num_clouds": len(self), "categories": self.categories,
                "classnames": list(self.classnames), "files": self._fingerprint}

    def __repr__(self) -> str:
        return (f"ShapeNetPart(split={self.split!r}, n={len(self)}, "
                f"num_points={self.num_points}, categories={self.categories})")


def validate_folder(folder: Path) -> None:
    """Read every split of an installed folder; raise naming what is missing or damaged."""
    missing = [s for s in ("train", "val", "test")
               if not (find_root(folder) / f"{s}_hdf5_file_list.txt").is_file()
               and not list(find_root(folder).glob(f"ply_data_{s}*.h5"))]
    if missing:
        raise FileNotFoundError(f"ShapeNetPart folder {folder} has no files for split(s) "
                                f"{missing}; {_HINT}")
    for split in ("train", "val", "test"):
        ShapeNetPart(folder, split)
