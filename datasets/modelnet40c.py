"""ModelNet40-C: the ModelNet40 test split under 15 corruptions x 5 severities.

The published folder (``modelnet40_c``) holds plain ``.npy`` arrays, read with
``np.load(allow_pickle=False)`` (a pickled object array is refused, never unpickled):

* ``data_{corruption}_{severity}.npy``: float32 ``[2468, P, 3]``, severity 1..5, for each
  of :data:`CORRUPTIONS`; ``P`` is the official generator's (``data/generate_c.py``), one
  count per file: 1,024 for most sets, but background appends 1,046..1,075 - 1,024 uniform
  points after the clean ones, upsampling 1,228..2,048, while cutout keeps 964..724, density
  949..649 and lidar 768 (``scripts/measure_modelnet40c_points.py`` measures them);
* ``data_original.npy``: the same clouds uncorrupted, ``[2468, 1024, 3]``;
* ``label.npy``: integer ``[2468]`` or ``[2468, 1]``, ModelNet40's labels (its class order).

There is only a test split. Hyper-parameters are never tuned on these clouds: the benchmark
(:mod:`pointcalip.benchmark`) tunes on clean ModelNet40 validation (TRAIN) and evaluates here.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from ..prompts import load_classnames
from . import h5utils
from .base import CorruptedSet
from .catalog import DATASETS
from ..core.words import count

log = logging.getLogger(__name__)

CORRUPTIONS = DATASETS["modelnet40c"].corruptions     # the 15 names, declared in the catalog
SEVERITIES = DATASETS["modelnet40c"].severities       # 1..5
ORIGINAL = "original"
LABEL_FILE = "label.npy"
FOLDER = "modelnet40_c"
_HINT = ("get modelnet40_c (the ModelNet40-C release: data_<corruption>_<severity>.npy, "
         "data_original.npy, label.npy) and run `pointcalip download modelnet40c --from PATH`")


def data_file(corruption: str, severity: Optional[int]) -> str:
    """``data_{corruption}_{severity}.npy``, or ``data_original.npy`` for ``"original"``."""
    return "data_original.npy" if corruption == ORIGINAL else f"data_{corruption}_{severity}.npy"


def expected_files() -> list[str]:
    """Every file of a complete release: the 75 corrupted arrays, the original and the labels."""
    return ([data_file(c, s) for c in CORRUPTIONS for s in SEVERITIES]
            + [data_file(ORIGINAL, None), LABEL_FILE])


def check_setting(corruption: str, severity: Optional[int]) -> tuple[str, Optional[int]]:
    """A known corruption (or ``"original"``, which takes no severity) and a severity in 1..5."""
    corruption = str(corruption).strip().lower()
    if corruption == ORIGINAL:
        if severity is not None:
            raise ValueError(f"ModelNet40-C corruption 'original' takes no severity (got {severity})")
        return corruption, None
    if corruption not in CORRUPTIONS:
        raise ValueError(f"unknown ModelNet40-C corruption {corruption!r}; use one of "
                         f"{list(CORRUPTIONS)} or 'original'")
    if severity is None or isinstance(severity, bool) or int(severity) != severity \
            or int(severity) not in SEVERITIES:
        raise ValueError(f"ModelNet40-C severity must be one of {list(SEVERITIES)}, got {severity!r}")
    return corruption, int(severity)


def find_root(root) -> Path:
    """The ``modelnet40_c`` folder: ``root`` itself or ``root/modelnet40_c``."""
    root = Path(root).expanduser()
    if not (root / LABEL_FILE).is_file() and (root / FOLDER).is_dir():
        root = root / FOLDER
    if not root.is_dir():
        raise FileNotFoundError(f"ModelNet40-C folder {root} does not exist; {_HINT}")
    return root


def open_array(path: Path) -> np.ndarray:
    """A ``.npy`` file memory-mapped, never unpickled; errors name the file."""
    if not path.is_file():
        raise FileNotFoundError(f"ModelNet40-C file {path} is missing; {_HINT}")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as err:
        if "pickle" in str(err).lower() or "python objects" in str(err).lower():
            raise ValueError(f"{path} holds Python objects (a pickled array), not numbers; "
                             f"refused: ModelNet40-C files are plain numeric .npy arrays") from None
        raise ValueError(f"{path} is not a readable .npy array ({err}); re-extract it") from None
    except OSError as err:
        raise ValueError(f"{path} is not a readable .npy array ({err}); re-extract it") from None


def read_labels(path: Path, num_classes: int) -> np.ndarray:
    """``label.npy`` [n] or [n, 1] integers in [0, num_classes) -> int64 [n]."""
    raw = open_array(path)
    if raw.ndim == 2 and raw.shape[1] == 1:
        raw = raw[:, 0]
    if raw.ndim != 1 or not np.issubdtype(raw.dtype, np.integer):
        raise ValueError(f"{path} has shape {raw.shape} and dtype {raw.dtype}; expected integer "
                         f"labels [n] or [n, 1]")
    labels = np.asarray(raw, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = int(np.flatnonzero((labels < 0) | (labels >= num_classes))[0])
        raise ValueError(f"{path} label index {bad} is {labels[bad]}, outside the "
                         f"{num_classes} ModelNet40 classes [0, {num_classes - 1}]")
    return labels


def check_clouds(path: Path, arr: np.ndarray, num_clouds: int, chunk: int = 256) -> None:
    """``arr`` read from ``path`` must be floating ``[num_clouds, P, 3]`` with finite values
    (checked in chunks, so a memory-mapped file is never read whole)."""
    if arr.ndim != 3 or arr.shape[2] != 3 or not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{path} has shape {arr.shape} and dtype {arr.dtype}; expected "
                         f"floating clouds [{num_clouds}, points, 3]")
    if arr.shape[0] != num_clouds:
        raise ValueError(f"{path} holds {count(arr.shape[0], 'cloud')} but label.npy has "
                         f"{count(num_clouds, 'label')}; the files come from different releases")
    for s in range(0, arr.shape[0], chunk):
        block = np.asarray(arr[s:s + chunk])
        finite = np.isfinite(block).reshape(block.shape[0], -1).all(axis=1)
        if not finite.all():
            bad = s + int(np.flatnonzero(~finite)[0])
            raise ValueError(f"{path} cloud index {bad} contains NaN/inf coordinates; the file "
                             f"is corrupt: re-extract it")


class ModelNet40C(CorruptedSet):
    """One corruption at one severity of ModelNet40-C (or the uncorrupted ``"original"``),
    2,468 test clouds, ModelNet40's 40 classes; the same surface as the other datasets
    (``len``, ``ds[i]``, ``points``, ``labels``, ``classnames``, ``settings``).

    Args:
        root: the ``modelnet40_c`` folder (or its parent).
        split: ``"test"`` only (the release has no other split).
        corruption: one of :data:`CORRUPTIONS` or ``"original"``.
        severity: 1..5 (``None`` for ``"original"``).
        num_points: points per cloud (first N, or farthest-point sampled; ``None``, the
            default: every stored point, as the official evaluation feeds them).
        sampling: ``"first"`` or ``"fps"``.
        normalize: centre + unit-sphere scale each cloud (default False: the release is
            evaluated as published, the corruption's own scale included).
        in_memory: accepted for the other datasets' signature; the array is read when first
            served (checked when opened) and let go by ``close``.
        classnames: the class list the labels index (default ModelNet40's 40 names; the
            benchmark passes the clean folder's ``shape_names.txt`` names).
    """

    keyed_stored_points = False

    def __init__(self, root, split: str = "test", corruption: str = ORIGINAL,
                 severity: Optional[int] = None, num_points: Optional[int] = None,
                 sampling: str = "first", normalize: bool = False, in_memory: bool = True,
                 classnames: Optional[Sequence[str]] = None) -> None:
        if split != "test":
            raise ValueError(f"ModelNet40-C has only a test split (got {split!r}); tune on clean "
                             f"ModelNet40 validation (TRAIN) instead, as `pointcalip benchmark` does")
        self.corruption, self.severity = check_setting(corruption, severity)
        self.root = find_root(root)
        self.split = split
        self.variant = ORIGINAL if self.severity is None else f"{self.corruption}_{self.severity}"
        self.name = f"modelnet40c/{self.variant}"
        self.classnames = list(classnames) if classnames is not None else load_classnames("modelnet40")
        self.sampling, self.normalize, self.in_memory = sampling, bool(normalize), True
        label_path, data_path = self.root / LABEL_FILE, self.root / data_file(self.corruption, self.severity)
        labels = read_labels(label_path, len(self.classnames))
        arr = open_array(data_path)
        check_clouds(data_path, arr, len(labels))
        h5utils.check_sampling(sampling, num_points, arr.shape[1], str(data_path))
        self.num_points = None if num_points is None else int(num_points)
        self.stored_points = int(arr.shape[1])
        self._labels = labels
        self._labels.setflags(write=False)
        self.files = [data_path, label_path]
        self._fingerprint = h5utils.fingerprint(self.files)
        self._opened()

    def _read_clouds(self) -> torch.Tensor:
        """The stored clouds (the first ``num_points`` only, when that is all it serves)."""
        read = self.num_points if self.sampling == "first" and self.num_points else self.stored_points
        return torch.from_numpy(np.array(open_array(self.files[0])[:, :read], dtype=np.float32))

    def __repr__(self) -> str:
        return (f"ModelNet40C(corruption={self.corruption!r}, severity={self.severity}, "
                f"n={len(self)}, num_points={self.num_points}, sampling={self.sampling!r})")


def validate_folder(folder: Path) -> None:
    """A complete ModelNet40-C folder: every expected file present (the missing ones named),
    ``label.npy`` integer labels, each data array floating ``[n, P, 3]``, finite, with as many
    clouds as labels. ValueError / FileNotFoundError naming the file."""
    folder = Path(folder)
    missing = [name for name in expected_files() if not (folder / name).is_file()]
    if missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise FileNotFoundError(f"ModelNet40-C folder {folder} lacks {len(missing)} of its "
                                f"{count(len(expected_files()), 'file')}: {shown}")
    labels = read_labels(folder / LABEL_FILE, len(load_classnames("modelnet40")))
    for name in expected_files()[:-1]:
        check_clouds(folder / name, open_array(folder / name), len(labels))
