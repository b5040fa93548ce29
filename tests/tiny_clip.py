"""Tiny random CLIP checkpoints for fast, offline tests.

The models are real ``clip.model.CLIP`` instances (so ``clip.model.build_model`` rebuilds them
from their state dicts), only very small:

- ResNet: vision_layers (1, 1, 1, 1), width 8 (attention pool: 256 channels, 4 heads of 64),
  224 px input -> 7 x 7 = 49 spatial tokens.
- ViT: width 64 (1 head), 2 layers, patch 32, 224 px input -> 49 spatial tokens.
- Text: width 64 (build_model infers heads = width // 64 = 1), 1 layer, context 77,
  vocab 49408 (the tokenizer's ids need the full vocabulary).
- embed_dim C = 32.

Every weight comes from one seeded generator (:func:`_seeded_init`), independent of torch's
module init, so the goldens in ``tests/data`` stay valid across torch versions.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Dict

import torch
from clip.model import CLIP

EMBED_DIM = 32
RESOLUTION = 224
TEXT = dict(context_length=77, vocab_size=49408, transformer_width=64, transformer_heads=1,
            transformer_layers=1)


def _seeded_init(model: CLIP, seed: int) -> None:
    """Give every parameter and BatchNorm statistic a value drawn from one seeded CPU generator,
    in state-dict order, so the weights depend only on ``seed`` (not on torch's module init,
    which may change between versions). Matrices: N(0, 1/fan_in); 1-D tensors: small around
    0 (biases, embeddings) or 1 (norm weights, variances). CLIP's own init zeroes every
    ``bn3.weight``, which would turn the residual branches off; this does not."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict(keep_vars=True).items():
            if not tensor.is_floating_point():
                continue
            noise = torch.randn(tensor.shape, generator=g)
            leaf = name.rsplit(".", 1)[-1]
            if name == "logit_scale":
                value = torch.full_like(tensor, math.log(100.0))
            elif leaf == "running_var" or (leaf == "weight" and tensor.dim() == 1):
                value = 0.75 + 0.25 * noise.abs()          # norm scales and variances > 0
            elif tensor.dim() >= 2 and "embedding" not in name:
                value = noise / math.sqrt(tensor[0].numel())
            else:
                value = 0.1 * noise                         # biases, embeddings, means
            tensor.copy_(value)


def _build(seed: int, **vision) -> CLIP:
    model = CLIP(embed_dim=EMBED_DIM, image_resolution=RESOLUTION, **vision, **TEXT)
    _seeded_init(model, seed)
    return model.eval()


def tiny_resnet_model(seed: int = 0) -> CLIP:
    """A tiny ModifiedResNet CLIP (fp32)."""
    return _build(seed, vision_layers=(1, 1, 1, 1), vision_width=8, vision_patch_size=None)


def tiny_vit_model(seed: int = 0) -> CLIP:
    """A tiny ViT/32 CLIP (fp32)."""
    return _build(seed, vision_layers=2, vision_width=64, vision_patch_size=32)


def tiny_resnet_state_dict(seed: int = 0) -> Dict[str, torch.Tensor]:
    """State dict of :func:`tiny_resnet_model`."""
    return tiny_resnet_model(seed).state_dict()


def tiny_vit_state_dict(seed: int = 0) -> Dict[str, torch.Tensor]:
    """State dict of :func:`tiny_vit_model`."""
    return tiny_vit_model(seed).state_dict()


def _torchscript(model: CLIP) -> torch.jit.ScriptModule:
    """Trace ``model`` the way OpenAI's archives are made: a ScriptModule whose state dict has
    the CLIP keys (``clip.load(path, jit=False)`` only uses that state dict)."""
    images = torch.zeros(1, 3, RESOLUTION, RESOLUTION)
    text = torch.zeros(1, TEXT["context_length"], dtype=torch.long)
    text[0, 0], text[0, 1] = 49406, 49407
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer / deprecation warnings
        return torch.jit.trace(model, (images, text), check_trace=False)


def write_tiny_checkpoints(folder) -> Dict[str, Path]:
    """Write tiny checkpoints into ``folder``; returns ``{name: path}`` with names
    ``resnet`` and ``vit`` (plain state dicts, ``torch.save``) and ``resnet_jit`` (a
    TorchScript archive of the same ResNet weights)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"resnet": folder / "tiny_resnet.pt", "vit": folder / "tiny_vit.pt",
             "resnet_jit": folder / "tiny_resnet_jit.pt"}
    torch.save(tiny_resnet_state_dict(), paths["resnet"])
    torch.save(tiny_vit_state_dict(), paths["vit"])
    traced = _torchscript(tiny_resnet_model())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        traced.save(str(paths["resnet_jit"]))
    return paths
