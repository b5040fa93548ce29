"""``load_clip``, the one way in: a backbone name -> its family (:data:`.families.FAMILIES`, by
prefix) loads the frozen model, then the engine registry (:data:`.engines.ENGINES`) chooses what
runs its image tower."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Union

from .devices import default_device
from .engines import check_engine
from .families import family_of

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .base import ClipBackbone


def load_clip(name_or_path: Union[str, Path], device: Union[str, "torch.device", None] = None,
              download_root: Union[str, Path, None] = None, engine: str = "auto"
              ) -> "ClipBackbone":
    """Load a frozen CLIP through its family (:func:`.families.family_of`): an OpenAI name
    (``clip.available_models()``; downloaded to ``download_root or
    pointcalip.core.paths.clip_dir()``), a TorchScript archive or a plain state-dict file; or
    an ``open_clip:...`` name (``open_clip:ViT-H-14/laion2b_s32b_b79k``, an architecture with a
    local weights file, ``open_clip:local-dir:DIR``, ``open_clip:hf-hub:ORG/REPO``; needs
    ``pip install 'pointcalip[open_clip]'``; see :mod:`.families.openclip`). fp32 on CPU, fp16
    on CUDA; default device cuda if available else cpu.

    ``engine``: what runs the image tower (:meth:`ClipBackbone.set_engine`), one of
    :data:`.engines.ENGINES`: ``"auto"`` (ONNX Runtime on the CPU when ``pointcalip[cpu-fast]``
    is installed, else PyTorch; ``$POINTCALIP_ENGINE`` overrides the choice), ``"eager"``
    (PyTorch) or ``"onnxruntime"``."""
    check_engine(engine, default_device(device))     # fails before anything is loaded
    key = str(name_or_path)
    backbone = family_of(key).target.load(key, device=device, download_root=download_root)
    check_finite_weights(backbone.model, key)
    backbone.set_engine(engine)
    return backbone


def check_finite_weights(model, name: str) -> None:
    """ValueError naming the backbone and the first weight holding NaN/inf (a damaged or
    diverged checkpoint would otherwise give NaN logits and arbitrary predictions)."""
    import torch

    for where, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise ValueError(f"backbone {name}: weight {where!r} holds {bad} NaN/inf values of "
                             f"{tensor.numel()}; the checkpoint is damaged (or saved from a run "
                             f"that diverged): download or export it again")
