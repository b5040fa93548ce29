"""What every projector shares: input checks, view rotations, CLIP-ready images, settings."""
from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from .views import ViewSet

#: CLIP's image normalisation (openai/CLIP `_transform`), used only when `clip_normalize=True`.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def check_points(points) -> torch.Tensor:
    """Validate and convert a cloud or a batch of clouds.

    points: [B, N, 3] or [N, 3] (torch tensor or numpy array, any real dtype)
    -> [B, N, 3] float32 on the input's device.
    Raises ValueError for a wrong shape, an empty cloud, or NaN/inf coordinates (naming the cloud).
    """
    import torch
    if isinstance(points, np.ndarray):
        points = torch.from_numpy(points)
    if not isinstance(points, torch.Tensor):
        raise TypeError(f"points must be a torch.Tensor or numpy array of shape [B, N, 3] or [N, 3]; "
                        f"got {type(points).__name__}")
    shape = tuple(points.shape)
    if points.dim() == 2:
        points = points.unsqueeze(0)
    if points.dim() != 3 or points.shape[-1] != 3:
        raise ValueError(f"points must have shape [B, N, 3] or [N, 3] (xyz last); got shape {shape}")
    if points.shape[0] == 0 or points.shape[1] == 0:
        raise ValueError(f"points must have shape [B, N, 3] with B >= 1 clouds of N >= 1 points; got "
                         f"shape {shape} (an empty cloud cannot be projected)")
    if points.is_complex() or points.dtype == torch.bool:
        raise ValueError(f"points must be real numbers; got dtype {points.dtype}")
    points = points.to(torch.float32)
    finite = torch.isfinite(points).flatten(1).all(dim=1)
    if not bool(finite.all()):
        bad = torch.nonzero(~finite).flatten().tolist()
        raise ValueError(f"cloud {bad[0]} of the batch (clouds with NaN/inf coordinates: {bad[:10]}"
                         f"{' ...' if len(bad) > 10 else ''}) has non-finite coordinates; "
                         "drop or repair it before projecting")
    return points


def to_clip_images(maps: torch.Tensor, image_size: int = 224, clip_normalize: bool = False) -> torch.Tensor:
    """maps: [B, V, H, W] -> images [B, V, 3, S, S] (S = image_size).

    Bilinear resize with align_corners=True (skipped when already S x S), then the single
    channel is expanded (a view, no copy) to 3 channels; with `clip_normalize`, CLIP's per-channel
    mean/std is applied (which materialises the 3 channels).
    """
    import torch
    import torch.nn.functional as F
    b, v, h, w = maps.shape
    x = maps.reshape(b * v, 1, h, w)
    if (h, w) != (image_size, image_size):
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=True)
    x = x.view(b, v, 1, image_size, image_size)
    if clip_normalize:
        mean = torch.tensor(CLIP_MEAN, dtype=x.dtype, device=x.device).view(1, 1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, dtype=x.dtype, device=x.device).view(1, 1, 3, 1, 1)
        return (x - mean) / std
    return x.expand(b, v, 3, image_size, image_size)


