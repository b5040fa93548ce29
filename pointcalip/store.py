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
            info.json                      the key of the store it was written for and
                                           its number of rows, encoding time, device,
                                           threads, host, date, and the CRC-32 of each
                                           array's bytes
        writing/                   pieces being written (hidden from readers)
        damaged/                   pieces or files set aside because they could not be read

What a store keeps is its mode (config key ``store``; docs/feature-store.md#compact-stores):

- ``tokens`` (above): float16 global features and spatial tokens; answers everything.
- ``tokens8``: the spatial tokens as int8 with one float32 scale per token (``spatial.npy``
  [n, V, HW, C] int8 and ``scale.npy`` [n, V, HW]; a token is ``spatial * scale``), read back
  as float16 tokens: every use of the tokens works, with the quantisation error measured by
  ``scripts/bench_store_modes.py``.
- ``logits``: no tokens; the three per-view CALIP logits of one class-text matrix
  (``l0.npy``, ``l1.npy``, ``l2.npy`` [n, V, K] float32), plus ``global.npy`` and ``norm.npy``.
  Its key holds a hash of the text features and CALIP's temperature, so another prompt set or
  class list gets another store. It answers zero-shot CALIP with any betas, view weights or
  view subset; anything that needs tokens (other class texts, few-shot training, part
  segmentation, explanations) is refused with :class:`StoreModeError`.

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
A piece whose info.json names another store's key (or none: a piece copied in from another
split's or setting's store) or another number of rows is set aside the same way, with a
warning saying it does not belong, and its rows encoded again.
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
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from .core.atomic import DiskFullError, disk_full_names, fsync_dir, is_disk_full
from .core.paths import cache_dir as default_cache_dir, slug, write_probe
from .core.words import count

log = logging.getLogger(__name__)

STORE_FORMAT = 2
#: bump when the way images become features changes (same settings, different numbers)
EXTRACTOR_VERSION = 1
#: what a store can keep (the config key ``store``; see the module doc)
STORE_MODES = ("tokens", "tokens8", "logits")
#: the per-view CALIP logits a ``logits`` store keeps (docs/calip.md#the-attention-per-view)
LOGITS = ("l0", "l1", "l2")
#: the checksum recorded in each piece's info.json (see scripts/bench_store.py for its cost)
CHECKSUM = "crc32"
#: how to point the commands at another store folder, for error messages
FIX = "set cache_dir to a writable folder (--set cache_dir=DIR)"


class ForeignPiece(ValueError):
    """A piece whose info.json says it belongs to another store (or to other rows)."""


class StoreModeError(ValueError):
    """A use the store's mode cannot answer (e.g. spatial tokens from a ``logits`` store)."""


def piece_layout(mode: str, views: int, tokens: int, dim: int, classes: int = 0
                 ) -> Dict[str, Tuple[Tuple[int, ...], np.dtype]]:
    """The arrays of one piece besides ``rows.npy`` in a store of ``mode``: name -> (shape of
    one row, dtype). ``classes`` K matters for ``logits`` only."""
    f16, f32 = np.dtype(np.float16), np.dtype(np.float32)
    layout = {"global": ((views, dim), f16)}
    if mode == "tokens":
        layout["spatial"] = ((views, tokens, dim), f16)
    elif mode == "tokens8":
        layout["spatial"] = ((views, tokens, dim), np.dtype(np.int8))
        layout["scale"] = ((views, tokens), f32)
    elif mode == "logits":
        layout.update({name: ((views, classes), f32) for name in LOGITS})
    else:
        raise ValueError(f"unknown store mode {mode!r}; use one of {', '.join(STORE_MODES)}")
    layout["norm"] = ((views,), f32)
    return layout


def bytes_per_cloud(mode: str, views: int, tokens: int, dim: int, classes: int = 0) -> int:
    """Bytes one cloud takes in a store of ``mode`` (its arrays; rows.npy and headers aside)."""
    return sum(int(np.prod(shape)) * dtype.itemsize
               for shape, dtype in piece_layout(mode, views, tokens, dim, classes).values())


