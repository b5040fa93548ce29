"""On-disk store of per-view CLIP features for whole dataset splits.

One folder per (dataset settings, projector settings, backbone identity, precision, engine,
extractor version); its rows are the split's clouds, by dataset index, encoded on demand::

    <root>/<dataset>-<split>-<projector>-<backbone>-<precision>-<key>/
        store.json                 what the features are (the key's ingredients, shapes)
        pieces/<name>/             one batch of encoded rows, immutable once it appears:
            rows.npy      [n]              dataset indices of the rows, ascending
            global.npy    [n, V, C]        float16, unit-norm global feature of every view
            spatial.npy   [n, V, HW, C]    float16, unit-norm spatial tokens of every view
            norm.npy      [n, V]           float32, the global feature's length before
                                           normalisation (raw feature = global * norm)
            info.json                      encoding time, device, threads, host, date,
                                           and the CRC-32 of each array's bytes
        writing/                   pieces being written (hidden from readers)
        damaged/                   pieces or files set aside because they could not be read

A piece is written in ``writing/`` and renamed into ``pieces/`` only when complete, so a row
is valid exactly when a complete piece holds it: a killed run never leaves a row that reads
as valid, and rerunning encodes only the missing rows. Writers need no lock: several
processes (e.g. torchrun ranks) can fill disjoint (or even overlapping) rows at once, each
writing its own pieces; nobody deletes another's work (unreadable pieces are moved to
``damaged/``; leftovers in ``writing/`` are removed only by their own host once their process
is gone). Any subset of views is a slice of the V axis: views never need re-encoding.

A piece is checked when a process first opens it: its arrays' shapes, and their bytes against
the CRC-32 checksums its ``info.json`` recorded when it was written, so a piece damaged on disk
(e.g. overwritten with zeros, same size) is set aside and its rows encoded again instead of
being read. Pieces written before checksums existed are read unchecked (a warning counts them).
Reading needs no write permission: a read-only store that holds every needed row is read;
one that lacks rows says so, naming the folder, before anything is encoded. A full disk while
writing is a :class:`~pointcalip.core.atomic.DiskFullError` naming the file; the unfinished
piece is removed and completed pieces stay valid.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import time
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np

from .core.atomic import DiskFullError, disk_full_names, fsync_dir, is_disk_full
from .core.paths import cache_dir as default_cache_dir, slug

log = logging.getLogger(__name__)

STORE_FORMAT = 2
#: bump when the way images become features changes (same settings, different numbers)
EXTRACTOR_VERSION = 1
_ARRAYS = ("rows", "global", "spatial", "norm")
#: the checksum recorded in each piece's info.json (see scripts/bench_store.py for its cost)
CHECKSUM = "crc32"
#: how to point the commands at another store folder, for error messages
FIX = "set cache_dir to a writable folder (--set cache_dir=DIR)"


def store_key(dataset_settings: dict, projector_settings: dict, backbone_identity: str,
              precision: str, engine: str = "eager") -> str:
    """The store's identity: a hash of everything that determines the stored features,
    including the engine that ran the image tower (:mod:`pointcalip.backbones.engines`; its tokens agree
    with PyTorch's only up to float rounding). PyTorch ("eager") stores keep the keys they had
    before there were engines."""
    payload = {"format": STORE_FORMAT, "extractor": EXTRACTOR_VERSION,
               "dataset": dataset_settings, "projector": projector_settings,
               "backbone": backbone_identity, "precision": precision}
    if engine != "eager":
        payload["engine"] = engine
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _write_json(path: Path, data: dict) -> None:
    with open(path, "w") as f:
        json.dump(data, f, indent=1, default=str)
        f.flush()
        os.fsync(f.fileno())


def _save(path: Path, array: np.ndarray) -> None:
    """``array`` (C-contiguous) as a .npy file, fsynced. The bytes go through ``f.write`` (not
    numpy's ``tofile``, whose short-write error has no errno) so a full disk is recognised."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, np.lib.format.header_data_from_array_1_0(array))
        f.write(array.data)
        f.flush()
        os.fsync(f.fileno())


def checksum(array: np.ndarray) -> int:
    """CRC-32 of a C-contiguous array's bytes (memory maps included: read in place)."""
    return zlib.crc32(array) if array.size else 0


def _cannot_write(folder: Path, err: OSError, what: str) -> OSError:
    """The error for a store folder that cannot be written: disk full, or why not and how to
    choose another folder."""
    if is_disk_full(err):
        return DiskFullError(folder, err)
    error = PermissionError(f"{what}, but cannot write in {folder} ({err.strerror or err}): "
                            f"make it writable or {FIX}")
    error.errno = err.errno
    return error


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class _Piece:
    name: str
    rows: np.ndarray          # [n] ascending dataset indices
    arrays: Dict[str, np.ndarray]  # memory maps: global, spatial, norm
    info: dict
    verified: bool             # it carries checksums (checked unless opened with verify=False)


class SplitStore:
    """The features of one split under one projector and backbone (see the module doc).

    Shapes: ``num_rows`` N (clouds in the split), ``num_views`` V, ``embed_dim`` C,
    ``num_tokens`` HW.
    """

    def __init__(self, path: Path, meta: dict, verify: bool = True):
        self.path = path
        self.meta = meta
        self.verify = verify            # check each piece's checksums when first opened
        self.num_rows = int(meta["num_rows"])
        self.num_views, self.num_tokens, self.embed_dim = (int(x) for x in meta["view_shape"])
        self._pieces: Dict[str, _Piece] = {}
        self._owner = np.full(self.num_rows, -1, dtype=np.int64)     # piece number of each row
        self._position = np.zeros(self.num_rows, dtype=np.int64)     # row's place in its piece
        self._order: list[str] = []                                  # piece number -> name
        self._rejected: set[str] = set()    # damaged pieces that could not be moved aside
        self._remove_stale_writes()

    # ----------------------------------------------------------------------- reading
    def refresh(self) -> None:
        """Take in pieces that appeared since the last look (other processes' work too)."""
        folder = self.path / "pieces"
        names = sorted(os.listdir(folder)) if folder.is_dir() else []
        new = [name for name in names if name not in self._pieces and name not in self._rejected]
        workers = min(len(new), os.cpu_count() or 1, 8) if self.verify else 1
        if workers > 1:      # checksums run in parallel (zlib releases the GIL), order kept
            with ThreadPoolExecutor(workers, thread_name_prefix="store-check") as pool:
                opened = list(pool.map(self._open_piece, [folder / name for name in new]))
        else:
            opened = [self._open_piece(folder / name) for name in new]
        unchecked = 0
        for name, piece in zip(new, opened):
            if piece is None:
                self._rejected.add(name)
                continue
            unchecked += not piece.verified
            self._pieces[name] = piece
            number = len(self._order)
            self._order.append(name)
            free = self._owner[piece.rows] < 0                      # first piece of a row wins
            self._owner[piece.rows[free]] = number
            self._position[piece.rows[free]] = np.flatnonzero(free)
        if unchecked and self.verify:
            log.warning("feature store %s: %d piece(s) were written before pieces carried "
                        "checksums and are read unchecked; delete the folder to encode them "
                        "again with checksums", self.path, unchecked)

    def _open_piece(self, folder: Path) -> Optional[_Piece]:
        """A complete piece's memory maps, or None (and the piece set aside) if any part of it
        cannot be read or does not match this store."""
        v, hw, c = self.num_views, self.num_tokens, self.embed_dim
        try:
            arrays = {a: np.load(folder / f"{a}.npy", mmap_mode="r") for a in _ARRAYS}
            info = json.loads((folder / "info.json").read_text())
            rows = np.asarray(arrays.pop("rows"), dtype=np.int64)
            n = rows.shape[0]
            expected = {"global": ((n, v, c), np.float16), "spatial": ((n, v, hw, c), np.float16),
                        "norm": ((n, v), np.float32)}
            for name, (shape, dtype) in expected.items():
                if arrays[name].shape != shape or arrays[name].dtype != dtype:
                    raise ValueError(f"{name}.npy is {arrays[name].dtype}{arrays[name].shape}, "
                                     f"expected {np.dtype(dtype)}{shape}")
            if rows.ndim != 1 or n == 0 or rows[0] < 0 or rows[-1] >= self.num_rows \
                    or (np.diff(rows) <= 0).any():
                raise ValueError("rows.npy does not hold ascending indices of this split")
            sums = info.get("checksums")
            if sums is not None and self.verify:
                if sums.get("algorithm") != CHECKSUM:
                    raise ValueError(f"info.json records {sums.get('algorithm')!r} checksums, "
                                     f"expected {CHECKSUM!r}")
                for name in _ARRAYS:
                    array = rows if name == "rows" else arrays[name]
                    if checksum(array) != sums.get(name):
                        raise ValueError(f"{name}.npy does not match its checksum (its bytes "
                                         f"changed after it was written)")
        except Exception as err:  # noqa: BLE001 - whatever the damage, the rows get re-encoded
            self._set_aside(folder, err)
            return None
        return _Piece(folder.name, rows, arrays, info, sums is not None)

    def _set_aside(self, item: Path, err: Exception) -> None:
        log.warning("feature store %s: %s is unreadable (%s: %s); its rows will be encoded "
                    "again", self.path.name, item.name, type(err).__name__, err)
        target = self.path / "damaged" / f"{item.name}-{uuid.uuid4().hex[:8]}"
        try:
            target.parent.mkdir(exist_ok=True)
            os.rename(item, target)
        except OSError:
            pass  # another process set it aside first, or the store is read-only

    def stored(self, rows: Optional[Sequence[int]] = None) -> np.ndarray:
        """Boolean mask over ``rows`` (default: every row of the split): True where stored."""
        self.refresh()
        idx = self._rows(rows)
        return self._owner[idx] >= 0

    def missing(self, rows: Optional[Sequence[int]] = None) -> np.ndarray:
        """The rows among ``rows`` (default all) not stored yet, ascending and unique."""
        idx = np.unique(self._rows(rows))
        return idx[~self.stored(idx)]

    def read(self, rows: Sequence[int], views: Optional[Sequence[int]] = None,
             spatial: bool = True):
        """Stored features of ``rows`` [n] -> (global [n, V', C] float16, spatial
        [n, V', HW, C] float16 (None if ``spatial`` is False: not read at all), norm [n, V']
        float32) in the order given; ``views`` selects V' of the V views. Every row must be
        stored (see :meth:`missing`)."""
        idx = self._rows(rows)
        owner = self._owner[idx]
        if (owner < 0).any():
            self.refresh()
            owner = self._owner[idx]
            if (owner < 0).any():
                raise KeyError(f"feature store {self.path} lacks rows "
                               f"{idx[owner < 0][:10].tolist()}; encode them first")
        vi = np.arange(self.num_views) if views is None else np.asarray(views, dtype=np.int64)
        if vi.size == 0 or vi.min() < 0 or vi.max() >= self.num_views:
            raise ValueError(f"views {list(views)} out of range: the store holds "
                             f"{self.num_views} views (indices 0..{self.num_views - 1})")
        n, v = len(idx), len(vi)
        out = {"global": np.empty((n, v, self.embed_dim), np.float16),
               "norm": np.empty((n, v), np.float32)}
        if spatial:
            out["spatial"] = np.empty((n, v, self.num_tokens, self.embed_dim), np.float16)
        for number in np.unique(owner):
            where = np.flatnonzero(owner == number)
            piece = self._pieces[self._order[number]]
            pos = self._position[idx[where]]
            order = np.argsort(pos, kind="stable")      # increasing reads from the memory map
            for name, dst in out.items():
                block = piece.arrays[name][pos[order]]
                dst[where[order]] = block[:, vi]
        return out["global"], out.get("spatial"), out["norm"]

    def encoding_seconds(self, rows: Sequence[int]) -> float:
        """The encoding time, as recorded when encoded, of ``rows`` (each piece's time
        shared equally among its rows)."""
        idx = self._rows(rows)
        owner = self._owner[idx]
        total = 0.0
        for number, count in zip(*np.unique(owner[owner >= 0], return_counts=True)):
            piece = self._pieces[self._order[number]]
            total += float(piece.info.get("seconds", 0.0)) * count / len(piece.rows)
        return total

    def _rows(self, rows: Optional[Sequence[int]]) -> np.ndarray:
        if rows is None:
            return np.arange(self.num_rows, dtype=np.int64)
        idx = np.asarray(rows, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_rows):
            bad = idx[(idx < 0) | (idx >= self.num_rows)][0]
            raise IndexError(f"row {bad} is outside this split's {self.num_rows} clouds")
        return idx

    # ----------------------------------------------------------------------- writing
    def check_writable(self, why: str) -> None:
        """Raise an ``OSError`` naming this store's folder, saying ``why`` it must be written
        and how to choose another, unless new pieces can be written in it."""
        probe = self.path / "writing" / f".probe-{socket.gethostname()}-{os.getpid()}"
        try:
            probe.parent.mkdir(exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as err:
            raise _cannot_write(self.path, err, why) from None

    def write(self, rows: Sequence[int], global_feats: np.ndarray, spatial: np.ndarray,
              norms: np.ndarray, seconds: float = 0.0, device: str = "", threads: int = 0
              ) -> None:
        """Store one batch: rows [n] (distinct), global [n, V, C], spatial [n, V, HW, C],
        norms [n, V]; ``seconds``, ``device`` and ``threads`` (intra-op threads that encoded
        it) are recorded in info.json. The rows become readable all at once, when the piece
        is complete. A full disk raises :class:`~pointcalip.core.atomic.DiskFullError` naming
        the file and leaves nothing behind."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        n, v, hw, c = len(rows), self.num_views, self.num_tokens, self.embed_dim
        arrays = {"global": np.asarray(global_feats, np.float16),
                  "spatial": np.asarray(spatial, np.float16),
                  "norm": np.asarray(norms, np.float32)}
        expected = {"global": (n, v, c), "spatial": (n, v, hw, c), "norm": (n, v)}
        for name, shape in expected.items():
            if arrays[name].shape != shape:
                raise ValueError(f"feature store write: {name} has shape "
                                 f"{arrays[name].shape}, expected {shape} for {n} rows")
            if not np.isfinite(arrays[name]).all():
                bad = rows[~np.isfinite(arrays[name]).reshape(n, -1).all(axis=1)]
                raise ValueError(f"features of clouds {bad[:10].tolist()} are NaN/inf; nothing "
                                 f"was stored for this batch")
        if n == 0:
            return
        order = np.argsort(rows, kind="stable")
        rows = rows[order]
        if (np.diff(rows) == 0).any():
            raise ValueError("feature store write: rows must be distinct")
        self._rows(rows)
        token = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp = self.path / "writing" / token
        with disk_full_names(tmp):
            tmp.mkdir(parents=True)
        try:
            sums = {"algorithm": CHECKSUM, "rows": checksum(rows)}
            with disk_full_names(tmp / "rows.npy"):
                _save(tmp / "rows.npy", rows)
            for name, array in arrays.items():
                array = np.ascontiguousarray(array[order])
                sums[name] = checksum(array)
                with disk_full_names(tmp / f"{name}.npy"):
                    _save(tmp / f"{name}.npy", array)
            with disk_full_names(tmp / "info.json"):
                _write_json(tmp / "info.json", {
                    "seconds": seconds, "device": device, "threads": threads,
                    "host": socket.gethostname(), "pid": os.getpid(),
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "checksums": sums})
                fsync_dir(tmp)
                (self.path / "pieces").mkdir(exist_ok=True)
                os.rename(tmp, self.path / "pieces" / f"{rows[0]:08d}-{n}-{token}")
                fsync_dir(self.path / "pieces")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _remove_stale_writes(self) -> None:
        """Delete this host's unfinished pieces whose process is gone (killed runs)."""
        folder = self.path / "writing"
        if not folder.is_dir():
            return
        host = socket.gethostname()
        for item in folder.iterdir():
            owner, _, rest = item.name.rpartition("-")[0].rpartition("-")
            if owner == host and rest.isdigit() and not _pid_alive(int(rest)):
                shutil.rmtree(item, ignore_errors=True)

    def __repr__(self) -> str:
        return (f"SplitStore({self.path}, rows={self.num_rows}, V={self.num_views}, "
                f"HW={self.num_tokens}, C={self.embed_dim})")


class FeatureStore:
    """The folder of split stores (default ``<POINTCALIP_HOME>/features``)."""

    def __init__(self, root: str | Path | None = None, verify: bool = True):
        self.root = Path(root).expanduser() if root else default_cache_dir()
        self.verify = verify     # check pieces against their checksums (see SplitStore)

    def check(self) -> "FeatureStore":
        """Before long work starts: the root folder exists, or is created (an ``OSError``
        naming it says why not and how to choose another). Write permission is not needed to
        read: it is checked only when rows must be encoded (:meth:`SplitStore.check_writable`)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise _cannot_write(self.root, err, "the feature store folder does not exist") \
                from None
        return self

    def open(self, dataset, projector, backbone) -> SplitStore:
        """The store of ``dataset``'s split under ``projector`` and ``backbone`` (created
        empty if absent). ``dataset`` needs ``name``, ``split``, ``settings`` and ``len``;
        ``projector`` ``settings`` and ``num_views``; ``backbone`` ``name``, ``identity``,
        ``precision``, ``num_tokens`` and ``embed_dim``."""
        engine = getattr(backbone, "engine", "eager")
        key = store_key(dataset.settings, projector.settings, backbone.identity,
                        backbone.precision, engine)
        parts = (dataset.name, dataset.split, type(projector).__name__, backbone.name,
                 backbone.precision, key)
        folder = self.root / "-".join(slug(str(p)) for p in parts)
        meta = {"format": STORE_FORMAT, "extractor": EXTRACTOR_VERSION, "key": key,
                "num_rows": len(dataset),
                "view_shape": [projector.num_views, backbone.num_tokens, backbone.embed_dim],
                "dataset": dataset.settings, "projector": projector.settings,
                "backbone": {"name": backbone.name, "identity": backbone.identity,
                             "precision": backbone.precision}}
        if engine != "eager":
            meta["backbone"]["engine"] = engine
        return self._open_or_create(folder, meta)

    def find(self, dataset, projector, identity: str, precision: str, engine: str = "eager"
             ) -> Optional[SplitStore]:
        """The existing store of ``dataset`` under ``projector`` and a backbone of this
        identity, precision and engine, or None; read-only (nothing is created or set
        aside)."""
        key = store_key(dataset.settings, projector.settings, identity, precision, engine)
        for folder in sorted(self.root.glob(f"*-{key}")):
            meta = self._read_meta(folder)
            if meta is not None and meta.get("key") == key:
                return SplitStore(folder, meta, self.verify)
        return None

    def _open_or_create(self, folder: Path, meta: dict) -> SplitStore:
        for _ in range(3):
            found = self._read_meta(folder)
            if found == json.loads(json.dumps(meta, default=str)):
                return SplitStore(folder, found, self.verify)
            if found is not None or folder.exists():   # damaged or foreign: set aside, start over
                aside = self.root / f".damaged-{folder.name}-{uuid.uuid4().hex[:8]}"
                log.warning("feature store %s has an unreadable or mismatched store.json; moved "
                            "it to %s and starting a new one", folder, aside)
                try:
                    os.rename(folder, aside)
                except OSError:
                    pass
            tmp = self.root / f".new-{folder.name}-{uuid.uuid4().hex[:8]}"
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                tmp.mkdir()
                _write_json(tmp / "store.json",
                            {**meta, "created": time.strftime("%Y-%m-%dT%H:%M:%S")})
                fsync_dir(tmp)
            except OSError as err:
                shutil.rmtree(tmp, ignore_errors=True)
                raise _cannot_write(self.root, err, f"the feature store {folder.name} does "
                                    f"not exist yet") from None
            try:
                os.rename(tmp, folder)          # atomic; fails if another process made it first
                fsync_dir(self.root)
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
        found = self._read_meta(folder)
        if found is None:
            raise RuntimeError(f"cannot create the feature store {folder}")
        return SplitStore(folder, found, self.verify)

    @staticmethod
    def _read_meta(folder: Path) -> Optional[dict]:
        """store.json without its date, or None if absent or unreadable."""
        try:
            meta = json.loads((folder / "store.json").read_text())
            meta.pop("created", None)
            return meta
        except Exception:  # noqa: BLE001 - absent, truncated, not JSON: all mean "not usable"
            return None
