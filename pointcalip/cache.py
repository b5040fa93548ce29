"""On-disk cache of per-view CLIP features (global + spatial tokens) for a dataset split.

One folder per key, holding fp16 ``.npy`` arrays read back as memory maps:

    global.npy   [N, V, C]       unit-norm global feature of every view
    spatial.npy  [N, V, HW, C]   unit-norm spatial tokens of every view
    labels.npy   [N]             class labels
    indices.npy  [N]             dataset indices the rows come from
    meta.json                    the key's ingredients, shapes, timings

The key hashes the dataset settings (name, split, points, file fingerprint), the chosen
indices, the projector settings (every view) and the backbone identity (checkpoint), so a
second run with the same key encodes nothing, and any subset of the cached views can be used
without re-encoding. A folder is written under a temporary name and renamed into place only
when complete: an interrupted run never leaves a cache that later loads as valid.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .calip import calip_logits
from .paths import cache_dir as default_cache_dir

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
_ARRAYS = ("global", "spatial", "labels", "indices")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _dataset_points(dataset, indices: np.ndarray) -> torch.Tensor:
    """Clouds of `dataset` at `indices` as one float32 tensor [n, N, 3]."""
    if hasattr(dataset, "points"):
        return torch.as_tensor(dataset.points(indices), dtype=torch.float32)
    return torch.stack([torch.as_tensor(dataset[int(i)][0], dtype=torch.float32) for i in indices])


@dataclass
class SplitFeatures:
    """Cached per-view features of (a subset of) a dataset split."""

    global_feats: np.ndarray  # [N, V, C] float16 (memory map)
    spatial: np.ndarray  # [N, V, HW, C] float16 (memory map)
    labels: np.ndarray  # [N] int64
    indices: np.ndarray  # [N] int64, dataset indices
    meta: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def num_views(self) -> int:
        return self.global_feats.shape[1]

    def __len__(self) -> int:
        return self.global_feats.shape[0]

    def logits(self, text: torch.Tensor, views: list[int] | None = None,
               batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """CALIP logits of every cached view: text [K, C] -> (l0, l1, l2), each [N, V', K].

        `views` selects cached views by index (default all), without re-encoding anything.
        """
        view_idx = list(range(self.num_views)) if views is None else [int(v) for v in views]
        bad = [v for v in view_idx if not 0 <= v < self.num_views]
        if bad or not view_idx:
            raise ValueError(f"views {views} out of range: the cache holds {self.num_views} views "
                             f"(indices 0..{self.num_views - 1})")
        text = text.float().cpu()
        n, v = len(self), len(view_idx)
        out = [torch.empty(n, v, text.shape[0]) for _ in range(3)]
        for start in tqdm(range(0, n, batch_size), desc="CALIP logits", unit="batch", leave=False):
            stop = min(start + batch_size, n)
            g = torch.from_numpy(np.asarray(self.global_feats[start:stop][:, view_idx], dtype=np.float32))
            s = torch.from_numpy(np.asarray(self.spatial[start:stop][:, view_idx], dtype=np.float32))
            ls = calip_logits(g.flatten(0, 1), s.flatten(0, 1), text)
            for dst, src in zip(out, ls):
                dst[start:stop] = src.view(stop - start, v, -1)
        return tuple(out)


def feature_key(dataset_settings: dict, indices: np.ndarray | None, projector_settings: dict,
                backbone_identity: str) -> str:
    """The cache key: a hash of everything that determines the cached features."""
    payload = {
        "format": CACHE_FORMAT,
        "dataset": dataset_settings,
        "indices": None if indices is None else hashlib.sha256(
            np.ascontiguousarray(indices, dtype=np.int64).tobytes()).hexdigest(),
        "projector": projector_settings,
        "backbone": backbone_identity,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _readable(*parts: str) -> str:
    return "-".join(re.sub(r"[^A-Za-z0-9.]+", "_", p).strip("_") for p in parts if p)


class FeatureCache:
    """Folder of cached split features (default ``<POINTCALIP_HOME>/features``)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).expanduser() if root else default_cache_dir()

    def load(self, folder: Path) -> SplitFeatures | None:
        """Open a complete cache folder, or return None when it is absent or invalid."""
        meta_path = folder / "meta.json"
        if not meta_path.is_file():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in _ARRAYS}
            n, v, c = meta["shape_global"]
            ok = (meta.get("complete") is True and meta.get("format") == CACHE_FORMAT
                  and arrays["global"].shape == (n, v, c)
                  and arrays["spatial"].shape == tuple(meta["shape_spatial"])
                  and arrays["labels"].shape == (n,) and arrays["indices"].shape == (n,))
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as err:
            log.warning("feature cache %s is unreadable (%s); re-encoding", folder, err)
            return None
        if not ok:
            log.warning("feature cache %s does not match its meta.json; re-encoding", folder)
            return None
        return SplitFeatures(arrays["global"], arrays["spatial"], np.array(arrays["labels"]),
                             np.array(arrays["indices"]), meta, folder)

    def load_or_encode(self, dataset, projector, backbone, indices: np.ndarray | None = None,
                       batch_size: int = 16, desc: str = "encode") -> SplitFeatures:
        """Features of `dataset` (rows `indices`, default all), encoding only on a cache miss.

        Per cloud: projector(points) -> [V, 3, S, S] images -> backbone.encode_images ->
        global [V, C] and spatial [V, HW, C], stored as fp16.
        """
        key = feature_key(dataset.settings, indices, projector.settings, backbone.identity)
        # a readable prefix for people browsing the folder; the key alone identifies it
        folder = self.root / _readable(dataset.name, dataset.split, type(projector).__name__,
                                       backbone.name, key)
        cached = self.load(folder)
        if cached is not None:
            log.info("feature cache hit: %s", folder)
            cached.meta["cache_hit"] = True
            return cached
        return self._encode(folder, key, dataset, projector, backbone, indices, batch_size, desc)

    def _encode(self, folder, key, dataset, projector, backbone, indices, batch_size, desc):
        rows = np.arange(len(dataset), dtype=np.int64) if indices is None else np.asarray(indices, np.int64)
        if len(rows) == 0:
            raise ValueError(f"nothing to encode: no clouds selected from {getattr(dataset, 'name', dataset)}")
        labels = np.asarray(dataset.labels, dtype=np.int64)[rows]
        n, v, c, hw = len(rows), projector.num_views, backbone.embed_dim, backbone.num_tokens
        shapes = {"shape_global": [n, v, c], "shape_spatial": [n, v, hw, c]}
        self.root.mkdir(parents=True, exist_ok=True)
        with _exclusive(self.root / f".lock-{folder.name}"):
            done_by_other = self.load(folder)  # a concurrent run may have finished it meanwhile
            if done_by_other is not None:
                done_by_other.meta["cache_hit"] = True
                return done_by_other
            if folder.exists():  # present but invalid (damaged): re-encode rather than trust it
                shutil.rmtree(folder)
            partial = self.root / f".incomplete-{folder.name}"
            g_out, s_out, done = _open_partial(partial, key, shapes)
            if done:
                log.info("resuming feature cache %s at cloud %d of %d", folder.name, done, n)
            device = torch.device(backbone.device)
            timings = {"projection_s": 0.0, "encoding_s": 0.0}
            try:
                for start in tqdm(range(done, n, batch_size), desc=desc, unit="batch"):
                    chunk = rows[start:start + batch_size]
                    points = _dataset_points(dataset, chunk).to(device)
                    t0 = time.perf_counter()
                    images = projector(points)  # [b, V, 3, S, S]
                    _sync(device)
                    t1 = time.perf_counter()
                    g, s = backbone.encode_images(images.flatten(0, 1))
                    g_out[start:start + len(chunk)] = g.view(len(chunk), v, c).cpu().numpy()
                    s_out[start:start + len(chunk)] = s.view(len(chunk), v, hw, c).cpu().numpy()
                    timings["projection_s"] += t1 - t0
                    timings["encoding_s"] += time.perf_counter() - t1
                    g_out.flush()
                    s_out.flush()
                    done = start + len(chunk)
                    _write_json(partial / "progress.json", {"key": key, **shapes, "done": done})
            except BaseException:
                log.warning("encoding interrupted after %d of %d clouds; progress kept in %s: "
                            "run again to resume", done, n, partial)
                raise
            finally:
                del g_out, s_out
            np.save(partial / "labels.npy", labels)
            np.save(partial / "indices.npy", rows)
            meta = {
                "format": CACHE_FORMAT, "complete": True, "key": key,
                "dataset": dataset.settings, "projector": projector.settings,
                "backbone": backbone.identity, "num_clouds": n, **shapes,
                "timings": timings, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
            _write_json(partial / "meta.json", meta)
            (partial / "progress.json").unlink()
            os.rename(partial, folder)  # atomic: the folder appears complete or not at all
        log.info("wrote feature cache %s (%d clouds x %d views)", folder, n, v)
        result = self.load(folder)
        result.meta["cache_hit"] = False
        result.meta["timings"] = timings
        return result


def _write_json(path: Path, data: dict) -> None:
    """Write JSON atomically (temporary file, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


def _open_partial(partial: Path, key: str, shapes: dict):
    """Memory maps of an interrupted encoding to resume, or fresh ones.

    -> (global [N, V, C], spatial [N, V, HW, C], clouds already done). Rows below `done` were
    flushed before `progress.json` recorded them, so they are valid even after a crash.
    """
    try:
        progress = json.loads((partial / "progress.json").read_text())
        if progress["key"] == key and all(progress[k] == shapes[k] for k in shapes):
            g = np.load(partial / "global.npy", mmap_mode="r+")
            s = np.load(partial / "spatial.npy", mmap_mode="r+")
            if list(g.shape) == shapes["shape_global"] and list(s.shape) == shapes["shape_spatial"]:
                return g, s, int(progress["done"])
    except (OSError, ValueError, KeyError):
        pass
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    g = np.lib.format.open_memmap(partial / "global.npy", "w+", np.float16, tuple(shapes["shape_global"]))
    s = np.lib.format.open_memmap(partial / "spatial.npy", "w+", np.float16, tuple(shapes["shape_spatial"]))
    _write_json(partial / "progress.json", {"key": key, **shapes, "done": 0})
    return g, s, 0


@contextlib.contextmanager
def _exclusive(lock_path: Path):
    """Hold an exclusive lock on `lock_path` (POSIX flock; no-op where unavailable), so two
    runs never write the same cache folder at once: the second waits, then finds it done."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(lock_path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another run that is encoding %s", lock_path.name[len(".lock-"):])
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
