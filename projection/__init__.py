"""Multi-view depth projection of point clouds (PointCLIP and PointCLIP V2 projectors).

    from pointcalip.projection import PointCLIPProjector, RealisticProjector, build_projector
    proj = PointCLIPProjector()                  # 6 views, 128 px, distance 1.6
    proj = PointCLIPProjector(views="fewshot")   # 10 views, 224 px, distance 1.4
    proj = RealisticProjector(views=[0, 4, 8])   # a subset of V2's 10 views
    proj = RealisticProjector(preset="pointclip_v2_seg")  # V2's part-segmentation projector
    proj = RealisticProjector(views={"ring": 8, "elevation": 30, "top_bottom": True})
    maps = proj.project(points)                  # [B, V, H, W] native float32 maps
    imgs = proj(points)                          # [B, V, 3, 224, 224] CLIP-ready images
"""
from ..core.lazy import lazy_attribute
from typing import Any

from .catalog import PROJECTORS as _REGISTRY, projector_class

# public names, imported on first use so that the catalog is read without torch
_EXPORTS = {
    "CLIP_MEAN": "base", "CLIP_STD": "base", "Projector": "base", "check_points": "base",
    "to_clip_images": "base", "PointPixels": "locate", "POINTCLIP_PRESETS": "pointclip", "PointCLIPProjector": "pointclip",
    "REALISTIC_PRESETS": "realistic", "RealisticProjector": "realistic",
    "POINTCLIP_FEWSHOT": "views", "POINTCLIP_V2": "views", "POINTCLIP_V2_SEG": "views",
    "POINTCLIP_ZEROSHOT": "views",
    "ViewSet": "views", "euler2mat": "views", "resolve_views": "views", "ring_views": "views",
}


def __getattr__(name: str):
    if name == "PROJECTORS":        # {name: projector class}, from the catalog
        return {key: projector_class(key) for key in _REGISTRY.names()}
    return lazy_attribute(__name__, _EXPORTS, name)


def build_projector(name: str, **kwargs: Any) -> "Projector":
    """Projector by name ("pointclip" or "realistic"), keyword arguments passed to its class.

    e.g. `build_projector("pointclip", views="fewshot")`, as YAML configs spell it.
    """
    key = str(name).lower()
    if key not in _REGISTRY:
        raise ValueError(f"unknown projector {name!r}; choose one of {sorted(_REGISTRY.names())}")
    try:
        return projector_class(key)(**kwargs)
    except TypeError as err:  # unknown keyword: say which projector and what it accepts
        raise ValueError(f"projector {name!r}: {err}") from err


__all__ = [
    "Projector", "PointCLIPProjector", "RealisticProjector", "build_projector", "PROJECTORS",
    "ViewSet", "ring_views", "resolve_views", "euler2mat", "check_points", "to_clip_images",
    "POINTCLIP_ZEROSHOT", "POINTCLIP_FEWSHOT", "POINTCLIP_V2", "POINTCLIP_V2_SEG", "POINTCLIP_PRESETS",
    "REALISTIC_PRESETS", "CLIP_MEAN", "CLIP_STD",
]
