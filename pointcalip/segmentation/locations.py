"""A durable cache of where each point lands (``locate``), so reruns do not render again.

``projector.locate`` renders every view to find each point's pixel and visibility; for V2's
segmentation preset (a 112 x 224 x 224 grid) that is about 0.08 s per cloud on a 2-core CPU
(6 minutes for ShapeNetPart's VAL and TEST), far more than everything else a `segment` run
does from stored features (about 20 s). So the clouds `segment` (or `extract --config
shapenetpart`) encodes are located in the render that makes their images
(``projector.images_and_locations``, kept with :meth:`LocationCache.keep`); only clouds whose
features were stored before are rendered again to be located. The result depends only on
the clouds, the projector and the visibility tolerance, so it is kept on disk beside the
feature store and read by every later run (reruns, prompt candidates, ablation points,
``--tune-on test``)::

    <cache_dir>/locations/<dataset>-<split>-<projector>-<key>/
        locations.json      what the locations are (the key's ingredients), for people
        pieces/<first row>-<n>-<host>-<pid>-<random>.npz   one batch of located rows:
            rows     [n] int64           dataset indices (positions in the dataset), ascending
            xy       [n, V, N, 2] float32  pixel (x = column, y = row) in the CLIP image
            visible  [n, V, N] bool        front surface at its pixel
            key      str                   the key of the cache it was written for
        damaged/            pieces set aside because they could not be read

``key`` hashes the dataset's ``settings`` (split, points per cloud, categories, a
fingerprint of its files), the projector's ``settings`` (every option, the views, the
algorithm version) and the resolved visibility tolerance: any change is another folder.
A piece is written under a temporary name, fsynced and renamed
(:func:`~pointcalip.core.atomic.atomic_write`), so it is complete or absent; pieces never
change and carry unique names, so concurrent writers need no lock (a row located twice is the
same row; the first piece wins). A piece is checked when read: its arrays' shapes and dtypes,
and their bytes against the CRC-32 the zip format records for every member of an ``.npz``
(``zipfile`` verifies it when ``np.load`` reads a member to its end); a damaged one is moved
to ``damaged/`` (or, read-only, ignored) and its rows located again; so is a piece that
names another cache's key or none (copied in from another projector setting's or split's
folder), with a warning saying it does not belong. A folder that cannot be
written is read as it is; missing rows are located without being kept, with
one warning. Depth is not kept: segmentation reads only ``xy`` and ``visible``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from ..core.atomic import atomic_write, write_bytes
from ..core.paths import slug
from ..core.words import count

log = logging.getLogger(__name__)

#: bump when what a piece holds, or how ``locate`` is called, changes
LOCATIONS_FORMAT = 1
#: temporary files of killed writers older than this (seconds) are removed
STALE_SECONDS = 24 * 3600


class ForeignPiece(ValueError):
    """A piece that names another cache's key (or none)."""


def locations_key(dataset_settings: dict, projector_settings: dict, tolerance: float) -> str:
    """20 hex digits naming the locations of one dataset split under one projector."""
    payload = {"format": LOCATIONS_FORMAT, "dataset": dataset_settings,
               "projector": projector_settings, "visible_tolerance": float(tolerance)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()
                          ).hexdigest()[:20]


def bytes_per_shape(views: int, points: int) -> int:
    """Bytes one cloud's locations take in a piece: xy float32 x 2 and visible bool."""
    return views * points * (2 * 4 + 1)


