"""Clouds -> projector -> CLIP -> feature store, only for the rows the store lacks.

    store = FeatureStore(cache_dir).open(dataset, projector, backbone)
    feats = extract(store, dataset, rows, projector, backbone, batch_size=16)
    for g, s, norm in feats.batches(64, views=[0, 2], device="cuda"): ...

Per block of clouds: ``dataset.points(rows)`` [b, N, 3] -> ``projector`` [b, V, 3, S, S] on
the backbone's device -> ``backbone.encode_images`` -> global [b, V, C], spatial [b, V, HW, C],
norms [b, V] -> one store piece, written by a second thread while the next block encodes.
A ``logits`` store (:mod:`pointcalip.store`) gets, instead of the tokens, the per-view CALIP
logits of its class texts, computed on the backbone's device from the float16-rounded
features (the values a ``tokens`` store would hold), so they equal the logits
:func:`pointcalip.pipeline.compute_view_logits` computes from a ``tokens`` store.
Blocks are fixed by the requested rows and the batch size (:func:`blocks_of`), so several
ranks (:mod:`pointcalip.core.distributed`) can share them and still store what one process would.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Deque, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from tqdm import tqdm

from .core.distributed import Shard, barrier
from .head import CalipHead
from .store import SplitStore
from .core.words import count

log = logging.getLogger(__name__)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a long stage; the message says what was kept and how to resume."""


@dataclass
class ExtractStats:
    """What one extraction did: of ``requested`` rows, ``missing`` were not stored yet, and
    ``encoded`` of those were encoded by this process (all of them unless several ranks
    shared the work), in ``projection_s`` + ``encoding_s``; the rest came from the store,
    whose encoding took ``cached_encoding_s`` when it was done."""

    requested: int
    encoded: int
    missing: int = 0
    projection_s: float = 0.0
    encoding_s: float = 0.0
    cached_encoding_s: float = 0.0

    @property
    def cached(self) -> int:
        return self.requested - self.missing

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
        ``device``, in row order; ``views`` picks V' of the stored views. A ``logits`` store
        has no tokens (:class:`~pointcalip.store.StoreModeError`)."""
        for start in range(0, len(self.rows), batch_size):
            arrays = self.store.read(self.rows[start:start + batch_size], views)
            yield tuple(torch.from_numpy(a).to(device, torch.float32) for a in arrays)


def blocks_of(rows: np.ndarray, batch_size: int) -> List[np.ndarray]:
    """The requested rows, ascending and unique, cut into consecutive blocks of
    ``batch_size``: the units of work (one CLIP batch, one store piece). They depend only on
    the request, so any number of ranks, and a run resumed after a crash, encode the same
    batches and store byte-identical pieces."""
    rows = np.unique(rows)
    return [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]


class _Clock:
    """Marks on the host clock, or CUDA events on a GPU (read once the batch is done, so
    timing adds no host sync)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def mark(self):
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def seconds(self, a, b) -> float:
        """Time between marks ``a`` and ``b``; on a GPU, waits for ``b`` to happen."""
        if self.cuda:
            b.synchronize()
            return a.elapsed_time(b) / 1000.0
        return b - a


