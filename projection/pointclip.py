"""PointCLIP's sparse perspective depth maps (docs/projection.md#pointclips-projector)."""
from __future__ import annotations

import math
from typing import Optional

from .base import Projector
from .views import POINTCLIP_FEWSHOT, POINTCLIP_ZEROSHOT, ViewsArg, pick_preset, resolve_views

#: preset name -> (view list, resolution, camera distance), from trainers/mv_utils_{zs,fs}.py
POINTCLIP_PRESETS = {
    "zeroshot": (POINTCLIP_ZEROSHOT, 128, 1.6),
    "fewshot": (POINTCLIP_FEWSHOT, 224, 1.4),
}

EPS = 1e-12  # the references' epsilon in the perspective divide and the depth weights


class PointCLIPProjector(Projector):
    """PointCLIP's one-pixel-splat perspective depth maps.

    views: a preset name ("zeroshot": 6 views, 128 px, distance 1.6; "fewshot": 10 views,
        224 px, distance 1.4), indices into the preset's view list, (a, b, c) triples, a ViewSet,
        or a ring mapping (see `views.resolve_views`).
    preset: the preset giving the view list that indices refer to and the default resolution and
        distance when `views` is not a preset name (default "zeroshot").
    resolution, distance: override the preset's map side R and camera distance d.

    project: points [B, N, 3] -> raw depth maps [B, V, R, R] (harmonic mean of the depths of the
        points in each pixel, 0 where empty). __call__: -> [B, V, 3, 224, 224].
    """

    def __init__(self, views: ViewsArg = None, *, preset: Optional[str] = None,
                 resolution: Optional[int] = None, distance: Optional[float] = None,
                 image_size: int = 224, clip_normalize: bool = False):
        preset, views = pick_preset(views, preset, POINTCLIP_PRESETS, "zeroshot", "PointCLIP")
        preset_views, default_res, default_dist = POINTCLIP_PRESETS[preset]
        self.preset = preset
        self.resolution = default_res if resolution is None else resolution
        self.distance = float(default_dist if distance is None else distance)
        if isinstance(self.resolution, bool) or not isinstance(self.resolution, int) or self.resolution < 1:
            raise ValueError(f"resolution must be a positive integer (map side in pixels); got {resolution!r}")
        if not math.isfinite(self.distance) or self.distance <= 0:
            raise ValueError(f"distance must be a positive number (camera distance from the cloud's "
                             f"centre); got {distance!r}")
        super().__init__(resolve_views(views, preset_views), image_size, clip_normalize)

    @property
    def map_size(self) -> int:
        return self.resolution

    def _own_settings(self) -> dict:
        return {"preset": self.preset, "resolution": self.resolution, "distance": self.distance}

    def _splat(self, points: torch.Tensor):
        """points [B, N, 3] -> (row, col, depth, keep), each [B, V, N]: the pixel each point
        splats to (float, integral), its depth z + d, and whether it lands in the map."""
        p = self._rotate(points)                                  # [B, V, N, 3]
        r = self.resolution
        depth = p[..., 2] + self.distance                         # z' = z' + d (ref: z - (-d))
        # continuous pixel coordinates, in the references' order of operations
        row = (((p[..., 0] / (depth + EPS)) + 1) * r / 2 - 0.5).ceil_()
        col = (((p[..., 1] / (depth + EPS)) + 1) * r / 2 - 0.5).ceil_()
        keep = (row >= 0) & (row <= r - 1) & (col >= 0) & (col <= r - 1) & (depth >= 0)
        return row, col, depth, keep

    #: a point is visible when its depth is within this of the map's there (scene units)
    VISIBLE_TOLERANCE = 0.05

    def _locate_pixels(self, points: torch.Tensor):
        """Map pixel of each point: the pixel it splats to; depth: z + d. Visible: it lands
        in the map and its depth is within ``VISIBLE_TOLERANCE`` of the pixel's value (the
        harmonic mean of the depths that landed there; PointCLIP keeps no z-buffer, so in a
        pixel where near and far points mix, possibly none is visible)."""
        row, col, depth, keep = self._splat(points)
        r = self.resolution
        return (self._project(points), row.clamp(0, r - 1).long(), col.clamp(0, r - 1).long(),
                depth, keep)

    def _project(self, points: torch.Tensor) -> torch.Tensor:
        import torch
        b, n, _ = points.shape
        v, r = self.num_views, self.resolution
        row, col, depth, keep = self._splat(points)
        weight = 1 / (depth + EPS)                                # [B, V, N]
        count = depth * weight                                    # 1 up to rounding, as in the reference
        # flat pixel index over all B*V maps; dropped points go to one spare slot at the end
        base = torch.arange(b * v, device=points.device).view(b, v, 1) * (r * r)
        flat = base + row.clamp_(0, r - 1).long() * r + col.clamp_(0, r - 1).long()
        flat = torch.where(keep, flat, b * v * r * r).flatten()
        out = points.new_zeros(b * v * r * r + 1)                 # depth-weighted counts, then maps
        wsum = points.new_zeros(b * v * r * r + 1)                # sum of 1 / depth
        out.index_add_(0, flat, count.flatten())
        wsum.index_add_(0, flat, weight.flatten())
        # divide only where points landed (the spare slot becomes 0/0 and is cut off)
        out[flat] = out[flat] / wsum[flat]
        return out[:-1].view(b, v, r, r)