class LocationCache:
    """The locations of one dataset split under one projector (see the module doc).

    ``locate(rows, points)`` -> (xy [n, V, N, 2] float32, visible [n, V, N] bool) for dataset
    rows [n] whose clouds are ``points`` [n, N, 3]: read where kept, else located with
    ``projector.locate`` and kept. ``keep(rows, xy, visible)`` keeps locations the encoding
    pass computed with the images (``projector.images_and_locations``: no second render).
    ``located`` / ``read`` count the rows of each kind (``with_images``: located rows that
    came from the encoding pass).
    """

    def __init__(self, root, dataset, projector, visible_tolerance: Optional[float] = None):
        self.projector = projector
        self.tolerance = float(projector.VISIBLE_TOLERANCE if visible_tolerance is None
                               else visible_tolerance)
        self.num_rows = len(dataset)
        settings = projector.settings
        key = locations_key(dataset.settings, settings, self.tolerance)
        name = "-".join(slug(str(p)) for p in (dataset.name, dataset.split,
                                                settings.get("class", "projector"), key))
        self.path = Path(root).expanduser() / "locations" / name
        self.meta = {"format": LOCATIONS_FORMAT, "key": key, "dataset": dataset.settings,
                     "projector": settings, "visible_tolerance": self.tolerance}
        self.writable = True
        self._prepared = False                 # folder made, meta written, stale files gone
        self.located = 0                       # shapes located by this process
        self.with_images = 0                   # of those, located in the images' render
        self.read = 0                          # other shapes read from the cache (each once)
        self._located_rows: set = set()
        self._read_rows_seen: set = set()
        self._owner: Dict[int, str] = {}       # row -> piece file name
        self._seen: set = set()                # piece names looked at (taken or rejected)

    # ------------------------------------------------------------------------ reading
    def refresh(self) -> None:
        """Take in pieces that appeared since the last look (other processes' too): their
        rows only (checked against their zip CRC-32); the arrays are read when needed."""
        folder = self.path / "pieces"
        names = sorted(os.listdir(folder)) if folder.is_dir() else []
        for name in names:
            if name in self._seen or name.startswith(".") or not name.endswith(".npz"):
                continue
            self._seen.add(name)
            rows = self._load(name, ("rows",))
            if rows is not None:
                for r in rows["rows"].tolist():
                    self._owner.setdefault(r, name)

    def _load(self, name: str, which) -> Optional[Dict[str, np.ndarray]]:
        """Arrays ``which`` (``rows`` among them) of piece ``name``, their zip CRC-32s
        checked; None (and the piece set aside) if damaged."""
        path = self.path / "pieces" / name
        try:
            with np.load(path, allow_pickle=False) as z:
                out = {k: z[k] for k in which}
                key = str(z["key"]) if "key" in z.files else None
            if key != self.meta["key"]:
                raise ForeignPiece(f"it names cache {key!r}, not this cache "
                                   f"({self.meta['key']}): it was located for other data or "
                                   f"projector settings (copied in from another cache?)")
            rows = out["rows"]
            if rows.ndim != 1 or rows.dtype != np.int64 or not len(rows) \
                    or rows.min() < 0 or rows.max() >= self.num_rows:
                raise ValueError(f"rows {rows.dtype}{rows.shape} are not rows of this split")
        except Exception as err:  # noqa: BLE001 - whatever the damage, the rows are located again
            self._set_aside(path, err)
            return None
        return out

    def _set_aside(self, path: Path, err: Exception) -> None:
        if isinstance(err, ForeignPiece):
            log.warning("location cache %s: piece %s does not belong here (%s); it is set "
                        "aside in damaged/ and its rows will be located again", self.path,
                        path.name, err)
        else:
            log.warning("location cache %s: piece %s is unreadable (%s: %s); its rows will be "
                        "located again", self.path, path.name, type(err).__name__, err)
        for r in [r for r, n in self._owner.items() if n == path.name]:
            del self._owner[r]
        try:
            (self.path / "damaged").mkdir(exist_ok=True)
            os.rename(path, self.path / "damaged" / f"{path.name}-{uuid.uuid4().hex[:8]}")
        except OSError:
            pass  # another process set it aside first, or the folder is read-only

    def _read_rows(self, idx: np.ndarray, xy: np.ndarray, visible: np.ndarray) -> np.ndarray:
        """Fill kept rows of ``idx`` into ``xy`` / ``visible``; -> mask of rows filled."""
        found = np.zeros(len(idx), bool)
        names = {self._owner.get(int(r)) for r in idx} - {None}
        for name in sorted(names):
            piece = self._load(name, ("rows", "xy", "visible"))
            if piece is None:
                continue
            m = len(piece["rows"])
            if (piece["xy"].shape, piece["xy"].dtype, piece["visible"].shape,
                    piece["visible"].dtype) != ((m, *xy.shape[1:]), xy.dtype,
                                                (m, *visible.shape[1:]), visible.dtype):
                self._set_aside(self.path / "pieces" / name, ValueError(
                    f"holds xy {piece['xy'].dtype}{piece['xy'].shape} and visible "
                    f"{piece['visible'].dtype}{piece['visible'].shape}; expected float32 "
                    f"[{m}, {xy.shape[1]}, {xy.shape[2]}, 2] and bool [{m}, {xy.shape[1]}, "
                    f"{xy.shape[2]}]"))
                continue
            at = {int(r): k for k, r in enumerate(piece["rows"])}
            for i, r in enumerate(idx.tolist()):
                if self._owner.get(r) == name and r in at:
                    xy[i], visible[i] = piece["xy"][at[r]], piece["visible"][at[r]]
                    found[i] = True
        return found

    # ------------------------------------------------------------------------ locating
    def locate(self, rows, points: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """rows [n] dataset indices, points [n, N, 3] their clouds -> (xy [n, V, N, 2]
        float32, visible [n, V, N] bool) on the CPU, as ``projector.locate`` gives them."""
        idx = np.asarray(rows, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_rows):
            raise IndexError(f"rows {idx.tolist()[:10]} outside this split's "
                             f"{count(self.num_rows, 'cloud')}")
        if points.ndim != 3 or points.shape[0] != len(idx):
            raise ValueError(f"points must be [n, N, 3] for the {count(len(idx), 'row')}, got "
                             f"{tuple(points.shape)}")
        n, v, npts = len(idx), self.projector.num_views, points.shape[1]
        xy = np.empty((n, v, npts, 2), np.float32)
        visible = np.empty((n, v, npts), bool)
        if any(int(r) not in self._owner for r in idx):
            self.refresh()
        found = self._read_rows(idx, xy, visible)
        self._read_rows_seen.update(int(r) for r in idx[found])      # a second pass counts once
        self.read = len(self._read_rows_seen - self._located_rows)
        todo = np.flatnonzero(~found)
        if todo.size:
            loc = self.projector.locate(points[torch.from_numpy(todo)],
                                        visible_tolerance=self.tolerance)
            xy[todo] = loc.xy.cpu().numpy()
            visible[todo] = loc.visible.cpu().numpy()
            self._located_rows.update(int(r) for r in idx[todo])
            self.located = len(self._located_rows)
            self.read = len(self._read_rows_seen - self._located_rows)
            self._write(idx[todo], xy[todo], visible[todo])
        return torch.from_numpy(xy), torch.from_numpy(visible)

    def missing(self, rows) -> np.ndarray:
        """The rows of ``rows`` (ascending, unique) that no piece holds yet (pieces other
        processes wrote included)."""
        idx = np.unique(np.asarray(rows, dtype=np.int64).reshape(-1))
        if any(int(r) not in self._owner for r in idx):
            self.refresh()
        return np.array([r for r in idx.tolist() if r not in self._owner], dtype=np.int64)

    def keep(self, rows, xy, visible) -> int:
        """Keep locations computed elsewhere, e.g. by ``projector.images_and_locations`` in
        the pass that renders the images for encoding: rows [n] dataset indices, xy
        [n, V, N, 2] and visible [n, V, N] (tensors on any device, or arrays), exactly what
        ``projector.locate`` gives for their clouds at this cache's tolerance. Rows already
        kept are skipped; -> rows kept now (counted in ``located``)."""
        idx = np.asarray(rows, dtype=np.int64).reshape(-1)
        xy = xy.cpu().numpy() if isinstance(xy, torch.Tensor) else np.asarray(xy)
        visible = visible.cpu().numpy() if isinstance(visible, torch.Tensor) \
            else np.asarray(visible)
        v = self.projector.num_views
        if xy.shape[:2] != (len(idx), v) or xy.shape[3:] != (2,) or \
                visible.shape != xy.shape[:3]:
            raise ValueError(f"locations for {count(len(idx), 'row')} must be xy [{len(idx)}, {v}, "
                             f"N, 2] and visible [{len(idx)}, {v}, N]; got {xy.shape} and "
                             f"{visible.shape}")
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_rows):
            raise IndexError(f"rows {idx.tolist()[:10]} outside this split's "
                             f"{count(self.num_rows, 'cloud')}")
        new = np.isin(idx, self.missing(idx))
        if not new.any():
            return 0
        self._write(idx[new], xy[new].astype(np.float32, copy=False),
                    visible[new].astype(bool, copy=False))
        self._located_rows.update(int(r) for r in idx[new])
        self.located = len(self._located_rows)
        self.read = len(self._read_rows_seen - self._located_rows)
        self.with_images += int(new.sum())
        return int(new.sum())

    # ------------------------------------------------------------------------ writing
    def _write(self, rows: np.ndarray, xy: np.ndarray, visible: np.ndarray) -> None:
        """Keep one batch as a new piece; on the first failure, warn and keep nothing more."""
        if not self.writable:
            return
        order = np.argsort(rows, kind="stable")
        rows, xy, visible = (np.ascontiguousarray(a[order]) for a in (rows, xy, visible))
        if (np.diff(rows) == 0).any():
            return                                # one cloud twice in a batch: keep it later
        name = (f"{rows[0]:08d}-{len(rows)}-{socket.gethostname()}-{os.getpid()}-"
                f"{uuid.uuid4().hex[:8]}.npz")
        pieces = self.path / "pieces"
        try:
            if not self._prepared:
                pieces.mkdir(parents=True, exist_ok=True)
                if not (self.path / "locations.json").exists():
                    write_bytes(self.path / "locations.json",
                                json.dumps(self.meta, indent=1, default=str).encode())
                self._remove_stale()
                self._prepared = True
            with atomic_write(pieces / name) as f:
                np.savez(f, rows=rows, xy=xy, visible=visible, key=np.array(self.meta["key"]))
        except OSError as err:
            self.writable = False
            log.warning("location cache %s cannot be written (%s); point locations are "
                        "computed without being kept (every run renders them again; set "
                        "cache_dir to a writable folder)", self.path, err)
            return
        self._seen.add(name)
        for r in rows.tolist():
            self._owner.setdefault(r, name)

    def _remove_stale(self) -> None:
        """Remove killed writers' temporary files (``.<name>.<random>.tmp``) older than
        :data:`STALE_SECONDS`."""
        now = time.time()
        for item in (self.path / "pieces").glob(".*.tmp"):
            try:
                if now - item.stat().st_mtime > STALE_SECONDS:
                    item.unlink()
            except OSError:
                pass

    def __repr__(self) -> str:
        return f"LocationCache({self.path}, located={self.located}, read={self.read})"
