"""PointCALIP: multi-view depth maps -> frozen CLIP -> CALIP attention -> shape logits."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch
from torch import nn

from pointcalip.backbone import ClipBackbone
from pointcalip.calip import aggregate_views, calip_logits

DEFAULT_TEMPLATES = ("point cloud depth map of a {}.",)


class PointCALIP(nn.Module):
    """Zero-shot point-cloud classifier (spec/calip.md sections 2-3).

    ``backbone``: a :class:`ClipBackbone` (not registered as a submodule: CLIP stays frozen and
    out of this module's state dict). ``projector``: callable ``points [B, N, 3] -> images
    [B, V, 3, S, S]`` with a ``num_views`` attribute. Text features are computed once here.
    ``view_weights``: V weights (None = all ones).
    """

    def __init__(self, backbone: ClipBackbone, classnames: Sequence[str], projector,
                 templates: Sequence[str] = DEFAULT_TEMPLATES, beta2: float = 0.0,
                 beta3: float = 0.0,
                 view_weights: Union[None, Sequence[float], torch.Tensor] = None,
                 batch_size: Optional[int] = 256):
        super().__init__()
        self.backbone = backbone
        self.projector = projector
        self.classnames = list(classnames)
        self.templates = list(templates)
        self.beta2 = float(beta2)
        self.beta3 = float(beta3)
        self.batch_size = batch_size
        self.num_views = int(projector.num_views)
        self.register_buffer("text_features", backbone.encode_text(self.classnames, self.templates))
        if view_weights is None:
            weights = torch.ones(self.num_views)
        else:
            weights = torch.as_tensor(view_weights, dtype=torch.float32).flatten()
            if weights.numel() != self.num_views:
                raise ValueError(f"view_weights has {weights.numel()} values but the projector "
                                 f"makes {self.num_views} views")
        self.register_buffer("view_weights", weights.to(self.text_features.device))

    @staticmethod
    def _batched(points: torch.Tensor) -> torch.Tensor:
        if points.dim() == 2:
            points = points.unsqueeze(0)
        if points.dim() != 3 or points.shape[-1] != 3:
            raise ValueError(f"PointCALIP expects points [B, N, 3] or [N, 3], got "
                             f"{tuple(points.shape)}")
        return points

    def view_features(self, points: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """points [B, N, 3] or [N, 3] -> (global [B, V, C], spatial [B, V, HW, C]), unit rows."""
        points = self._batched(points)
        images = self.projector(points)                          # [B, V, 3, S, S]
        b, v = images.shape[:2]
        g, s = self.backbone.encode_images(images.flatten(0, 1), batch_size=self.batch_size)
        return g.view(b, v, -1), s.view(b, v, s.shape[1], s.shape[2])

    def logits_from_features(self, global_feats: torch.Tensor, spatial: torch.Tensor
                             ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """global [B, V, C], spatial [B, V, HW, C] -> (l0, l1, l2), each [B, V, K]."""
        b, v = global_feats.shape[:2]
        out = calip_logits(global_feats.flatten(0, 1), spatial.flatten(0, 1), self.text_features)
        return tuple(l.view(b, v, -1) for l in out)  # type: ignore[return-value]

    def view_logits(self, points: torch.Tensor
                    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """points [B, N, 3] or [N, 3] -> (l0, l1, l2), each [B, V, K], x100, per view."""
        return self.logits_from_features(*self.view_features(points))

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """points [B, N, 3] or [N, 3] -> logits [B, K]."""
        l0, l1, l2 = self.view_logits(points)
        return aggregate_views(l0, l1, l2, self.beta2, self.beta3, self.view_weights)