def quantize_tokens(spatial: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Tokens [..., C] -> (int8 [..., C], scale [...] float32): per token, symmetric,
    ``scale = max |x| / 127`` and ``q = round(x / scale)`` (all-zero tokens get scale 0)."""
    x = np.asarray(spatial, dtype=np.float32)
    scale = np.abs(x).max(axis=-1) / 127.0
    q = np.rint(x / np.where(scale > 0, scale, 1.0)[..., None])
    return q.astype(np.int8), scale.astype(np.float32)


def dequantize_tokens(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """int8 tokens [..., C] and their scales [...] -> float16 tokens ``q * scale``."""
    return (q.astype(np.float32) * scale[..., None]).astype(np.float16)


def text_identity(text, temperature: float) -> dict:
    """What a ``logits`` store's logits depend on beyond the images: the class-text features
    ``text`` [K, C] (a hash of their float32 values and their shape) and CALIP's attention
    temperature."""
    array = np.ascontiguousarray(np.asarray(text, dtype=np.float32))
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"class-text features must be [K, C] with K >= 1, got {array.shape}")
    digest = hashlib.sha256(repr(array.shape).encode() + array.tobytes()).hexdigest()[:20]
    return {"sha256": digest, "shape": list(array.shape), "temperature": float(temperature)}


def store_key(dataset_settings: dict, projector_settings: dict, backbone_identity: str,
              precision: str, engine: str = "eager", mode: str = "tokens",
              text: Optional[dict] = None) -> str:
    """The store's identity: a hash of everything that determines the stored features,
    including the engine that ran the image tower (:mod:`pointcalip.backbones.engines`; its tokens agree
    with PyTorch's only up to float rounding), the store's ``mode`` and, for ``logits``, the
    :func:`text_identity` of the class texts. PyTorch ("eager") ``tokens`` stores keep the keys
    they had before there were engines and modes."""
    payload = {"format": STORE_FORMAT, "extractor": EXTRACTOR_VERSION,
               "dataset": dataset_settings, "projector": projector_settings,
               "backbone": backbone_identity, "precision": precision}
    if engine != "eager":
        payload["engine"] = engine
    if mode != "tokens":
        payload["store"] = mode
    if text is not None:
        payload["text"] = text
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
    arrays: Dict[str, np.ndarray]  # memory maps of the store's piece_layout
    info: dict
    verified: bool             # it carries checksums (checked unless opened with verify=False)


class SplitStore:
    """The features of one split under one projector and backbone (see the module doc).

    Shapes: ``num_rows`` N (clouds in the split), ``num_views`` V, ``embed_dim`` C,
    ``num_tokens`` HW, ``num_classes`` K (``logits`` stores). ``mode`` is what it keeps (one of
    STORE_MODES); ``text`` [K, C] float32 is the class-text matrix of a ``logits`` store when
    the caller that opened it gave it (needed to encode rows, not to read them).
    """

    def __init__(self, path: Path, meta: dict, verify: bool = True):
        self.path = path
        self.meta = meta
        self.verify = verify            # check each piece's checksums when first opened
        self.text: Optional[np.ndarray] = None      # set by FeatureStore.open (logits stores)
        self.mode = meta.get("store", "tokens")
        self.num_rows = int(meta["num_rows"])
        self.num_views, self.num_tokens, self.embed_dim = (int(x) for x in meta["view_shape"])
        self.num_classes = int(meta["text"]["shape"][0]) if self.mode == "logits" else 0
        self.layout = piece_layout(self.mode, self.num_views, self.num_tokens, self.embed_dim,
                                   self.num_classes)
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
        try:
            arrays = {a: np.load(folder / f"{a}.npy", mmap_mode="r")
                      for a in ("rows", *self.layout)}
            info = json.loads((folder / "info.json").read_text())
            rows = np.asarray(arrays.pop("rows"), dtype=np.int64)
            n = rows.shape[0]
            for name, (row_shape, dtype) in self.layout.items():
                shape = (n, *row_shape)
                if arrays[name].shape != shape or arrays[name].dtype != dtype:
                    raise ValueError(f"{name}.npy is {arrays[name].dtype}{arrays[name].shape}, "
                                     f"expected {np.dtype(dtype)}{shape}")
            if rows.ndim != 1 or n == 0 or rows[0] < 0 or rows[-1] >= self.num_rows \
                    or (np.diff(rows) <= 0).any():
                raise ValueError("rows.npy does not hold ascending indices of this split")
            self._check_belongs(info, n)
            sums = info.get("checksums")
            if sums is not None and self.verify:
                if sums.get("algorithm") != CHECKSUM:
                    raise ValueError(f"info.json records {sums.get('algorithm')!r} checksums, "
                                     f"expected {CHECKSUM!r}")
                for name in ("rows", *self.layout):
                    array = rows if name == "rows" else arrays[name]
                    if checksum(array) != sums.get(name):
                        raise ValueError(f"{name}.npy does not match its checksum (its bytes "
                                         f"changed after it was written)")
        except Exception as err:  # noqa: BLE001 - whatever the damage, the rows get re-encoded
            self._set_aside(folder, err)
            return None
        return _Piece(folder.name, rows, arrays, info, sums is not None)

    def _check_belongs(self, info: dict, n: int) -> None:
        """A :class:`ForeignPiece` error unless ``info.json`` says the piece was written into
        this store (its key) and holds ``n`` rows."""
        key = self.meta.get("key")
        if info.get("store") != key:
            raise ForeignPiece(
                f"its info.json names store {info.get('store')!r}, not this store ({key}): it "
                f"was written for other data or settings (copied in from another store?)")
        if info.get("num_rows") != n:
            raise ForeignPiece(f"its info.json records {info.get('num_rows')!r} rows but "
                               f"rows.npy holds {n}")

    def _set_aside(self, item: Path, err: Exception) -> None:
        if isinstance(err, ForeignPiece):
            log.warning("feature store %s: piece %s does not belong here (%s); it is set aside "
                        "in damaged/ and its rows will be encoded again", self.path.name,
                        item.name, err)
        else:
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
        [n, V', HW, C] float16 (None if ``spatial`` is False: not read at all; a ``tokens8``
        store's are dequantised), norm [n, V'] float32) in the order given; ``views`` selects
        V' of the V views. Every row must be stored (see :meth:`missing`). A ``logits`` store
        has no spatial tokens: asking for them is a :class:`StoreModeError`."""
        if spatial and self.mode == "logits":
            raise StoreModeError(
                f"feature store {self.path} keeps per-view CALIP logits for one set of class "
                f"texts (store: logits), not the spatial tokens: other prompts or classes, "
                f"few-shot training, part segmentation and explanations need tokens; run with "
                f"--set store=tokens (or store=tokens8)")
        names = ["global", "norm"] + (["spatial", "scale"] if self.mode == "tokens8" else
                                      ["spatial"]) * spatial
        out = self._gather(rows, views, names)
        if self.mode == "tokens8" and spatial:
            out["spatial"] = dequantize_tokens(out["spatial"], out.pop("scale"))
        return out["global"], out.get("spatial"), out["norm"]

    def read_logits(self, rows: Sequence[int], views: Optional[Sequence[int]] = None
                    ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A ``logits`` store's per-view CALIP logits of ``rows`` [n] -> (l0, l1, l2), each
        [n, V', K] float32, in the order given; ``views`` selects V' of the V views."""
        if self.mode != "logits":
            raise StoreModeError(f"feature store {self.path} keeps {self.mode}, not logits "
                                 f"(store: logits); compute the logits from its tokens")
        out = self._gather(rows, views, LOGITS)
        return out["l0"], out["l1"], out["l2"]

    def _gather(self, rows: Sequence[int], views: Optional[Sequence[int]],
                names: Sequence[str]) -> Dict[str, np.ndarray]:
        """The stored arrays ``names`` of ``rows`` [n], views ``views`` (None: all), as
        name -> [n, V', ...] in the order of ``rows``."""
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
                             f"{count(self.num_views, 'view')} (indices 0..{self.num_views - 1})")
        n, v = len(idx), len(vi)
        out = {name: np.empty((n, v, *self.layout[name][0][1:]), self.layout[name][1])
               for name in names}
        for number in np.unique(owner):
            where = np.flatnonzero(owner == number)
            piece = self._pieces[self._order[number]]
            pos = self._position[idx[where]]
            order = np.argsort(pos, kind="stable")      # increasing reads from the memory map
            for name, dst in out.items():
                block = piece.arrays[name][pos[order]]
                dst[where[order]] = block[:, vi]
        return out

    def encoding_seconds(self, rows: Sequence[int]) -> float:
        """The encoding time, as recorded when encoded, of ``rows`` (each piece's time
        shared equally among its rows)."""
        idx = self._rows(rows)
        owner = self._owner[idx]
        total = 0.0
        for number, owned in zip(*np.unique(owner[owner >= 0], return_counts=True)):
            piece = self._pieces[self._order[number]]
            total += float(piece.info.get("seconds", 0.0)) * owned / len(piece.rows)
        return total

    def _rows(self, rows: Optional[Sequence[int]]) -> np.ndarray:
        if rows is None:
            return np.arange(self.num_rows, dtype=np.int64)
        idx = np.asarray(rows, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_rows):
            bad = idx[(idx < 0) | (idx >= self.num_rows)][0]
            raise IndexError(f"row {bad} is outside this split's {count(self.num_rows, 'cloud')}")
        return idx

    # ----------------------------------------------------------------------- writing
    def check_writable(self, why: str) -> None:
        """Raise an ``OSError`` naming this store's folder, saying ``why`` it must be written
        and how to choose another, unless new pieces can be written in it."""
        try:
            (self.path / "writing").mkdir(exist_ok=True)
            write_probe(self.path / "writing", f".probe-{socket.gethostname()}")
        except OSError as err:
            raise _cannot_write(self.path, err, why) from None

    def write(self, rows: Sequence[int], global_feats: np.ndarray, spatial: Optional[np.ndarray],
              norms: np.ndarray, seconds: float = 0.0, device: str = "", threads: int = 0,
              logits: Optional[Sequence[np.ndarray]] = None) -> None:
        """Store one batch: rows [n] (distinct), global [n, V, C], norms [n, V], and by the
        store's mode spatial [n, V, HW, C] (``tokens``, ``tokens8``: quantised here) or
        ``logits`` = (l0, l1, l2) each [n, V, K] (``logits``: spatial None); ``seconds``,
        ``device`` and ``threads`` (intra-op threads that encoded it) are recorded in
        info.json. The rows become readable all at once, when the piece is complete. A full
        disk raises :class:`~pointcalip.core.atomic.DiskFullError` naming the file and leaves
        nothing behind."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        n = len(rows)
        keeps_logits = self.mode == "logits"
        if (spatial is None) != keeps_logits or (logits is None) == keeps_logits:
            what = "logits and no spatial tokens" if keeps_logits else "spatial tokens, no logits"
            raise ValueError(f"feature store write: a {self.mode} store takes {what}")
        arrays = {"global": np.asarray(global_feats, np.float16),
                  "norm": np.asarray(norms, np.float32)}
        if spatial is not None:
            arrays["spatial"] = np.asarray(spatial, np.float32 if self.mode == "tokens8" else np.float16)
        else:
            arrays.update(zip(LOGITS, (np.asarray(x, np.float32) for x in logits)))
        for name, array in arrays.items():
            shape = (n, *self.layout[name][0])
            if array.shape != shape:
                raise ValueError(f"feature store write: {name} has shape "
                                 f"{array.shape}, expected {shape} for {count(n, 'row')}")
            if not np.isfinite(array).all():
                bad = rows[~np.isfinite(array).reshape(n, -1).all(axis=1)]
                raise ValueError(f"features of clouds {bad[:10].tolist()} are NaN/inf; nothing "
                                 f"was stored for this batch")
        if self.mode == "tokens8":
            arrays["spatial"], arrays["scale"] = quantize_tokens(arrays["spatial"])
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
            for name in self.layout:
                array = np.ascontiguousarray(arrays[name][order])
                sums[name] = checksum(array)
                with disk_full_names(tmp / f"{name}.npy"):
                    _save(tmp / f"{name}.npy", array)
            with disk_full_names(tmp / "info.json"):
                _write_json(tmp / "info.json", {
                    "seconds": seconds, "device": device, "threads": threads,
                    "store": self.meta.get("key"), "num_rows": n,
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
        return (f"SplitStore({self.path}, {self.mode}, rows={self.num_rows}, "
                f"V={self.num_views}, HW={self.num_tokens}, C={self.embed_dim})")


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

    def open(self, dataset, projector, backbone, mode: str = "tokens", text=None,
             temperature: float = 0.5) -> SplitStore:
        """The store of ``dataset``'s split under ``projector`` and ``backbone`` (created
        empty if absent) keeping ``mode`` (STORE_MODES). ``dataset`` needs ``name``,
        ``split``, ``settings`` and ``len``; ``projector`` ``settings`` and ``num_views``;
        ``backbone`` ``name``, ``identity``, ``precision``, ``num_tokens`` and ``embed_dim``.
        A ``logits`` store needs the class-text features ``text`` [K, C] (array-like on the
        host) and CALIP's attention ``temperature``: both are part of its key."""
        if mode not in STORE_MODES:
            raise ValueError(f"unknown store mode {mode!r}; use one of {', '.join(STORE_MODES)}")
        if (text is None) != (mode != "logits"):
            raise ValueError("a logits store needs the class-text features (text=[K, C]); "
                             "a token store takes none")
        engine = getattr(backbone, "engine", "eager")
        identity = text_identity(text, temperature) if mode == "logits" else None
        key = store_key(dataset.settings, projector.settings, backbone.identity,
                        backbone.precision, engine, mode, identity)
        parts = (dataset.name, dataset.split, type(projector).__name__, backbone.name,
                 backbone.precision, *([mode] if mode != "tokens" else []), key)
        folder = self.root / "-".join(slug(str(p)) for p in parts)
        meta = {"format": STORE_FORMAT, "extractor": EXTRACTOR_VERSION, "key": key,
                "num_rows": len(dataset),
                "view_shape": [projector.num_views, backbone.num_tokens, backbone.embed_dim],
                "dataset": dataset.settings, "projector": projector.settings,
                "backbone": {"name": backbone.name, "identity": backbone.identity,
                             "precision": backbone.precision}}
        if engine != "eager":
            meta["backbone"]["engine"] = engine
        if mode != "tokens":            # token stores keep the store.json they always had
            meta["store"] = mode
        if identity is not None:
            meta["text"] = identity
        store = self._open_or_create(folder, meta)
        if text is not None:
            store.text = np.ascontiguousarray(np.asarray(text, dtype=np.float32))
        return store

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
