"""Zero-shot part segmentation with dense CALIP (spec/segmentation.md).

Stages: per-view dense logits read at the points (:mod:`.points`), their combination with the
nearest-visible fallback, the metrics (:mod:`.metrics`), the protocol's search on VAL
(:mod:`.search`), and the run for a config or one file (:mod:`.run`).
"""
from .metrics import SegmentationScores, segmentation_scores, shape_ious, shape_mious
from .points import (PointLogits, combine_points, nearest_visible, point_logits,
                     predict_local)
from .search import Group, SegParams, search_segmentation

__all__ = ["Group", "PointLogits", "SegParams", "SegmentationScores", "combine_points",
           "nearest_visible", "point_logits", "predict_local", "search_segmentation",
           "segmentation_scores", "shape_ious", "shape_mious"]
