"""PointCLIP's inter-view adapter (docs/few-shot-methods.md#pointclips-inter-view-adapter), with its released key layout.

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
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import skip_init

from ..calip import LOGIT_SCALE
from .dropout import SeededDropout
from ..core.words import count

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
    def from_pointclip_checkpoint(cls, path: str | Path, trust: bool = False, **kwargs
                                  ) -> "InterViewAdapter":
        """Load PointCLIP's released adapter (a ``torch.save`` dict whose ``state_dict`` holds
        the keys above, possibly prefixed ``module.``); V and C are read from the weights.
        Only tensors, plain containers and numpy scalars are unpickled (an allow-list of what
        the released files hold); anything else is refused unless ``trust`` (the user's
        explicit ``--trust-checkpoint``)."""
        state = _adapter_state(Path(path).expanduser(), trust)
        v = state["fusion_ratio"].numel()
        c = state["global_f.3.weight"].shape[0]
        if tuple(state["global_f.3.weight"].shape) != (c, v * c):
            raise ValueError(f"{path}: global_f.3.weight has shape "
                             f"{tuple(state['global_f.3.weight'].shape)}, expected ({c}, {v * c}) "
                             f"for {count(v, 'view')} of {count(c, 'channel')}")
        model = cls(num_views=v, channels=c, **kwargs)
        state["fusion_ratio"] = state["fusion_ratio"].reshape(v)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"{path} is not a PointCLIP adapter checkpoint: missing keys "
                             f"{missing[:5]}, unexpected keys {unexpected[:5]}")
        log.info("loaded PointCLIP's adapter from %s (%s, %s)", path, count(v, "view"),
                 count(c, "channel"))
        return model


#: option that lets a trusted adapter checkpoint be unpickled in full
TRUST_FLAG = "--trust-checkpoint"
_NOT_READABLE = ("it is not a readable torch checkpoint (cut short, damaged or another kind of "
                 "file); download it again")


def _allowed_globals() -> list:
    """What PointCLIP's released adapter checkpoints (Dassl's ``save_checkpoint``: the state
    dict, the epoch, the optimiser's and scheduler's state dicts, a validation score) may hold
    besides tensors and plain containers: numpy scalars and their dtypes."""
    import numpy as np

    allowed = [np.dtype, np.ndarray]
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            mod = __import__(module, fromlist=["scalar", "_reconstruct"])
        except ImportError:
            continue
        allowed += [mod.scalar, mod._reconstruct]
        break
    allowed += [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool")]
    return allowed


def _load_checkpoint_file(path: Path, trust: bool):
    """The object in ``path``: unpickled with ``weights_only`` and :func:`_allowed_globals`,
    or in full only when ``trust`` (the user's explicit opt-in)."""
    if trust:
        log.warning("%s: loading it in full (%s): it may run any code it holds", path, TRUST_FLAG)
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:  # noqa: BLE001 - every failure means "not readable"
            raise ValueError(f"cannot read adapter checkpoint {path}: {err}") from None
    with open(path, "rb") as f:
        head = f.read(64)
    if not head:
        raise ValueError(f"adapter checkpoint {path} is empty: download it again")
    if head.lstrip().startswith(b"<"):
        raise ValueError(f"adapter checkpoint {path} is an HTML or XML page, not a checkpoint "
                         f"(a failed download?): download the file itself again")
    try:
        with torch.serialization.safe_globals(_allowed_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:  # noqa: BLE001 - not a zip checkpoint: fall through to "not readable"
            unsafe = []
        allowed = {f"{g.__module__}.{g.__qualname__}" for g in _allowed_globals()}
        unsafe = [g for g in unsafe if g not in allowed]
        if not unsafe:
            raise ValueError(f"cannot read adapter checkpoint {path}: {_NOT_READABLE}") from None
        raise ValueError(f"adapter checkpoint {path} holds Python objects that PointCLIP's "
                         f"released checkpoints do not ({', '.join(unsafe[:4])}); unpickling "
                         f"them could run any code: if you trust this file, pass "
                         f"{TRUST_FLAG} to load it in full") from None
    except Exception as err:  # noqa: BLE001 - zip errors, truncation: all "not readable"
        detail = str(err).split(". ")[0] if str(err) else type(err).__name__
        raise ValueError(f"cannot read adapter checkpoint {path}: {_NOT_READABLE} ({detail})"
                         ) from None


def _adapter_state(path: Path, trust: bool = False) -> Dict[str, torch.Tensor]:
    """The adapter's tensors from a checkpoint file, under PointCLIP's key names."""
    if not path.is_file():
        raise FileNotFoundError(f"adapter checkpoint not found: {path}")
    obj = _load_checkpoint_file(path, trust)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(f"{path} does not hold a state dict")
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}
    state = {k: v for k, v in state.items() if k == "fusion_ratio" or k.startswith(("global_f.", "view_f."))}
    for key in ("fusion_ratio", "global_f.3.weight"):
        if key not in state:
            raise ValueError(f"{path} is not a PointCLIP adapter checkpoint: no key {key!r}")
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} is not a PointCLIP adapter checkpoint: its weights are not tensors")
    return state


def checkpoint_shape(path: str | Path, trust: bool = False) -> Tuple[int, int]:
    """(views V, channels C) of the adapter in a PointCLIP checkpoint, read from its weights."""
    state = _adapter_state(Path(path).expanduser(), trust)
    return state["fusion_ratio"].numel(), state["global_f.3.weight"].shape[0]


def check_checkpoint_fits(path: str | Path, num_views: int, channels: int, what: str,
                          trust: bool = False) -> None:
    """Refuse an adapter checkpoint made for another view count or feature size (``what``
    says which projector and backbone this run uses), naming the file and both shapes."""
    v, c = checkpoint_shape(path, trust)
    if (v, c) != (num_views, channels):
        raise ValueError(f"adapter checkpoint {path} was trained on {count(v, 'view')} of "
                         f"{c}-channel "
                         f"features, but this run has {count(num_views, 'view')} of "
                         f"{count(channels, 'channel')} "
                         f"({what}): use the checkpoint made for this projector and backbone")
