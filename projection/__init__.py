"""Multi-view depth projection of point clouds (PointCLIP and PointCLIP V2 projectors).

    from pointcalip.projection import PointCLIPProjector, RealisticProjector, build_projector
    proj = PointCLIPProjector()                  # 6 views, 128 px, distance 1.6
    proj = PointCLIPProjector(views="fewshot")   # 10 views, 224 px, distance 1.4
    proj = RealisticProjector(views=[0, 4, 8])   # a subset of V2's 10 views
    proj = RealisticProjector(views={"ring": 8, "elevation": 30, "top_bottom": True})
    maps = proj.project(points)                  # [B, V, H, W] native float32 maps
    imgs = proj(points)                          # [B, V, 3, 224, 224] CLIP-ready images
"""
from typing import Any

from .base import CLIP_MEAN, CLIP_STD, Projector, check_points, to_clip_images
from .pointclip import POINTCLIP_PRESETS, PointCLIPProjector
from .realistic import REALISTIC_PRESETS, RealisticProjector
from .views import (POINTCLIP_FEWSHOT, POINTCLIP_V2, POINTCLIP_ZEROSHOT, ViewSet, euler2mat,
                    resolve_views, ring_views)

PROJECTORS = {"pointclip": PointCLIPProjector, "realistic": RealisticProjector}


def build_projector(name: str, **kwargs: Any) -> Projector:
    """Projector by name ("pointclip" or "realistic"), keyword arguments passed to its class.

    e.g. `build_projector("pointclip", views="fewshot")`, as YAML configs spell it.
    """
    key = str(name).lower()
    if key not in PROJECTORS:
        raise ValueError(f"unknown projector {name!r}; choose one of {sorted(PROJECTORS)}")
    try:
        return PROJECTORS[key](**kwargs)
    except TypeError as err:  # unknown keyword: say which projector and what it accepts
        raise ValueError(f"projector {name!r}: {err}") from err


__all__ = [
    "Projector", "PointCLIPProjector", "RealisticProjector", "build_projector", "PROJECTORS",
    "ViewSet", "ring_views", "resolve_views", "euler2mat", "check_points", "to_clip_images",
    "POINTCLIP_ZEROSHOT", "POINTCLIP_FEWSHOT", "POINTCLIP_V2", "POINTCLIP_PRESETS",
    "REALISTIC_PRESETS", "CLIP_MEAN", "CLIP_STD",
]
