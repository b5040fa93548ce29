"""What "the same data" means: the one identity of data files that every command uses.

A file's identity is the SHA-256 of every byte in it (with its size and the name the data
gives it, never the folder it lies in); a split's identity is the list of its files'
identities; a run's data identity (:func:`data_identity`) is a hash of its splits'. Feature
stores, location caches and run folders are keyed on these, so they change whenever any byte
a run reads changes, and two copies of the same data anywhere share them.

Hashing every byte costs a full read of the data once (``scripts/bench_identity.py``
measures it). The digest is then remembered per file in a small durable cache,
``<home>/cache/identity/<folder hash>.json`` (one file per data folder, written atomically),
keyed on what the file system says about the file: ``(size, mtime_ns, ctime_ns, inode,
device)``. A rerun only ``stat``s its files. Any write to a file changes its ``ctime_ns``
(which no program can set back), so an edit is always hashed again. A digest is not
remembered when the file changed during hashing or less than :data:`RACY_SECONDS` before it
(a write within the file system's timestamp granularity could otherwise leave the same
stamps); such a file is simply hashed again next time.

A cache that cannot be read is ignored; one that cannot be written costs only speed (one
debug message): the identity never depends on it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from .atomic import write_bytes
from .paths import home_dir
from .words import count

log = logging.getLogger(__name__)

#: bump when what a remembered entry means changes
IDENTITY_FORMAT = 1
#: a file modified less than this long before it was hashed is not remembered
RACY_SECONDS = 2.0
_CHUNK = 1 << 22
#: a split with more files than this gets one summary entry in its identity, not one per file
LIST_LIMIT = 256

_Stamp = Tuple[int, int, int, int, int]          # size, mtime_ns, ctime_ns, inode, device


def identity_cache_dir() -> Path:
    """Where remembered digests live: ``<home>/cache/identity``."""
    return home_dir() / "cache" / "identity"


def _stamp(st: os.stat_result) -> _Stamp:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


def _hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


class _Shard:
    """The remembered digests of the files of one folder (file name -> stamp + digest)."""

    def __init__(self, folder: str, cache: Path):
        self.folder = folder
        self.path = cache / (hashlib.sha256(folder.encode()).hexdigest()[:20] + ".json")
        self.entries: Dict[str, list] = {}
        self.dirty = False
        try:
            data = json.loads(self.path.read_text())
            if data.get("format") == IDENTITY_FORMAT and data.get("folder") == folder:
                self.entries = dict(data["files"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass                         # absent or unreadable: every file is hashed again

    def get(self, name: str, stamp: _Stamp) -> Optional[str]:
        entry = self.entries.get(name)
        if isinstance(entry, list) and len(entry) == 6 and tuple(entry[:5]) == stamp:
            return str(entry[5])
        return None

    def put(self, name: str, stamp: _Stamp, digest: str) -> None:
        self.entries[name] = [*stamp, digest]
        self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:                          # keep what another process remembered meanwhile
                theirs = json.loads(self.path.read_text())
                if theirs.get("format") == IDENTITY_FORMAT and theirs.get("folder") == self.folder:
                    self.entries = {**dict(theirs["files"]), **self.entries}
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                pass
            write_bytes(self.path, json.dumps({"format": IDENTITY_FORMAT, "folder": self.folder,
                                               "files": self.entries}).encode())
            self.dirty = False
        except OSError as err:
            log.debug("cannot remember file digests in %s (%s); they are computed again next "
                      "time", self.path, err)


def file_digests(files: Sequence[str | Path]) -> List[Tuple[int, str]]:
    """``(size, SHA-256 hex of every byte)`` of each file, in order; digests remembered (see
    the module doc) so that a rerun only ``stat``s the files. OSError naming a missing or
    unreadable file."""
    cache = identity_cache_dir()
    shards: Dict[str, _Shard] = {}
    out: List[Tuple[int, str]] = []
    hashed = 0
    started = time.perf_counter()
    real_folders: Dict[str, _Shard] = {}        # folder as given -> its shard
    for f in files:
        path = os.fspath(f)
        given, name = os.path.split(path)
        shard = real_folders.get(given)
        if shard is None:                   # one realpath per folder, not per file
            folder = os.path.realpath(given or ".")
            shard = shards.get(folder)
            if shard is None:
                shard = shards[folder] = _Shard(folder, cache)
            real_folders[given] = shard
        st = os.stat(path)                  # a link's target: its stamps guard the entry
        stamp = _stamp(st)
        digest = shard.get(name, stamp)
        if digest is None:
            now_ns = time.time_ns()
            digest = _hash(path)
            hashed += 1
            after = _stamp(os.stat(path))
            if after == stamp and st.st_mtime_ns < now_ns - int(RACY_SECONDS * 1e9) \
                    and st.st_ctime_ns < now_ns - int(RACY_SECONDS * 1e9):
                shard.put(name, stamp, digest)
            elif after != stamp:
                log.warning("%s changed while it was being hashed; it is hashed again on the "
                            "next run", path)
        out.append((stamp[0], digest))
    for shard in shards.values():
        shard.save()
    if hashed:
        log.debug("hashed %d of %s in %.2f s", hashed, count(len(out), "file"),
                  time.perf_counter() - started)
    return out


def files_identity(files: Sequence[str | Path], names: Optional[Sequence[str]] = None
                   ) -> list[dict]:
    """What a split's files are, wherever they live (JSON-serialisable): per file ``{"name",
    "size", "sha256"}`` of all its bytes; ``names`` (default each file's name) are the names
    the data gives them (e.g. paths inside the dataset folder). More than
    :data:`LIST_LIMIT` files become one entry ``{"files": n, "bytes": total, "sha256": digest
    of the per-file list}``."""
    files = list(files)
    names = ([os.path.basename(os.fspath(f)) for f in files] if names is None
             else [str(n) for n in names])
    if len(names) != len(files):
        raise ValueError(f"files_identity: {count(len(files), 'file')} but "
                         f"{count(len(names), 'name')}")
    entries = [{"name": n, "size": size, "sha256": digest}
               for n, (size, digest) in zip(names, file_digests(files))]
    if len(entries) <= LIST_LIMIT:
        return entries
    listed = hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest()
    return [{"files": len(entries), "bytes": sum(e["size"] for e in entries), "sha256": listed}]


def data_identity(splits: Mapping[str, object]) -> Optional[str]:
    """16 hex digits naming the data of a run: a hash of each split's file identity
    (``splits``: split name -> dataset with ``settings["files"]``, or that list itself).
    None when there is no split."""
    files = {name: (s if isinstance(s, list) else s.settings["files"])
             for name, s in splits.items()}
    if not files:
        return None
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]


def shared_files(a: Sequence[dict], b: Sequence[dict]) -> List[Tuple[str, str]]:
    """``(name in a, name in b)`` of files whose bytes are the same in two file identities
    (:func:`files_identity` lists): data that is in both, whatever it is called."""
    by_digest = {e["sha256"]: e.get("name", "?") for e in b if "sha256" in e}
    return [(e.get("name", "?"), by_digest[e["sha256"]]) for e in a
            if e.get("sha256") in by_digest]


def check_disjoint(tuning: Sequence[dict], reported: Sequence[dict], tuning_name: str,
                   reported_name: str, where: object) -> None:
    """ValueError naming the files when the tuning data and the reported data share a file's
    bytes (e.g. a TEST file list that names the VAL file): betas tuned on the clouds they
    are reported on. Compared by identity (:func:`files_identity` lists), not by name."""
    both = shared_files(tuning, reported)
    if both:
        a, b = both[0]
        raise ValueError(f"{where}: the {tuning_name} file {a} and the {reported_name} file {b} "
                         f"hold the same bytes ({len(both)} shared file(s)): tuning and "
                         f"reporting on the same clouds; fix the file lists so that the "
                         f"{tuning_name} and {reported_name} splits are distinct data")
