"""Frozen CLIP models that also return their spatial tokens (docs/calip.md#clip-features).

``load_clip`` (:mod:`.factory`) is the one way in: it finds the backbone family of the name in
the registry :data:`FAMILIES` (by its prefix), lets the family load the model, then lets the
engine registry :data:`ENGINES` choose what runs the image tower.

- :mod:`.base`: :class:`ClipBackbone`, the tokens protocol every family answers (``encode_images``
  -> global [N, C] and spatial [N, HW, C] unit rows; ``encode_text``, ``encode_prompts``).
- :mod:`.families`: one module (or package) per family: :mod:`.families.openai` (OpenAI names,
  TorchScript archives, state-dict files) and :mod:`.families.openclip` (``open_clip:...``).
- :mod:`.engines`: eager (PyTorch), onnxruntime (:mod:`.onnx`) and auto; an engine gets a
  function computing the tokens, never a backbone.
- :mod:`.devices`: the device and precision rules every family and engine share.
- :mod:`.weights`: what identifies a weights file (its SHA-256).

Names are handed on lazily (as :mod:`pointcalip` does): importing this package imports no torch,
and neither do listing and checking engine and backbone names (:func:`check_engine`,
:func:`check_backbone_name`: config validation calls them). Loading a model imports torch.
"""
from ..core.lazy import lazy_attribute

_EXPORTS = {
    "load_clip": "factory",
    "ClipBackbone": "base",
    "attention_pool_tokens": "base",
    "file_sha256": "weights",
    "CPU_IMAGES_PER_CALL": "devices",
    "default_device": "devices",
    "default_images_per_call": "devices",
    "precision_on": "devices",
    "ENGINES": "engines",
    "check_engine": "engines",
    "planned_engine": "engines",
    "FAMILIES": "families",
    "check_backbone_name": "families",
    "checkpoint_identity": "families",
    "family_of": "families",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    return lazy_attribute(__name__, _EXPORTS, name)


def __dir__():
    return sorted(list(globals()) + __all__)
