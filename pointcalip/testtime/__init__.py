"""Online test-time cache over zero-shot CALIP (docs/test-time-cache.md).

* :mod:`.cache`: :class:`OnlineCache`, positive / negative / local caches, one cloud at a time;
* :mod:`.local`: the per-cloud k-means centres of CALIP's spatial tokens (local cache keys);
* :mod:`.stream`: seeded stream orders and a runner over stored arrays (accuracy, running
  accuracy, cache time per cloud; Point-Cache's pre-fill only as a labelled, not-online option).

Names are imported lazily (no torch for listing commands).
"""
from ..core.lazy import lazy_attribute

_EXPORTS = {
    "OnlineCache": "cache",
    "CacheEntry": "cache",
    "kmeans_centres": "local",
    "StreamInputs": "stream",
    "StreamRun": "stream",
    "StreamSummary": "stream",
    "stream_orders": "stream",
    "run_stream": "stream",
    "summarize": "stream",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    return lazy_attribute(__name__, _EXPORTS, name)
