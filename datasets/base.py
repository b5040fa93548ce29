"""A point-cloud classification dataset backed by published h5 files.

`H5CloudDataset` holds the parts shared by ModelNet40/10 and ScanObjectNN: reading and
validating ``data``/``label`` from one or more h5 files, keeping a subset of classes with a
relabelling, in-memory or lazy access, batched access without a DataLoader, and the
``settings`` dict that identifies the exact clouds served (used as a feature-cache key).
`CloudSet` is the surface every classification dataset shares; `CorruptedSet` the one of a
robustness release's sets (read when first served, let go on ``close``).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from . import h5utils
from ..core.words import count

log = logging.getLogger(__name__)

SPLITS = ("train", "test")


def check_split(split: str) -> None:
    """Every published release has exactly a train and a test split."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {list(SPLITS)}")


def cloud_indices(indices, n: int, what: str) -> np.ndarray:
    """``indices`` (None: all; negative ones count from the end) of ``n`` clouds as int64
    [k] in [0, n); IndexError naming the first bad index and ``what`` (the dataset)."""
    if indices is None:
        return np.arange(n, dtype=np.int64)
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < -n or idx.max() >= n):
        bad = idx[(idx < -n) | (idx >= n)][0]
        raise IndexError(f"index {bad} out of range for {what} ({count(n, 'cloud')})")
    return np.where(idx < 0, idx + n, idx)


