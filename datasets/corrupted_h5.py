"""One corrupted test set stored as one h5 file (ModelNet-C, ScanObjectNN-C): ``data``
``[n, P, 3]`` (any floating dtype: the generators leave some sets float64) and ``label``
``[n]`` or ``[n, 1]``; every stored point is served (``P`` differs from file to file), unless
``num_points`` asks for fewer.

A dataset module gives the file, the class list and the hint; this module reads and checks it,
with errors naming the file and key.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from . import h5utils
from ..core.words import count
from .base import CorruptedSet

SHAPE_NAMES = "shape_names.txt"


def folder_classnames(folder: Path, default: Sequence[str]) -> list[str]:
    """The class list of a release folder: its ``shape_names.txt`` when present (Point-Cache's
    copies carry one; it must name as many classes as ``default``), else ``default``."""
    path = Path(folder) / SHAPE_NAMES
    if not path.is_file():
        return list(default)
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(names) != len(default):
        raise ValueError(f"{path} names {count(len(names), 'class')}; this release has "
                         f"{len(default)} "
                         f"(expected, in label order: {', '.join(default[:3])}, ...)")
    return names


def read_h5_set(path: Path, num_classes: int, names_file: str, hint: str):
    """``path`` -> (clouds float32 ``[n, P, 3]``, labels int64 ``[n]``), checked: both keys
    present, ``data`` floating ``[n, P, 3]`` and finite, labels integers in range."""
    with h5utils.open_h5(path, hint) as h5:
        data = h5utils.require_key(h5, "data", path, hint)
        h5utils.check_points_shape(data.shape, path)
        if data.dtype.kind != "f":
            raise ValueError(f"h5 file {path} key 'data' has dtype {data.dtype}; expected "
                             f"floating coordinates")
        if data.shape[1] == 0:
            raise ValueError(f"h5 file {path} key 'data' stores 0 points per cloud")
        raw = h5utils.read_dataset(h5utils.require_key(h5, "label", path, hint), path, "label", hint)
        labels = h5utils.check_labels(raw, int(data.shape[0]), num_classes, path, names_file)
        clouds = np.asarray(h5utils.read_dataset(data, path, "data", hint), dtype=np.float32)
    h5utils.check_finite(clouds, path, np.arange(clouds.shape[0]))
    return clouds, labels


class CorruptedH5Set(CorruptedSet):
    """The clouds of one corrupted (or clean) set file, with the surface of the other datasets
    (``len``, ``ds[i]``, ``points``, ``labels``, ``classnames``, ``settings``).

    A subclass sets ``name`` / ``corruption`` / ``severity`` / ``variant`` and calls
    :meth:`_read`. ``num_points=None`` (the default of these releases) serves every stored
    point; an int takes the first N (or ``sampling="fps"``), refused where a file stores fewer.
    """

    corruption: Optional[str]
    severity: Optional[int]
    variant: Optional[str] = None

    def _read(self, path: Path, classnames: Sequence[str], num_points: Optional[int],
              sampling: str, normalize: bool, hint: str, names_file: str) -> None:
        self.split = "test"
        self.classnames = list(classnames)
        self.sampling, self.normalize, self.in_memory = sampling, bool(normalize), True
        clouds, labels = read_h5_set(path, len(self.classnames), names_file, hint)
        h5utils.check_sampling(sampling, num_points, clouds.shape[1], str(path))
        self.num_points = None if num_points is None else int(num_points)
        self.stored_points = int(clouds.shape[1])
        self._labels = labels
        self._labels.setflags(write=False)
        self.files = [Path(path)]
        self._names_file, self._hint = names_file, hint
        self._fingerprint = h5utils.fingerprint(self.files)
        self._opened()

    def _read_clouds(self) -> torch.Tensor:
        clouds, _ = read_h5_set(self.files[0], len(self.classnames), self._names_file, self._hint)
        return torch.from_numpy(np.ascontiguousarray(clouds))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, n={len(self)}, "
                f"stored_points={self.stored_points}, num_points={self.num_points})")


def check_setting(release: str, corruption: str, severity, corruptions: Sequence[str],
                  severities: Sequence[int], clean: str = "clean"):
    """(corruption, severity) of a release whose uncorrupted set is ``clean`` (no severity)."""
    corruption = str(corruption).strip().lower()
    if corruption == clean:
        if severity is not None:
            raise ValueError(f"{release} set {clean!r} takes no severity (got {severity})")
        return corruption, None
    if corruption not in corruptions:
        raise ValueError(f"unknown {release} corruption {corruption!r}; use one of "
                         f"{list(corruptions)} or {clean!r}")
    if severity is None or isinstance(severity, bool) or int(severity) != severity \
            or int(severity) not in severities:
        raise ValueError(f"{release} severity must be one of {list(severities)}, got {severity!r}")
    return corruption, int(severity)