def _to_host(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``x`` as ``dtype`` on the host; from a GPU, copied without waiting into pinned memory
    (the copy is done once the batch's end mark has happened)."""
    x = x.to(dtype)
    if x.device.type != "cuda":
        return x
    host = torch.empty(x.shape, dtype=dtype, pin_memory=True)
    return host.copy_(x, non_blocking=True)


def _check_request(store: SplitStore, dataset, rows: np.ndarray, projector,
                   batch_size: int) -> None:
    """ValueError when the batch size, the rows or the store's shape cannot serve the request."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if len(rows) == 0:
        raise ValueError(f"nothing to encode: no clouds selected from {dataset.name} "
                         f"{dataset.split}")
    if store.num_rows != len(dataset) or store.num_views != projector.num_views:
        raise ValueError(f"feature store {store.path} holds {count(store.num_rows, 'cloud')} x "
                         f"{count(store.num_views, 'view')}, not {len(dataset)} x "
                         f"{projector.num_views}")


def _missing_blocks(store: SplitStore, rows: np.ndarray, batch_size: int
                    ) -> Tuple[List[np.ndarray], np.ndarray]:
    """(the blocks of ``rows`` that lack some rows in ``store``, cut to those rows; all of
    those rows)."""
    missing = store.missing(rows)
    todo = [b for b in (block[np.isin(block, missing)] for block in blocks_of(rows, batch_size))
            if len(b)]
    return todo, np.concatenate(todo) if todo else np.zeros(0, np.int64)


def _logits_head(store: SplitStore, num_views: int, device: torch.device
                 ) -> Optional[CalipHead]:
    """The CALIP head a ``logits`` store's rows are computed with (None for token stores)."""
    if store.mode != "logits":
        return None
    if store.text is None:
        raise ValueError(f"feature store {store.path} keeps CALIP logits: open it with the "
                         f"class-text features to encode rows into it")
    return CalipHead(torch.from_numpy(store.text), num_views=num_views,
                     temperature=store.meta["text"]["temperature"]).to(device)


def _encode_batch(chunk: np.ndarray, dataset, projector, backbone, head, clock: "_Clock",
                  device: torch.device, locations=None):
    """Project and encode the clouds ``chunk`` -> (global [b, V, C] fp16, spatial or None,
    norms [b, V] fp32, logits or None, time marks, (xy, visible) or None), on the host (from
    a GPU: copies in flight until the last mark has happened). With ``locations``, where the
    points land comes from the same render as the images."""
    v = projector.num_views
    points = torch.as_tensor(dataset.points(chunk), dtype=torch.float32)
    if device.type == "cuda":
        points = points.pin_memory()
    marks = [clock.mark()]
    points = points.to(device, non_blocking=True)
    loc = None
    if locations is None:
        images = projector(points)                                       # [b, V, 3, S, S]
    else:                                  # the same render gives where the points land
        images, where = projector.images_and_locations(points, locations.tolerance)
        loc = (_to_host(where.xy, torch.float32), _to_host(where.visible, torch.bool))
    marks.append(clock.mark())
    g, s, norms = backbone.encode_images(images.flatten(0, 1), return_norms=True)
    b = len(chunk)
    g, s = (x.view(b, v, *x.shape[1:]).half() for x in (g, s))   # as stored
    logits = None
    if head is not None:
        logits = [_to_host(x, torch.float32) for x in head.view_logits(g.float(), s.float())]
        s = None
    g, norms = _to_host(g, torch.float16), _to_host(norms.view(b, v), torch.float32)
    s = None if s is None else _to_host(s, torch.float16)
    marks.append(clock.mark())
    return g, s, norms, logits, marks, loc


def encode_missing(store: SplitStore, dataset, rows: np.ndarray, projector, backbone,
                   batch_size: int = 16, desc: str = "encode", shard: Shard = Shard(),
                   locations=None) -> ExtractStats:
    """Encode into ``store`` the ``rows`` [n] of ``dataset`` it lacks: this rank's share of
    the blocks of ``rows`` (:func:`blocks_of`) that lack some. Every rank of ``shard`` must
    call this for the same store and rows; they wait for each other after listing what is
    missing and again at the end, so the store then holds every row. -> ExtractStats of this
    rank's work (``missing``: clouds all ranks encoded). ``dataset`` needs ``name``,
    ``split``, ``len`` and ``points(indices)`` [b, N, 3].

    ``locations``: where the encoded clouds' points land is kept there too, from the same
    render as the images (``projector.images_and_locations``; an object with ``tolerance``
    and ``keep(rows, xy, visible)``, e.g. a segmentation
    :class:`~pointcalip.segmentation.locations.LocationCache`), written with the batch's
    store piece; rows already stored are not rendered, so not located, here."""
    _check_request(store, dataset, rows, projector, batch_size)
    todo, todo_rows = _missing_blocks(store, rows, batch_size)
    stats = ExtractStats(requested=len(rows), encoded=0, missing=len(todo_rows))
    if len(todo_rows):     # every rank sees the same folder, so all stop here or none
        store.check_writable(f"{len(todo_rows)} of {count(len(np.unique(rows)), 'cloud')} of "
                             f"{dataset.name} {dataset.split} are not stored yet")
    barrier()   # every rank has listed the missing rows before anyone adds to them
    if len(todo_rows) and shard.is_main:
        log.info("%s %s: encoding %d of %s into %s%s", dataset.name, dataset.split,
                 len(todo_rows), count(len(np.unique(rows)), "cloud"), store.path,
                 f" ({count(shard.world_size, 'rank')})" if shard.world_size > 1 else "")
    device = torch.device(backbone.device)
    clock = _Clock(device)
    head = _logits_head(store, projector.num_views, device)
    threads = torch.get_num_threads()      # recorded: CPU sums depend on it (docs/feature-store.md#same-store-as-one-process)
    bar = tqdm(total=len(todo_rows), desc=desc, unit="cloud",
               disable=None if len(todo_rows) and shard.is_main else True)

    def store_batch(chunk, g, s, norms, logits, marks, loc):
        """On the writer thread: wait for the batch, then write its piece (and keep the
        points' locations)."""
        projection_s, encoding_s = clock.seconds(*marks[:2]), clock.seconds(*marks[1:])
        if loc is not None:
            locations.keep(chunk, *loc)
        store.write(chunk, g.numpy(), None if s is None else s.numpy(), norms.numpy(),
                    seconds=projection_s + encoding_s, device=str(device), threads=threads,
                    logits=None if logits is None else [x.numpy() for x in logits])
        stats.projection_s += projection_s
        stats.encoding_s += encoding_s
        stats.encoded += len(chunk)

    def show_progress():
        """Rank 0's bar counts every rank's stored clouds (other ranks show no bar, and do not
        open, hence checksum, the pieces the others write)."""
        if not shard.is_main:
            return
        done = stats.encoded if shard.world_size == 1 else \
            int(store.stored(todo_rows).sum()) if len(todo_rows) else 0
        bar.update(done - bar.n)

    pending: Deque[Future] = deque()
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer") as writer:
            try:
                for chunk in shard.take(todo):
                    encoded = _encode_batch(chunk, dataset, projector, backbone, head, clock,
                                            device, locations)
                    pending.append(writer.submit(store_batch, chunk, *encoded))
                    while len(pending) > 1:        # one batch is written while the next encodes
                        pending.popleft().result()
                        show_progress()
                while pending:
                    pending.popleft().result()
            except KeyboardInterrupt:
                for future in pending:             # whole batches already encoded are kept
                    future.exception()
                raise Interrupted(
                    f"interrupted while encoding {dataset.name} {dataset.split}: "
                    f"{stats.encoded} of {count(len(todo_rows), 'cloud')} encoded in this run are "
                    f"kept in {store.path}; run the same command again to resume") from None
        barrier()   # every rank's share is stored
        show_progress()
    finally:
        bar.close()
    return stats


def extract(store: SplitStore, dataset, rows: Optional[Sequence[int]], projector, backbone,
            batch_size: int = 16, desc: str = "encode", locations=None) -> SplitFeatures:
    """Encode the ``rows`` of ``dataset`` (default all) that ``store`` lacks
    (:func:`encode_missing`, which also keeps the encoded clouds' point locations in
    ``locations`` when given); -> their features, in the order of ``rows``. ``dataset`` needs
    ``points(indices) -> [b, N, 3]`` and ``labels``."""
    rows = np.arange(len(dataset), dtype=np.int64) if rows is None else \
        np.asarray(rows, dtype=np.int64).reshape(-1)
    stored_before = rows[store.stored(rows)]
    stats = encode_missing(store, dataset, rows, projector, backbone, batch_size, desc,
                           locations=locations)
    stats.cached_encoding_s = store.encoding_seconds(stored_before)
    labels = np.asarray(dataset.labels, dtype=np.int64)[rows]
    return SplitFeatures(store, rows, labels, stats)
