"""OpenAI's ``clip`` family: the names of OpenAI's published models (downloaded once), their
TorchScript archives and plain state-dict files, loaded into a :class:`ClipBackbone` (spec/calip.md
section 1: ``build_model`` on the state dict, as ``clip.load(path)`` fails on plain state dicts
with current torch). Its prefix is empty: it takes every name no other family claims.
"""
from __future__ import annotations

import logging
import os
import urllib.error
import warnings
import zipfile
from pathlib import Path
from typing import Dict, Union

import torch

from pointcalip.core import paths

from ..base import ClipBackbone, file_sha256
from ..devices import default_device, precision_on
from . import FAMILIES, Family, forms

with warnings.catch_warnings():  # openai-clip imports the deprecated pkg_resources
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    import clip
from clip.model import build_model

log = logging.getLogger(__name__)


def is_torchscript_archive(path: Union[str, Path]) -> bool:
    """True for TorchScript archives (zip files with ``constants.pkl`` or a ``code/`` folder);
    ``torch.save`` zip files (state dicts) have neither."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any(n.endswith("/constants.pkl") or "/code/" in n for n in names)


def _unwrap_state_dict(obj, path: Path) -> Dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], dict) and "visual.conv1.weight" not in obj:
                obj = obj[key]
                break
        if any(k.startswith("module.") for k in obj):
            obj = {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}
        if "visual.conv1.weight" in obj and "text_projection" in obj:
            return obj
    raise RuntimeError(
        f"{path} is not a CLIP checkpoint: expected a TorchScript archive or a state dict with "
        f"keys like 'visual.conv1.weight' and 'text_projection' (as saved by "
        f"torch.save(clip_model.state_dict(), path)).")


def _state_dict_from_file(path: Path) -> Dict[str, torch.Tensor]:
    """Read a checkpoint file as a CLIP state dict (TorchScript archive or torch.save file)."""
    errors = []
    order = ("jit", "pickle") if is_torchscript_archive(path) else ("pickle", "jit")
    for kind in order:
        try:
            if kind == "jit":
                with warnings.catch_warnings():  # OpenAI's weights are TorchScript archives
                    warnings.simplefilter("ignore", FutureWarning)
                    archive = torch.jit.load(str(path), map_location="cpu")
                return dict(archive.state_dict())
            return _unwrap_state_dict(torch.load(str(path), map_location="cpu"), path)
        except Exception as exc:  # noqa: BLE001 - we try the other format, then report both
            errors.append(f"as {'TorchScript' if kind == 'jit' else 'state dict'}: "
                          f"{type(exc).__name__}: {exc}")
    raise RuntimeError(f"Could not load CLIP checkpoint {path}; tried " + "; ".join(errors))


def _download(name: str, root: Path) -> Path:
    url = clip.clip._MODELS[name]
    target = root / os.path.basename(url)
    try:
        return Path(clip.clip._download(url, str(root)))
    except (urllib.error.URLError, OSError) as exc:
        raise RuntimeError(
            f"Could not download CLIP {name} ({type(exc).__name__}: {exc}). Download {url} and "
            f"put it at {target}, or use a local checkpoint file instead of the name: "
            f"--set backbone=/path/to/{os.path.basename(url)} (classify: --backbone PATH)") from exc


def available_models() -> list:
    """The OpenAI CLIP names ``load_clip`` downloads (``clip.available_models()``)."""
    return clip.available_models()


def check_name(name: str) -> None:
    """An OpenAI CLIP name or an existing checkpoint file; ValueError otherwise (the message
    lists the names and the other families' forms). Reads no file."""
    if name in available_models() or Path(name).expanduser().is_file():
        return
    raise ValueError(f"is {name!r}, which is neither a CLIP model name "
                     f"({', '.join(available_models())}) nor an existing checkpoint file "
                     f"({forms(but='clip')})")


def identity(name: str) -> str:
    """The SHA-256 in an OpenAI name's download URL (the file's own), or a local file's SHA-256."""
    if name in available_models():
        return f"sha256:{clip.clip._MODELS[name].split('/')[-2]}"
    return f"sha256:{file_sha256(Path(name).expanduser())}"


def load(name: str, device: Union[str, torch.device, None] = None,
         download_root: Union[str, Path, None] = None) -> ClipBackbone:
    """An OpenAI name (downloaded to ``download_root or pointcalip.core.paths.clip_dir()``), a
    TorchScript archive or a plain state-dict file -> a frozen ClipBackbone; fp32 on the CPU,
    fp16 on CUDA."""
    device = default_device(device)
    if name in available_models():
        root = Path(download_root) if download_root is not None else paths.clip_dir()
        path, label = _download(name, root), name
    else:
        path = Path(name).expanduser()
        if not path.is_file():
            raise ValueError(f"Unknown CLIP model {name!r}: not a file and not one of "
                             f"{available_models()}")
        label = path.name
    log.info("Loading CLIP %s from %s on %s", label, path, device)
    model = build_model(_state_dict_from_file(path)).to(device)
    if precision_on(device) == "float32":
        model.float()
    return ClipBackbone(model, name=label, identity=identity(name))


FAMILIES.register("clip", Family(check=check_name, identity=identity, load=load), prefix="",
                  forms="OpenAI CLIP models: a name or a checkpoint file (TorchScript archive "
                        "or state dict)", example="RN50")
