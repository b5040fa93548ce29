"""PointCALIP: zero-shot and few-shot point-cloud recognition with CLIP and CALIP attention.

Public API (see docs/api.md)::

    from pointcalip import load_clip, calip_logits, aggregate_views, CalipHead, PointCALIP
    from pointcalip.projection import PointCLIPProjector, RealisticProjector
    from pointcalip.datasets import ModelNet40, ModelNet10, ScanObjectNN, load_point_cloud

Names are imported lazily, so `pointcalip --help` does not pay for importing torch and CLIP.
"""
from .core.lazy import lazy_attribute

__version__ = "0.1.0"

_EXPORTS = {
    "load_clip": "backbones",
    "ClipBackbone": "backbones",
    "calip_logits": "calip",
    "aggregate_views": "calip",
    "CalipHead": "head",
    "PointCALIP": "model",
    "search": "search",
    "search_betas": "search",
    "search_view_weights": "search",
    "beta_grid": "search",
    "SearchResult": "search",
    "FeatureStore": "store",
    "extract": "extract",
    "run_zeroshot": "zeroshot",
    "ZeroShotConfig": "config",
    "load_config": "config",
    "OnlineCache": "testtime.cache",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    return lazy_attribute(__name__, _EXPORTS, name)


def __dir__():
    return sorted(list(globals()) + __all__)
