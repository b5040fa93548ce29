"""Run an online cache over stored arrays in seeded stream orders (docs/test-time-cache.md).

    orders = stream_orders(n, count=5, seed=0)              # [S, n], the same for every row
    run    = run_stream(inputs, orders[s], make_cache)      # one order: accuracy, running curve
    summary = summarize([run_stream(inputs, o, make_cache) for o in orders])

The runner hands the cache the base logits, keys (and centres) of each cloud in stream order,
``batch_size`` clouds per call (the cache takes them one by one, so the batch size changes
nothing); labels are read only to score the logits the cache has returned. ``prefill_order`` is
Point-Cache's protocol (the cache first filled from the test clouds read in that order; its
loader reshuffles, so that pass has an order of its own): NOT ONLINE, and its runs say so
(``online`` False).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch

from .cache import OnlineCache

#: mixed into every stream-order seed, so orders differ from other seeded draws of the run
_ORDER_SALT = 31


@dataclass
class StreamInputs:
    """What a stream needs per cloud (dataset order): base logits [N, K], keys [N, D] (unit
    rows), labels [N] and, for a local cache, centres [N, m, C]."""

    base: torch.Tensor
    keys: torch.Tensor
    labels: np.ndarray
    centres: Optional[torch.Tensor] = None

    def __post_init__(self):
        n = self.base.shape[0]
        if self.keys.shape[0] != n or len(self.labels) != n or (
                self.centres is not None and self.centres.shape[0] != n):
            raise ValueError(f"stream inputs disagree on the number of clouds: base {n}, keys "
                             f"{self.keys.shape[0]}, labels {len(self.labels)}"
                             + ("" if self.centres is None else
                                f", centres {self.centres.shape[0]}"))

    def __len__(self) -> int:
        return self.base.shape[0]


@dataclass
class StreamRun:
    """One order's outcome: ``order`` [n] (dataset indices in stream order), ``logits``
    [n, K] and ``correct`` [n] in stream order, top-1 ``accuracy`` (%), ``running`` [n] (the
    accuracy of the first i + 1 clouds, %), the cache's ``seconds_per_cloud``, ``online``."""

    order: np.ndarray
    logits: torch.Tensor
    correct: np.ndarray
    seconds_per_cloud: float
    online: bool = True

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean() * 100.0)

    @property
    def running(self) -> np.ndarray:
        return np.cumsum(self.correct) / np.arange(1, len(self.correct) + 1) * 100.0


@dataclass
class StreamSummary:
    """Mean and standard deviation (ddof 1; 0 for one order) of top-1 over the orders."""

    accuracies: List[float]
    seconds_per_cloud: float
    online: bool = True
    mean: float = field(init=False)
    std: float = field(init=False)
    #: mean class accuracy (mAcc, %) per order (empty: not measured)
    mean_class: List[float] = field(default_factory=list)
    #: [K, K] cloud counts summed over the orders (row = true class, column = predicted)
    confusion: Optional[np.ndarray] = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        a = np.asarray(self.accuracies, dtype=np.float64)
        self.mean = float(a.mean())
        self.std = float(a.std(ddof=1)) if a.size > 1 else 0.0

    @property
    def macc(self) -> Optional[float]:
        """The mean over the orders of the mean class accuracy (None: not measured)."""
        return float(np.mean(self.mean_class)) if self.mean_class else None

    def to_dict(self) -> dict:
        return {"mean": round(self.mean, 4), "std": round(self.std, 4),
                "per_order": [round(a, 4) for a in self.accuracies],
                "macc": None if self.macc is None else round(self.macc, 4),
                "macc_per_order": [round(a, 4) for a in self.mean_class],
                "cache_ms_per_cloud": round(self.seconds_per_cloud * 1e3, 4),
                "online": self.online}


def stream_orders(n: int, count: int, seed: int) -> np.ndarray:
    """``count`` seeded permutations of ``n`` clouds: [count, n] int64 (order s depends only
    on ``seed``, ``s`` and ``n``)."""
    if count < 1 or n < 1:
        raise ValueError(f"stream orders need n >= 1 clouds and count >= 1, got {n}, {count}")
    return np.stack([np.random.Generator(np.random.PCG64([int(seed), s, _ORDER_SALT]))
                     .permutation(n) for s in range(count)]).astype(np.int64)


def run_stream(inputs: StreamInputs, order: Sequence[int],
               make_cache: Callable[[], OnlineCache], batch_size: int = 64,
               prefill_order: Optional[Sequence[int]] = None) -> StreamRun:
    """The cache from ``make_cache()`` over ``inputs`` in ``order``, ``batch_size`` clouds per
    :meth:`OnlineCache.step`. ``prefill_order``: NOT ONLINE (see the module doc)."""
    order = np.asarray(order, dtype=np.int64)
    index = torch.as_tensor(order.copy())
    base, keys = inputs.base[index], inputs.keys[index]
    centres = None if inputs.centres is None else inputs.centres[index]
    cache = make_cache()
    if prefill_order is not None:
        first = torch.as_tensor(np.array(prefill_order, dtype=np.int64))
        cache.prefill(inputs.base[first], inputs.keys[first],
                      None if inputs.centres is None else inputs.centres[first])
    out = []
    seconds = 0.0
    for start in range(0, len(order), batch_size):
        part = slice(start, start + batch_size)
        t0 = time.perf_counter()
        out.append(cache.step(base[part], keys[part],
                              None if centres is None else centres[part]))
        seconds += time.perf_counter() - t0
    logits = torch.cat(out)
    correct = logits.argmax(-1).cpu().numpy() == np.asarray(inputs.labels)[order]
    return StreamRun(order, logits, correct, seconds / max(len(order), 1), cache.online)


def summarize(runs: Sequence[StreamRun]) -> StreamSummary:
    """Mean +- std of the runs' top-1, their mean cache time per cloud."""
    return StreamSummary([r.accuracy for r in runs],
                         float(np.mean([r.seconds_per_cloud for r in runs])),
                         all(r.online for r in runs))
