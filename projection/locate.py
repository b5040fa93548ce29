"""Where points land in a projector's images (docs/projection.md#where-points-land-locate)."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PointPixels:
    """Per cloud, view and point: ``xy`` [B, V, N, 2] float (x = column, y = row) pixel
    coordinates in the CLIP-ready image of side ``image_size``; ``depth`` [B, V, N] (in the
    projector's map units); ``visible`` [B, V, N] bool (front surface at its pixel)."""

    xy: torch.Tensor
    depth: torch.Tensor
    visible: torch.Tensor
    map_size: int
    image_size: int

    def map_pixels(self) -> torch.Tensor:
        """[B, V, N, 2] integer (column, row) pixel in the native map."""
        scale = (self.map_size - 1) / (self.image_size - 1) if self.image_size > 1 else 1.0
        return (self.xy * scale).round().long()
