"""PointCLIP's inter-view adapter (spec/calip_fs.md section 2), with its released key layout.

On CLIP's un-normalised global view features ``x`` [B, V, C]::

    fused   = global_f(x * w)            w: per-view weights [V], init 0.5
              global_f = BatchNorm1d(C) on every view, Dropout, Flatten,
                         Linear(V*C -> C), BatchNorm1d(C), ReLU, Dropout
    views   = view_f(fused)              view_f = Linear(C -> C), ReLU, Linear(C -> V*C), ReLU
    adapted = ratio * views + (1 - ratio) * flatten(x)        ratio 0.6   -> [B, V*C]
    logits  = logit_scale * normalise(adapted) @ normalise(tile_V(text))^T

Parameter names follow PointCLIP's released checkpoints (``fusion_ratio``, ``global_f.0.bn.*``,
``global_f.3.*``, ``global_f.4.*``, ``view_f.0.*``, ``view_f.2.*``), so
:meth:`InterViewAdapter.from_pointclip_checkpoint` loads ``model-best.pth.tar`` directly.
"""
from __future__ import annotations

import logging
import math
import pickle
from pathlib import Path
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import skip_init

from ..calip import LOGIT_SCALE
from .dropout import SeededDropout

log = logging.getLogger(__name__)


class ViewBatchNorm(nn.Module):
    """BatchNorm1d over the channels of every view: [B, V, C] -> [B, V, C]."""

    def __init__(self, channels: int):
        super().__init__()
        self.bn = nn.BatchNorm1d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, v, c = x.shape
        return self.bn(x.reshape(b * v, c)).view(b, v, c)


def _linear(in_features: int, out_features: int, generator: torch.Generator) -> nn.Linear:
    """``nn.Linear`` initialised as torch does (weight: kaiming uniform with a = sqrt(5);
    bias: uniform within 1 / sqrt(fan_in)), drawn from ``generator`` alone."""
    layer = skip_init(nn.Linear, in_features, out_features)
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
    bound = 1 / math.sqrt(in_features)
    nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    return layer


class InterViewAdapter(nn.Module):
    """PointCLIP's adapter. num_views V, channels C (CLIP's embedding size: 512 for RN101 and
    ViT-B, 1024 for RN50); ratio: share of the adapted branch (0.6); fusion_init: initial
    per-view weight (0.5); dropout (0.075). ``generator``: draws the linear layers' initial
    weights (torch's default init, in construction order; None: torch's global generator);
    the dropout masks are drawn from the generator ``fit`` gives (:mod:`.dropout`)."""

    def __init__(self, num_views: int = 10, channels: int = 512, ratio: float = 0.6,
                 fusion_init: float = 0.5, dropout: float = 0.075,
                 generator: Optional[torch.Generator] = None):
        super().__init__()
        if num_views < 1 or channels < 1:
            raise ValueError(f"num_views and channels must be positive, got {num_views}, {channels}")
        if not 0.0 <= ratio <= 1.0 or not 0.0 <= dropout < 1.0:
            raise ValueError(f"ratio must be in [0, 1] and dropout in [0, 1), got {ratio}, {dropout}")
        self.num_views, self.channels, self.ratio = num_views, channels, ratio
        v, c = num_views, channels
        self.fusion_ratio = nn.Parameter(torch.full((v,), float(fusion_init)))
        linear = nn.Linear if generator is None else lambda *shape: _linear(*shape, generator)
        self.global_f = nn.Sequential(ViewBatchNorm(c), SeededDropout(dropout), nn.Flatten(),
                                      linear(v * c, c), nn.BatchNorm1d(c), nn.ReLU(),
                                      SeededDropout(dropout))
        self.view_f = nn.Sequential(linear(c, c), nn.ReLU(), linear(c, v * c), nn.ReLU())

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        """raw: un-normalised view features [B, V, C] -> adapted features [B, V, C]."""
        if raw.dim() != 3 or raw.shape[1:] != (self.num_views, self.channels):
            raise ValueError(f"the adapter takes features [B, {self.num_views}, {self.channels}], "
                             f"got {tuple(raw.shape)}")
        raw = raw.float()
        fused = self.global_f(raw * self.fusion_ratio.view(1, -1, 1))            # [B, C]
        views = self.view_f(fused)                                               # [B, V*C]
        adapted = self.ratio * views + (1.0 - self.ratio) * raw.flatten(1)
        return adapted.view_as(raw)

    def logits(self, raw: torch.Tensor, text: torch.Tensor, logit_scale: float = LOGIT_SCALE
               ) -> torch.Tensor:
        """raw [B, V, C], text [K, C] (unit rows) -> [B, K]."""
        adapted = F.normalize(self(raw).flatten(1), dim=-1)
        tiled = F.normalize(text.float().to(adapted.device).repeat(1, self.num_views), dim=-1)
        return logit_scale * adapted @ tiled.T

    def num_trainable(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    @classmethod
    def from_pointclip_checkpoint(cls, path: str | Path, **kwargs) -> "InterViewAdapter":
        """Load PointCLIP's released adapter (a ``torch.save`` dict whose ``state_dict`` holds
        the keys above, possibly prefixed ``module.``); V and C are read from the weights."""
        state = _adapter_state(Path(path).expanduser())
        v = state["fusion_ratio"].numel()
        c = state["global_f.3.weight"].shape[0]
        if tuple(state["global_f.3.weight"].shape) != (c, v * c):
            raise ValueError(f"{path}: global_f.3.weight has shape "
                             f"{tuple(state['global_f.3.weight'].shape)}, expected ({c}, {v * c}) "
                             f"for {v} views of {c} channels")
        model = cls(num_views=v, channels=c, **kwargs)
        state["fusion_ratio"] = state["fusion_ratio"].reshape(v)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"{path} is not a PointCLIP adapter checkpoint: missing keys "
                             f"{missing[:5]}, unexpected keys {unexpected[:5]}")
        log.info("loaded PointCLIP's adapter from %s (%d views, %d channels)", path, v, c)
        return model


def _adapter_state(path: Path) -> Dict[str, torch.Tensor]:
    """The adapter's tensors from a checkpoint file, under PointCLIP's key names."""
    if not path.is_file():
        raise FileNotFoundError(f"adapter checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        log.warning("%s holds Python objects besides tensors (a training checkpoint); loading it "
                    "in full: do this only for files you trust", path)
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - zip errors, truncation: all "not readable"
        raise ValueError(f"cannot read adapter checkpoint {path}: {err}") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(f"{path} does not hold a state dict")
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}
    state = {k: v for k, v in state.items() if k == "fusion_ratio" or k.startswith(("global_f.", "view_f."))}
    for key in ("fusion_ratio", "global_f.3.weight"):
        if key not in state:
            raise ValueError(f"{path} is not a PointCLIP adapter checkpoint: no key {key!r}")
    return state
