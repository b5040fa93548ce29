"""Where and in what precision a backbone runs: the rules every backbone family and every
engine share (they sit apart from :mod:`pointcalip.backbones.base` so that engines, which
never import a backbone, can use them too)."""
from __future__ import annotations

from typing import Optional, Union

import torch

#: Images per forward call of the image tower on the CPU when ``encode_images`` is given no
#: ``batch_size`` (``ClipBackbone.images_per_call``). Measured on a 2-core CPU with full-size
#: RN50 and ViT-B/32 (``scripts/bench_engine.py --per-call 2,4,8,16,32``): PyTorch is fastest
#: at 4 to 16 images per call, and 8 per call beat 96 in one call by 1.4-1.8x (RN50) and 1.15x
#: (ViT-B/32); ONNX Runtime is about as fast from 4 to 32.
CPU_IMAGES_PER_CALL = 8


def default_device(device: Union[str, torch.device, None] = None) -> torch.device:
    """``device``, or cuda if available, else cpu."""
    return torch.device(device if device is not None else
                        ("cuda" if torch.cuda.is_available() else "cpu"))


def precision_on(device: Union[str, torch.device, None] = None) -> str:
    """The precision ``load_clip`` gives the weights on ``device``: float32 on the CPU,
    float16 on a GPU (OpenAI's checkpoints are float16; open_clip models get open_clip's own
    ``fp16`` mixed precision there, so the rule is the same for every backbone)."""
    return "float32" if default_device(device).type == "cpu" else "float16"


def default_images_per_call(device: Union[str, torch.device]) -> Optional[int]:
    """Images per forward call when the caller gives no batch size: ``CPU_IMAGES_PER_CALL``
    on the CPU, None (all in one call; the caller chooses the batch) on a GPU."""
    return CPU_IMAGES_PER_CALL if torch.device(device).type == "cpu" else None