class Projector(ABC):
    """Turns point clouds into V single-channel maps and CLIP-ready images.

    Subclasses implement `_project(points [B, N, 3] float32) -> [B, V, H, W]` and
    `_own_settings()`; everything else (checks, images, settings) lives here.
    """

    #: bump when a change alters pixels for the same settings (feature caches key on settings)
    ALGORITHM_VERSION = 1

    def __init__(self, view_set: ViewSet, image_size: int = 224, clip_normalize: bool = False):
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
            raise ValueError(f"image_size must be a positive integer (CLIP input side); got {image_size!r}")
        self.view_set = view_set
        self.image_size = image_size
        self.clip_normalize = bool(clip_normalize)
        self._rot_cpu = None      # view_set.rotations(), computed at the first projection
        self._rot_cache: Dict[torch.device, Tuple[torch.Tensor, ...]] = {}

    @property
    def num_views(self) -> int:
        return len(self.view_set)

    @property
    @abstractmethod
    def map_size(self) -> int:
        """Side of the native maps returned by `project`."""

    @abstractmethod
    def _project(self, points: torch.Tensor) -> torch.Tensor:
        """points [B, N, 3] float32 (checked) -> maps [B, V, H, W] float32."""

    @abstractmethod
    def _own_settings(self) -> dict:
        """Subclass parameters for `settings` (JSON-serialisable)."""

    def project(self, points) -> torch.Tensor:
        """points [B, N, 3] or [N, 3] -> maps [B, V, H, W] float32, on the input's device."""
        import torch
        with torch.no_grad():
            return self._project(check_points(points))

    def __call__(self, points) -> torch.Tensor:
        """points [B, N, 3] or [N, 3] -> CLIP-ready images [B, V, 3, image_size, image_size].

        Without `clip_normalize` the result is an expanded (stride-0) view over the channel axis;
        call `.contiguous()` if you need to write into it.
        """
        import torch
        with torch.no_grad():
            return to_clip_images(self.project(points), self.image_size, self.clip_normalize)

    @property
    def settings(self) -> dict:
        """Complete, JSON-serialisable description; equal settings <=> equal pixels."""
        return {"class": type(self).__name__, "algorithm_version": self.ALGORITHM_VERSION,
                **self._own_settings(), "views": self.view_set.to_dict(), "num_views": self.num_views,
                "map_size": self.map_size, "image_size": self.image_size,
                "clip_normalize": self.clip_normalize}

    def locate(self, points, visible_tolerance: Optional[float] = None) -> "PointPixels":
        """Where each point lands in each view's CLIP-ready image.

        points [B, N, 3] or [N, 3] -> PointPixels with ``xy`` [B, V, N, 2] float pixel
        coordinates (x = column, y = row) in the ``image_size`` image (the native map pixel
        scaled by ``(image_size - 1) / (map_size - 1)``, the align-corners resize of
        `to_clip_images`), ``depth`` [B, V, N] in the map's units and ``visible`` [B, V, N]:
        the point is the front surface at its pixel: ``|depth - map value| <= tolerance``
        (each projector's ``_locate_pixels`` documents its depth and default tolerance).
        Renders every view; :meth:`images_and_locations` gives the images of the same render.
        """
        import torch
        with torch.no_grad():
            return self._maps_and_locations(check_points(points), visible_tolerance)[1]

    def images_and_locations(self, points, visible_tolerance: Optional[float] = None
                             ) -> Tuple[torch.Tensor, "PointPixels"]:
        """One render for both: the CLIP-ready images (as ``self(points)``) and where each
        point lands in them (as :meth:`locate`), equal to the two calls' results bit for bit
        but rendering once (the projector learns each point's pixel and whether it is the
        front surface while it renders)."""
        import torch
        with torch.no_grad():
            maps, loc = self._maps_and_locations(check_points(points), visible_tolerance)
            return to_clip_images(maps, self.image_size, self.clip_normalize), loc

    def _maps_and_locations(self, pts: torch.Tensor, visible_tolerance: Optional[float]
                            ) -> Tuple[torch.Tensor, "PointPixels"]:
        """Checked points -> (maps [B, V, h, h] as `_project`, PointPixels)."""
        import torch
        from .locate import PointPixels
        tol = self.VISIBLE_TOLERANCE if visible_tolerance is None else float(visible_tolerance)
        maps, row, col, depth, front = self._locate_pixels(pts)
        b, v, n = depth.shape
        h = maps.shape[-1]
        flat = maps.reshape(b, v, -1)
        held = torch.gather(flat, 2, (row * h + col).reshape(b, v, n))
        visible = front & ((depth - held).abs() <= tol)
        scale = (self.image_size - 1) / (h - 1) if h > 1 else 1.0
        xy = torch.stack([col, row], dim=-1).to(torch.float32) * scale
        return maps, PointPixels(xy=xy, depth=depth, visible=visible, map_size=h,
                                 image_size=self.image_size)

    def select_views(self, indices: Sequence[int]) -> "Projector":
        """A copy of this projector rendering only the views at `indices` (same pixels per view)."""
        out = copy.copy(self)
        out.view_set = self.view_set.subset(indices)
        out._rot_cpu = None
        out._rot_cache = {}
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.settings})"

    def _rotate(self, points: torch.Tensor) -> torch.Tensor:
        """points [B, N, 3] -> rotated [B, V, N, 3] (`p @ R^T [@ Rx(s)^T] [@ Ry(t)^T]`, one
        product per matrix, as the references)."""
        import torch
        dev = points.device
        if self._rot_cpu is None:
            self._rot_cpu = self.view_set.rotations()
        if dev not in self._rot_cache:
            self._rot_cache[dev] = tuple(m.to(dev) for m in self._rot_cpu)
        p = points.unsqueeze(1)
        for m in self._rot_cache[dev]:
            p = torch.matmul(p, m.unsqueeze(0))
        return p
