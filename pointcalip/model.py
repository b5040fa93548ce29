"""PointCALIP: multi-view depth maps -> frozen CLIP -> CALIP head -> shape logits."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .backbones import ClipBackbone
from .calip import ViewWeights
from .head import CalipHead
from .prompts import class_prompts

DEFAULT_TEMPLATES = ("point cloud depth map of a {}.",)


class PointCALIP(nn.Module):
    """Zero-shot point-cloud classifier (docs/calip.md#the-attention-per-view and #views-to-shape-logits).

    ``backbone``: a :class:`ClipBackbone` (not registered as a submodule: CLIP stays frozen and
    out of this module's state dict). ``templates``: a list of templates, a set name of
    configs/prompts.yaml or a per-class prompt file (prompts.class_prompts). ``projector``: callable ``points [B, N, 3] -> images
    [B, V, 3, S, S]`` with a ``num_views`` attribute. The class-text features are computed
    once here and held, with the betas and view weights, by ``self.head`` (a
    :class:`CalipHead`). ``view_weights``: V weights (None = all ones).
    """

    def __init__(self, backbone: ClipBackbone, classnames: Sequence[str], projector,
                 templates: Union[str, Sequence[str]] = DEFAULT_TEMPLATES, beta2: float = 0.0,
                 beta3: float = 0.0, view_weights: ViewWeights = None,
                 batch_size: Optional[int] = 256):
        super().__init__()
        self.backbone = backbone
        self.projector = projector
        self.classnames = list(classnames)
        self.templates = templates if isinstance(templates, str) else list(templates)
        self.batch_size = batch_size
        text = backbone.encode_prompts(class_prompts(self.classnames, self.templates))
        self.head = CalipHead(text, beta2, beta3, view_weights, num_views=projector.num_views)

    @property
    def num_views(self) -> int:
        return self.head.num_views

    @property
    def text_features(self) -> torch.Tensor:
        """[K, C] class-text features (unit rows)."""
        return self.head.text

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

    def view_logits(self, points: torch.Tensor
                    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """points [B, N, 3] or [N, 3] -> (l0, l1, l2), each [B, V, K], x100, per view."""
        return self.head.view_logits(*self.view_features(points))

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """points [B, N, 3] or [N, 3] -> logits [B, K]."""
        return self.head(*self.view_features(points))
