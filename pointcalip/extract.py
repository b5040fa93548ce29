"""Clouds -> projector -> CLIP -> feature store, only for the rows the store lacks.

    store = FeatureStore(cache_dir).open(dataset, projector, backbone)
    feats = extract(store, dataset, rows, projector, backbone, batch_size=16)
    for g, s, norm in feats.batches(64, views=[0, 2], device="cuda"): ...

Per batch of clouds: ``dataset.points(rows)`` [b, N, 3] -> ``projector`` [b, V, 3, S, S] ->
``backbone.encode_images`` -> global [b, V, C], spatial [b, V, HW, C], norms [b, V] -> one
store piece.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence, Tuple

import numpy as np
import torch
from tqdm import tqdm

from .store import SplitStore

log = logging.getLogger(__name__)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a long stage; the message says what was kept and how to resume."""


@dataclass
class ExtractStats:
    """What one extraction did: ``requested`` rows, of which ``encoded`` were encoded now (in
    ``projection_s`` + ``encoding_s``) and the rest read from the store, whose encoding took
    ``cached_encoding_s`` when it was done."""

    requested: int
    encoded: int
    projection_s: float = 0.0
    encoding_s: float = 0.0
    cached_encoding_s: float = 0.0

    @property
    def cached(self) -> int:
        return self.requested - self.encoded

    def to_dict(self) -> dict:
        return {"rows": self.requested, "encoded_now": self.encoded, "from_store": self.cached,
                "projection_s": round(self.projection_s, 3),
                "encoding_s": round(self.encoding_s, 3),
                "stored_encoding_s": round(self.cached_encoding_s, 3)}


@dataclass
class SplitFeatures:
    """The stored features of ``rows`` (dataset indices) of one split, with their labels."""

    store: SplitStore
    rows: np.ndarray      # [n] int64
    labels: np.ndarray    # [n] int64
    stats: ExtractStats

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def num_views(self) -> int:
        return self.store.num_views

    def batches(self, batch_size: int = 64, views: Optional[Sequence[int]] = None,
                device: torch.device | str = "cpu"
                ) -> Iterator[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(global [b, V', C], spatial [b, V', HW, C], norms [b, V']) float32 tensors on
        ``device``, in row order; ``views`` picks V' of the stored views."""
        for start in range(0, len(self.rows), batch_size):
            arrays = self.store.read(self.rows[start:start + batch_size], views)
            yield tuple(torch.from_numpy(a).to(device, torch.float32) for a in arrays)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def extract(store: SplitStore, dataset, rows: Optional[Sequence[int]], projector, backbone,
            batch_size: int = 16, desc: str = "encode") -> SplitFeatures:
    """Encode the ``rows`` of ``dataset`` (default all) that ``store`` lacks; -> their
    features. ``dataset`` needs ``points(indices) -> [b, N, 3]`` and ``labels``."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    rows = np.arange(len(dataset), dtype=np.int64) if rows is None else \
        np.asarray(rows, dtype=np.int64).reshape(-1)
    if len(rows) == 0:
        raise ValueError(f"nothing to encode: no clouds selected from {dataset.name} "
                         f"{dataset.split}")
    if store.num_rows != len(dataset) or store.num_views != projector.num_views:
        raise ValueError(f"feature store {store.path} holds {store.num_rows} clouds x "
                         f"{store.num_views} views, not {len(dataset)} x {projector.num_views}")
    todo = store.missing(rows)
    stats = ExtractStats(requested=len(rows), encoded=0)
    device = torch.device(backbone.device)
    v = projector.num_views
    if len(todo):
        log.info("%s %s: encoding %d of %d clouds into %s", dataset.name, dataset.split,
                 len(todo), len(rows), store.path)
    bar = tqdm(total=len(todo), desc=desc, unit="cloud", disable=None if len(todo) else True)
    try:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            points = torch.as_tensor(dataset.points(chunk), dtype=torch.float32).to(device)
            t0 = time.perf_counter()
            images = projector(points)                                    # [b, V, 3, S, S]
            _sync(device)
            t1 = time.perf_counter()
            g, s, norms = backbone.encode_images(images.flatten(0, 1), return_norms=True)
            b = len(chunk)
            g, s, norms = (x.view(b, v, *x.shape[1:]).cpu().numpy() for x in (g, s, norms))
            t2 = time.perf_counter()
            store.write(chunk, g, s, norms, seconds=t2 - t0, device=str(device))
            stats.projection_s += t1 - t0
            stats.encoding_s += t2 - t1
            stats.encoded += b
            bar.update(b)
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted while encoding {dataset.name} {dataset.split}: {stats.encoded} of "
            f"{len(todo)} clouds encoded in this run are kept in {store.path}; run the same "
            f"command again to resume") from None
    finally:
        bar.close()
    stats.cached_encoding_s = store.encoding_seconds(np.setdiff1d(rows, todo))
    labels = np.asarray(dataset.labels, dtype=np.int64)[rows]
    return SplitFeatures(store, rows, labels, stats)
