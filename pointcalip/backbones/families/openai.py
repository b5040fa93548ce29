"""OpenAI's ``clip`` family: the names of OpenAI's published models (downloaded once), their
TorchScript archives and plain state-dict files, loaded into a :class:`ClipBackbone`
(docs/calip.md#clip-features: ``build_model`` on the state dict, as ``clip.load(path)`` fails on plain state dicts
with current torch). Its prefix is empty: it takes every name no other family claims.

Importing this module, checking a name (:func:`check_name`) and finding where a name's weights
live (:func:`weights_file`) import neither torch nor ``clip``: OpenAI's names and download
addresses are data here (:data:`WEIGHTS`, the same table as ``clip.clip._MODELS``; a test keeps
them equal). Fetching (:func:`fetch_weights`) and loading (:func:`load`) import them.
"""
from __future__ import annotations

import logging
import os
import urllib.error
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Union

from pointcalip.core import paths

from ..weights import file_sha256
from . import FAMILIES, Family, forms

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ..base import ClipBackbone

log = logging.getLogger(__name__)

_SITE = "https://openaipublic.azureedge.net/clip/models"
#: OpenAI's published CLIP models: name -> download address, whose last folder is the file's
#: SHA-256 (the order of ``clip.available_models()``).
WEIGHTS: Dict[str, str] = {
    "RN50": f"{_SITE}/afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762/RN50.pt",
    "RN101": f"{_SITE}/8fa8567bab74a42d41c5915025a8e4538c3bdbe8804a470a72f30b0d94fab599/RN101.pt",
    "RN50x4": f"{_SITE}/7e526bd135e493cef0776de27d5f42653e6b4c8bf9e0f653bb11773263205fdd/"
              f"RN50x4.pt",
    "RN50x16": f"{_SITE}/52378b407f34354e150460fe41077663dd5b39c54cd0bfd2b27167a4a06ec9aa/"
               f"RN50x16.pt",
    "RN50x64": f"{_SITE}/be1cfb55d75a9666199fb2206c106743da0f6468c9d327f3e0d0a543a9919d9c/"
               f"RN50x64.pt",
    "ViT-B/32": f"{_SITE}/40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/"
                f"ViT-B-32.pt",
    "ViT-B/16": f"{_SITE}/5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/"
                f"ViT-B-16.pt",
    "ViT-L/14": f"{_SITE}/b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/"
                f"ViT-L-14.pt",
    "ViT-L/14@336px": f"{_SITE}/3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02"
                      f"/ViT-L-14-336px.pt",
}


def _clip():
    """The ``clip`` package (imports torch)."""
    with warnings.catch_warnings():  # openai-clip imports the deprecated pkg_resources
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated",
                                category=UserWarning)
        import clip
    return clip


def is_torchscript_archive(path: Union[str, Path]) -> bool:
    """True for TorchScript archives (zip files with ``constants.pkl`` or a ``code/`` folder);
    ``torch.save`` zip files (state dicts) have neither."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any(n.endswith("/constants.pkl") or "/code/" in n for n in names)


def _unwrap_state_dict(obj, path: Path) -> Dict[str, "torch.Tensor"]:
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


def _state_dict_from_file(path: Path) -> Dict[str, "torch.Tensor"]:
    """Read a checkpoint file as a CLIP state dict (TorchScript archive or torch.save file)."""
    import torch

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


def short_name(name: str) -> str:
    """The backbone's name in logs and folders: an OpenAI name as it is (``ViT-B/16``), a
    checkpoint file by its file name (``mymodel.pt``)."""
    return name if name in WEIGHTS else Path(name).expanduser().name


def available_models() -> list:
    """The OpenAI CLIP names ``load_clip`` downloads (those of ``clip.available_models()``)."""
    return list(WEIGHTS)


def _root(download_root: Union[str, Path, None]) -> Path:
    return Path(download_root) if download_root is not None else paths.clip_dir()


def weights_file(name: str, download_root: Union[str, Path, None] = None) -> Path:
    """Where the weights of the OpenAI CLIP ``name`` live once downloaded:
    ``<download_root or pointcalip.core.paths.clip_dir()>/<file name of its address>``
    (``RN50`` -> ``.../RN50.pt``). KeyError for names that are not OpenAI's
    (:func:`available_models`). Reads nothing."""
    return _root(download_root) / os.path.basename(WEIGHTS[name])


def weights_present(name: str, download_root: Union[str, Path, None] = None) -> bool:
    """True when :func:`weights_file` of ``name`` is there with the SHA-256 of its address
    (the file :func:`fetch_weights` would keep without downloading); reads the file."""
    path = weights_file(name, download_root)
    return path.is_file() and file_sha256(path) == WEIGHTS[name].split("/")[-2]


def fetch_weights(name: str, download_root: Union[str, Path, None] = None) -> Path:
    """The weights file of the OpenAI CLIP ``name`` (:func:`weights_file`), downloaded first
    unless it is there with its checksum (``clip``'s own downloader, which checks it).
    RuntimeError when it cannot be downloaded, saying where to put the file by hand or how to
    use a local checkpoint instead."""
    url, target = WEIGHTS[name], weights_file(name, download_root)
    try:
        return Path(_clip().clip._download(url, str(target.parent)))
    except (urllib.error.URLError, OSError) as exc:
        raise RuntimeError(
            f"Could not download CLIP {name} ({type(exc).__name__}: {exc}). Download {url} and "
            f"put it at {target}, or use a local checkpoint file instead of the name: "
            f"--set backbone=/path/to/{os.path.basename(url)} (classify: --backbone PATH)") from exc


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
        return f"sha256:{WEIGHTS[name].split('/')[-2]}"
    return f"sha256:{file_sha256(Path(name).expanduser())}"


def load(name: str, device: Union[str, "torch.device", None] = None,
         download_root: Union[str, Path, None] = None) -> "ClipBackbone":
    """An OpenAI name (downloaded to ``download_root or pointcalip.core.paths.clip_dir()``), a
    TorchScript archive or a plain state-dict file -> a frozen ClipBackbone; fp32 on the CPU,
    fp16 on CUDA."""
    from ..base import ClipBackbone
    from ..devices import default_device, precision_on

    device = default_device(device)
    label = short_name(name)
    if name in available_models():
        path = fetch_weights(name, download_root)
    else:
        path = Path(name).expanduser()
        if not path.is_file():
            raise ValueError(f"Unknown CLIP model {name!r}: not a file and not one of "
                             f"{available_models()}")
    log.info("Loading CLIP %s from %s on %s", label, path, device)
    _clip()
    from clip.model import build_model

    model = build_model(_state_dict_from_file(path)).to(device)
    if precision_on(device) == "float32":
        model.float()
    return ClipBackbone(model, name=label, identity=identity(name))


FAMILIES.register("clip", Family(check=check_name, identity=identity, load=load,
                                 short_name=short_name), prefix="",
                  forms="OpenAI CLIP models: a name or a checkpoint file (TorchScript archive "
                        "or state dict)", example="RN50")
