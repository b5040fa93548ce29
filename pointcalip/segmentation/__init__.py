"""Zero-shot part segmentation with dense CALIP (docs/segmentation.md).

Stages: per-view dense logits read at the points (:mod:`.points`), their combination with the
nearest-visible fallback, the metrics (:mod:`.metrics`), the protocol's search on VAL
(:mod:`.search`), the config (:mod:`.config`, torch-free) and the runs for a dataset or one
file (:mod:`.run`). Names are imported on first use, so reading the config imports no torch.
"""
from importlib import import_module

_EXPORTS = {
    "SegmentationScores": "metrics", "segmentation_scores": "metrics", "shape_ious": "metrics",
    "shape_mious": "metrics",
    "PointLogits": "points", "combine_points": "points", "nearest_visible": "points",
    "point_logits": "points", "predict_local": "points",
    "Group": "search", "SegParams": "search", "search_segmentation": "search",
    "SegmentConfig": "config",
}


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'pointcalip.segmentation' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
