"""The CALIP head: per-view CLIP features and class-text features -> shape logits.

One module holds the whole zero-shot formula (docs/calip.md), so that
`PointCALIP`, evaluation from the feature store, `classify` and CALIP-FS compute it the same
way::

    head = CalipHead(text, beta2=1.0, beta3=0.05, view_weights=None)   # text [K, C] unit rows
    logits = head(global_feats, spatial)            # [B, V, C], [B, V, HW, C] -> [B, K]
    l0, l1, l2 = head.view_logits(global_feats, spatial)               # each [B, V, K]
    logits = head.aggregate(l0, l1, l2)             # [B, V, K] x 3 -> [B, K]

Text features, betas and view weights are buffers: they move with ``head.to(device)`` and are
saved in its state dict. The logits are computed on the features' device.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import nn

from .calip import ViewWeights, aggregate_views, calip_logits, view_weight_tensor
from .core.words import count


def check_view_features(global_feats: torch.Tensor, spatial: torch.Tensor) -> None:
    """global [B, V, C] and spatial [B, V, HW, C] must agree on B, V and C."""
    if global_feats.dim() != 3 or spatial.dim() != 4:
        raise ValueError(f"expected global features [B, V, C] and spatial features "
                         f"[B, V, HW, C], got {tuple(global_feats.shape)} and "
                         f"{tuple(spatial.shape)}")
    b, v, c = global_feats.shape
    if spatial.shape[:2] != (b, v) or spatial.shape[3] != c:
        raise ValueError(f"global features {tuple(global_feats.shape)} and spatial features "
                         f"{tuple(spatial.shape)} do not match (B, V and C must agree)")


class CalipHead(nn.Module):
    """Zero-shot CALIP on per-view features (no trainable parameters).

    text: [K, C] class-text features (unit rows). beta2, beta3: weights of the visual-guided
    and textual-blended logits. view_weights: V weights (None: all ones; then ``num_views``
    must be given). temperature: CALIP's attention temperature (0.5: ``A = 2 F_s F_t^T``).
    """

    def __init__(self, text: torch.Tensor, beta2: float = 0.0, beta3: float = 0.0,
                 view_weights: ViewWeights = None, num_views: Optional[int] = None,
                 temperature: float = 0.5):
        super().__init__()
        if text.dim() != 2 or text.shape[0] == 0:
            raise ValueError(f"text features must be [K, C] with K >= 1 classes, got "
                             f"{tuple(text.shape)}")
        if view_weights is None and num_views is None:
            raise ValueError("CalipHead needs view_weights or num_views")
        if view_weights is not None and num_views is None:
            num_views = torch.as_tensor(view_weights).numel()
        weights = view_weight_tensor(view_weights, int(num_views))
        self.temperature = float(temperature)
        self.register_buffer("text", text.detach().float().clone())
        self.register_buffer("beta2", torch.tensor(0.0))
        self.register_buffer("beta3", torch.tensor(0.0))
        self.register_buffer("view_weights", weights.to(self.text.device))
        self.set_params(beta2, beta3)

    @property
    def num_views(self) -> int:
        return self.view_weights.numel()

    @property
    def num_classes(self) -> int:
        return self.text.shape[0]

    @torch.no_grad()
    def set_params(self, beta2: float, beta3: float, view_weights: ViewWeights = None) -> "CalipHead":
        """Set the betas (and, if given, the view weights) in place; returns self."""
        for name, value in (("beta2", beta2), ("beta3", beta3)):
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value}")
            getattr(self, name).fill_(value)
        if view_weights is not None:
            self.view_weights.copy_(view_weight_tensor(view_weights, self.num_views))
        return self

    def view_logits(self, global_feats: torch.Tensor, spatial: torch.Tensor
                    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """global [B, V, C], spatial [B, V, HW, C] -> (l0, l1, l2), each [B, V, K] float32."""
        check_view_features(global_feats, spatial)
        b, v = global_feats.shape[:2]
        out = calip_logits(global_feats.flatten(0, 1), spatial.flatten(0, 1), self.text,
                           temperature=self.temperature)
        return tuple(x.view(b, v, -1) for x in out)  # type: ignore[return-value]

    def aggregate(self, l0: torch.Tensor, l1: torch.Tensor, l2: torch.Tensor) -> torch.Tensor:
        """Per-view logits [B, V, K] x 3 -> shape logits [B, K] with this head's betas and
        view weights."""
        if l0.dim() != 3 or l0.shape[1] != self.num_views:
            raise ValueError(f"this head aggregates {count(self.num_views, 'view')}; got logits of "
                             f"shape {tuple(l0.shape)}")
        return aggregate_views(l0, l1, l2, self.beta2, self.beta3, self.view_weights)

    def forward(self, global_feats: torch.Tensor, spatial: torch.Tensor) -> torch.Tensor:
        """global [B, V, C], spatial [B, V, HW, C] -> logits [B, K]."""
        return self.aggregate(*self.view_logits(global_feats, spatial))

    def extra_repr(self) -> str:
        return (f"classes={self.num_classes}, views={self.num_views}, "
                f"beta2={float(self.beta2):.4g}, beta3={float(self.beta3):.4g}, "
                f"view_weights={[round(w, 4) for w in self.view_weights.tolist()]}")