class CloudSet:
    """The surface every classification dataset shares: ``len``, ``ds[i]`` -> (points
    ``[num_points, 3]`` float32, label int), ``labels``, ``num_classes``, ``batches`` and
    ``close``. A subclass sets ``name``, ``split``, ``classnames`` and ``_labels`` (int64
    ``[n]``, read-only) and defines ``points(indices) -> [m, num_points, 3]``."""

    def __len__(self) -> int:
        return int(self._labels.shape[0])

    @property
    def labels(self) -> np.ndarray:
        """All labels in index order, int64 ``[len(self)]`` (read-only; no clouds are read)."""
        return self._labels

    @property
    def num_classes(self) -> int:
        return len(self.classnames)

    def _indices(self, indices) -> np.ndarray:
        return cloud_indices(indices, len(self), f"{self.name} {self.split}")

    def _served(self, raw: torch.Tensor) -> torch.Tensor:
        """Stored clouds ``raw`` [m, n, 3] as served: sampled to ``num_points`` and, when
        ``normalize``, unit-sphere scaled -> float32 [m, num_points, 3]."""
        pts = h5utils.sample_points(raw, self.num_points, self.sampling)
        if self.normalize:
            pts = h5utils.normalize_unit_sphere(pts)
        return pts.to(torch.float32).contiguous()

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        """-> (points ``[num_points, 3]`` float32, label int)."""
        idx = self._indices([i])
        return self.points(idx)[0], int(self._labels[idx[0]])

    def batches(
        self, batch_size: int = 256, indices=None, progress: bool = False
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Iterate ``(points [b, num_points, 3], labels [b] int64)`` in index order without
        a DataLoader (optionally over a subset ``indices``), with a tqdm bar if ``progress``."""
        idx = self._indices(indices)
        starts = range(0, idx.size, batch_size)
        for s in tqdm(starts, desc=f"{self.name} {self.split}", disable=None if progress else True):
            chunk = idx[s : s + batch_size]
            yield self.points(chunk), torch.from_numpy(self._labels[chunk].copy())

    def close(self) -> None:
        """Release open files (nothing, unless a subclass holds some)."""


class CorruptedSet(CloudSet):
    """One set (a corruption at a severity, or the clean set) of a robustness release
    (ModelNet40-C, ModelNet-C, ScanObjectNN-C): test clouds, ``corruption`` / ``severity`` /
    ``variant`` in its store key. Its clouds are read when first served and let go by
    ``close``: opening many sets (every ModelNet40-C array for `pointcalip extract`'s plan)
    costs their labels, not their clouds. A subclass validates its ``files`` when
    constructed, then calls ``_opened()``, and defines ``_read_clouds() -> [n, stored points,
    3]`` float32. A file that changed in between is refused when read (the clouds would not be
    the ones checked and fingerprinted)."""

    _data: Optional[torch.Tensor] = None
    _stamps: list = []

    @staticmethod
    def _stamp(path: Path) -> tuple:
        st = Path(path).stat()
        return st.st_size, st.st_mtime_ns, st.st_ino

    def _opened(self) -> None:
        self._stamps = [self._stamp(f) for f in self.files]

    def _read_clouds(self) -> torch.Tensor:
        raise NotImplementedError

    def points(self, indices=None) -> torch.Tensor:
        """Clouds at ``indices`` (default all): ``[m] -> [m, num_points, 3]`` float32."""
        if self._data is None:
            for f, stamp in zip(self.files, self._stamps):
                if not Path(f).is_file() or self._stamp(f) != stamp:
                    raise ValueError(f"{f} changed (or went) after {self.name} was opened; "
                                     f"open the set again")
            self._data = self._read_clouds()
        return self._served(self._data[torch.from_numpy(self._indices(indices))])

    #: whether the store key names the points each cloud stores (ModelNet-C / ScanObjectNN-C
    #: sets do; ModelNet40-C's keys never did, and changing them would orphan stores)
    keyed_stored_points = True

    @property
    def settings(self) -> dict:
        """JSON-serialisable identity of the clouds served (feature-store key)."""
        out = {"dataset": self.name, "variant": self.variant, "corruption": self.corruption,
               "severity": self.severity, "split": self.split, "num_points": self.num_points,
               "sampling": self.sampling, "normalize": self.normalize, "num_clouds": len(self),
               "classnames": list(self.classnames), "files": self._fingerprint}
        if self.keyed_stored_points:
            out["stored_points"] = self.stored_points
        return out

    @property
    def served_points(self) -> int:
        """Points per served cloud, known without reading any cloud."""
        return self.num_points if self.num_points is not None else self.stored_points

    def close(self) -> None:
        """Let the clouds go (read again if served again)."""
        self._data = None


class H5CloudDataset(CloudSet, Dataset):
    """Clouds ``[num_points, 3]`` float32 and int labels read from h5 files.

    Args:
        name: dataset identity, e.g. ``"modelnet40"`` or ``"scanobjectnn/PB_T50_RS"``.
        split: ``"train"`` or ``"test"``.
        files: h5 files, read in order; each has ``data`` ``[n, P, 3]`` and ``label``
            ``[n]`` or ``[n, 1]``; other keys are ignored.
        classnames: class names in label order (after ``label_map``).
        source_classes: number of classes the labels stored in the files refer to.
        label_map: optional int array ``[source_classes]``: new label of each stored label, or
            -1 to drop its clouds (e.g. ModelNet10 inside ModelNet40).
        num_points: points per returned cloud (``None``: all stored points).
        sampling: ``"first"`` (first ``num_points`` points, the published protocol) or
            ``"fps"`` (farthest-point sampling from index 0, deterministic).
        normalize: centre each returned cloud and scale it into the unit sphere.
        in_memory: read all clouds at construction (default) or read lazily from the files.
        names_file: where ``classnames`` came from (for error messages).
        hint: how to get a good copy of the files (for error messages).
    """

    def __init__(
        self,
        *,
        name: str,
        split: str,
        files: Sequence[Path],
        classnames: Sequence[str],
        source_classes: int,
        label_map: np.ndarray | None = None,
        num_points: int | None = 1024,
        sampling: str = "first",
        normalize: bool = False,
        in_memory: bool = True,
        variant: str | None = None,
        names_file: str = "the class list",
        hint: str = "",
    ) -> None:
        self.name = name
        self.split = split
        self.variant = variant
        self.classnames = list(classnames)
        self.sampling = sampling
        self.normalize = bool(normalize)
        self.in_memory = bool(in_memory)
        self.files = [Path(f) for f in files]
        self._hint = hint
        self._handles: dict[int, object] = {}
        self._pid = os.getpid()

        labels, file_of, row_of, stored = [], [], [], None
        for fi, path in enumerate(self.files):
            with h5utils.open_h5(path, hint) as h5:
                data = h5utils.require_key(h5, "data", path, hint)
                h5utils.check_points_shape(data.shape, path)
                n, p = data.shape[0], data.shape[1]
                if stored is not None and p != stored:
                    raise ValueError(
                        f"h5 file {path} stores {count(p, 'point')} per cloud but {self.files[0]} "
                        f"stores {stored}; all files of a split must match"
                    )
                stored = p
                raw = h5utils.read_dataset(
                    h5utils.require_key(h5, "label", path, hint), path, "label", hint
                )
            lab = h5utils.check_labels(raw, n, source_classes, path, names_file)
            rows = np.arange(n, dtype=np.int64)
            if label_map is not None:
                mapped = np.asarray(label_map, dtype=np.int64)[lab]
                rows = rows[mapped >= 0]
                lab = mapped[mapped >= 0]
            labels.append(lab)
            row_of.append(rows)
            file_of.append(np.full(rows.shape, fi, dtype=np.int64))
        if stored is None:
            raise FileNotFoundError(f"no h5 files given for {name} split {split!r}. {hint}")
        h5utils.check_sampling(sampling, num_points, stored, f"{self.files[0]}")
        self.num_points = None if num_points is None else int(num_points)
        self.stored_points = stored
        self._labels = np.concatenate(labels)
        self._labels.setflags(write=False)
        self._file_of = np.concatenate(file_of)
        self._row_of = np.concatenate(row_of)
        # With "first" sampling only the first num_points are ever read.
        self._read_points = self.num_points if sampling == "first" and self.num_points else stored
        self._fingerprint = h5utils.fingerprint(self.files)
        self._data: torch.Tensor | None = None
        if self.in_memory:
            self._data = self._load_all()
        log.debug("%s %s: %s from %s", name, split, count(len(self), "cloud"),
                  count(len(self.files), "file"))

    # ------------------------------------------------------------------ reading
    def _load_all(self) -> torch.Tensor:
        chunks = []
        for fi, path in enumerate(self.files):
            rows = self._row_of[self._file_of == fi]
            with h5utils.open_h5(path, self._hint) as h5:
                ds = h5["data"]
                arr = h5utils.read_dataset(
                    ds, path, "data", self._hint, rows=np.s_[:, : self._read_points]
                )
            arr = np.asarray(arr, dtype=np.float32)
            if rows.size != arr.shape[0]:
                arr = arr[rows]
            h5utils.check_finite(arr, path, rows)
            chunks.append(torch.from_numpy(np.ascontiguousarray(arr)))
        return torch.cat(chunks) if chunks else torch.zeros(0, self._read_points, 3)

    def _handle(self, fi: int):
        if self._pid != os.getpid():  # forked DataLoader worker: h5 handles are not fork-safe
            self._handles, self._pid = {}, os.getpid()
        if fi not in self._handles:
            self._handles[fi] = h5utils.open_h5(self.files[fi], self._hint)
        return self._handles[fi]

    def _read_lazy(self, idx: np.ndarray) -> torch.Tensor:
        out = np.empty((idx.size, self._read_points, 3), dtype=np.float32)
        files = self._file_of[idx]
        for fi in np.unique(files):
            where = np.flatnonzero(files == fi)
            rows = self._row_of[idx[where]]
            uniq, inverse = np.unique(rows, return_inverse=True)  # h5py needs increasing rows
            path = self.files[fi]
            arr = h5utils.read_dataset(
                self._handle(int(fi))["data"], path, "data", self._hint,
                rows=(uniq, slice(0, self._read_points)),
            )
            arr = np.asarray(arr, dtype=np.float32)
            h5utils.check_finite(arr, path, uniq)
            out[where] = arr[inverse]
        return torch.from_numpy(out)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_handles"] = {}
        return state

    def close(self) -> None:
        """Close h5 files opened by lazy reading."""
        for h in self._handles.values():
            h.close()
        self._handles = {}

    # ------------------------------------------------------------------ access
    def points(self, indices=None) -> torch.Tensor:
        """Clouds at ``indices`` (default: all): ``[m] -> [m, num_points, 3]`` float32,
        sampled and (if enabled) normalised exactly as ``self[i]`` returns them."""
        idx = self._indices(indices)
        if self._data is not None:
            raw = self._data[torch.from_numpy(idx)]
        else:
            raw = self._read_lazy(idx)
        return self._served(raw)

    @property
    def settings(self) -> dict:
        """JSON-serialisable identity of the clouds served (feature-cache key)."""
        return {
            "dataset": self.name,
            "variant": self.variant,
            "split": self.split,
            "num_points": self.num_points,
            "sampling": self.sampling,
            "normalize": self.normalize,
            "num_clouds": len(self),
            "classnames": list(self.classnames),
            "files": self._fingerprint,
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, split={self.split!r}, n={len(self)}, "
            f"classes={self.num_classes}, num_points={self.num_points}, "
            f"sampling={self.sampling!r}, normalize={self.normalize}, in_memory={self.in_memory})"
        )
