"""Frozen CLIP models that also return their spatial tokens (spec/calip.md section 1).

``load_clip`` is the one way in: it finds the backbone family of the name in the registry
:data:`FAMILIES` (by its prefix), lets the family load the model, then lets the engine registry
:data:`ENGINES` choose what runs the image tower.

- :mod:`.base`: :class:`ClipBackbone`, the tokens protocol every family answers (``encode_images``
  -> global [N, C] and spatial [N, HW, C] unit rows; ``encode_text``, ``encode_prompts``).
- :mod:`.families`: one module per family: :mod:`.families.openai` (OpenAI names, TorchScript
  archives, state-dict files) and :mod:`.families.openclip` (``open_clip:...`` names).
- :mod:`.engines`: eager (PyTorch), onnxruntime (:mod:`.onnx`) and auto; an engine gets a
  function computing the tokens, never a backbone.
- :mod:`.devices`: the device and precision rules every family and engine share.
"""
from __future__ import annotations

from pathlib import Path
from typing import Union

import torch

from .base import ClipBackbone, attention_pool_tokens, file_sha256
from .devices import CPU_IMAGES_PER_CALL, default_device, default_images_per_call, precision_on
from .engines import ENGINES, check_engine, planned_engine
from .families import FAMILIES, check_backbone_name, checkpoint_identity, family_of

__all__ = ["CPU_IMAGES_PER_CALL", "ENGINES", "FAMILIES", "ClipBackbone", "attention_pool_tokens",
           "check_backbone_name", "check_engine", "checkpoint_identity", "default_device",
           "default_images_per_call", "family_of", "file_sha256", "load_clip", "planned_engine",
           "precision_on"]


def load_clip(name_or_path: Union[str, Path], device: Union[str, torch.device, None] = None,
              download_root: Union[str, Path, None] = None, engine: str = "auto") -> ClipBackbone:
    """Load a frozen CLIP through its family (:func:`family_of`): an OpenAI name
    (``clip.available_models()``; downloaded to ``download_root or
    pointcalip.core.paths.clip_dir()``), a TorchScript archive or a plain state-dict file; or
    an ``open_clip:...`` name (``open_clip:ViT-H-14/laion2b_s32b_b79k``, an architecture with a
    local weights file, ``open_clip:local-dir:DIR``, ``open_clip:hf-hub:ORG/REPO``; needs
    ``pip install 'pointcalip[open_clip]'``; see :mod:`.families.openclip`). fp32 on CPU, fp16
    on CUDA; default device cuda if available else cpu.

    ``engine``: what runs the image tower (:meth:`ClipBackbone.set_engine`), one of
    :data:`ENGINES`: ``"auto"`` (ONNX Runtime on the CPU when ``pointcalip[cpu-fast]`` is
    installed, else PyTorch; ``$POINTCALIP_ENGINE`` overrides the choice), ``"eager"``
    (PyTorch) or ``"onnxruntime"``."""
    check_engine(engine, default_device(device))     # fails before anything is loaded
    key = str(name_or_path)
    backbone = family_of(key).target.load(key, device=device, download_root=download_root)
    backbone.set_engine(engine)
    return backbone
