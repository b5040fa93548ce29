"""OpenCLIP models (LAION, DataComp, DFN, MetaCLIP, EVA-CLIP, ...) as PointCALIP backbones.

This family owns the backbone names that start with ``open_clip:`` (:data:`PREFIX`);
``load_clip`` hands them to :func:`load_open_clip`. The names use the open_clip library's own
architecture names and pretrained tags (``open_clip.list_pretrained()``):

- ``open_clip:ARCH/TAG``: published weights, e.g. ``open_clip:ViT-H-14/laion2b_s32b_b79k``,
  downloaded once by open_clip (Hugging Face cache, or ``download_root``).
- ``open_clip:ARCH/PATH``: a local weights file of a built-in architecture, e.g.
  ``open_clip:ViT-B-32//ckpt/epoch_32.pt`` (absolute path) or ``open_clip:ViT-B-32/w.bin``.
- ``open_clip:local-dir:DIR``: a folder with ``open_clip_config.json`` and weights (a
  downloaded Hugging Face repo of an open_clip model; its config sets mean/std and size).
- ``open_clip:hf-hub:ORG/REPO``: such a repo on the Hugging Face Hub.

The model is the library's own, unmodified (built by ``open_clip.create_model``); the spatial
tokens come from running its public submodules (:func:`token_reader`). Images reach the
backbone as the projectors make them (no mean/std); :class:`OpenClipBackbone` resizes them to
the model's resolution and applies the model's own mean/std from its preprocess config, then
reads the tokens. Needs ``pip install 'pointcalip[open_clip]'`` (``open_clip_torch>=3.0``).

The family is a package: this module (names, checks, identities, loading), :mod:`.library`
(the library's presence and version, what is read, in words) and :mod:`.towers` (the token
readers and :class:`OpenClipBackbone`, which import torch). Importing this package imports
neither torch nor open_clip, nor does :func:`check_name` (what config validation calls: the
library's presence and version, and the forms ``hf-hub:``/``local-dir:``); :func:`load_open_clip`
imports :mod:`.towers`.
Architectures, tags and tower families are checked against the library by
:func:`check_open_clip_spec` when the model's identity is needed or it is loaded, before
anything is downloaded.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence, Tuple, Union

from ...weights import file_sha256
from .. import FAMILIES, Family, family_of
from .library import ATTENTION_POOLED, NOT_READ, SUPPORTED, TIMM_VIT_MODULES
from .library import library as _library
from .library import library_info_hidden as _library_info_hidden
from .library import library_missing as _library_missing

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .towers import OpenClipBackbone

log = logging.getLogger(__name__)

__all__ = ["OpenClipBackbone", "OpenClipSpec", "check_name", "check_open_clip_spec",
           "load_open_clip", "open_clip_identity", "parse_open_clip_spec", "token_reader"]

#: How this family's backbone names start (``open_clip:ViT-H-14/laion2b_s32b_b79k``).
PREFIX = "open_clip:"

# ----------------------------------------------------------------------------- the names

@dataclass(frozen=True)
class OpenClipSpec:
    """A parsed ``open_clip:`` backbone name. ``kind``: ``tag`` (``arch`` + pretrained tag
    ``source``), ``file`` (``arch`` + weights file ``source``), ``local-dir`` (folder
    ``source``) or ``hf-hub`` (repo id ``source``)."""

    text: str
    kind: str
    arch: Optional[str]
    source: str

    @property
    def model_name(self) -> str:
        """The ``model_name`` argument of ``open_clip.create_model``."""
        return self.arch if self.kind in ("tag", "file") else f"{self.kind}:{self.source}"

    @property
    def pretrained(self) -> Optional[str]:
        """The ``pretrained`` argument of ``open_clip.create_model`` (tag or file)."""
        return self.source if self.kind in ("tag", "file") else None

    @property
    def name(self) -> str:
        """A short name for logs and store folders."""
        if self.kind == "tag":
            return f"{PREFIX}{self.arch}/{self.source}"
        if self.kind == "file":
            return f"{PREFIX}{self.arch}/{Path(self.source).name}"
        if self.kind == "local-dir":
            return f"{PREFIX}local-dir:{Path(self.source).name}"
        return f"{PREFIX}hf-hub:{self.source}"


def _problem(spec: str, text: str) -> ValueError:
    """An error phrased to follow ``backbone`` (``config key backbone is '...', but ...``)."""
    return ValueError(f"is {spec!r}{text}")


def _split_arch(body: str, models: Sequence[str]) -> Tuple[Optional[str], str]:
    """``ViT-H-14/laion2b_s32b_b79k`` -> (``ViT-H-14``, ``laion2b_s32b_b79k``): the shortest
    prefix ending at a ``/`` (or the end) that names a built-in architecture; open_clip reads
    ``/`` in architecture names as ``-``, so ``ViT-B/32/openai`` -> (``ViT-B-32``, ``openai``)."""
    known = set(models)
    cuts = [i for i, ch in enumerate(body) if ch == "/"] + [len(body)]
    for cut in cuts:
        arch = body[:cut].replace("/", "-")
        if arch in known:
            return arch, body[cut + 1:]
    return None, body


def _tag_list(tags: Sequence[str]) -> str:
    return ", ".join(tags) if tags else "none: give a weights file"


def _body(spec: str) -> str:
    """The name after the prefix; ValueError for names of another family."""
    if family_of(spec).target is not FAMILY:
        raise _problem(str(spec), f", which does not start with {PREFIX!r}")
    return spec[len(PREFIX):]


def _by_form(spec: str, body: str) -> Optional[OpenClipSpec]:
    """``hf-hub:ORG/REPO`` and ``local-dir:DIR`` names, checked in form (a repo id; a folder
    with ``open_clip_config.json``); None for ``ARCH/...`` names, which must name something."""
    if body.startswith("hf-hub:"):
        repo = body[len("hf-hub:"):]
        if repo.count("/") != 1 or not all(repo.split("/")):
            raise _problem(spec, ", but hf-hub: needs a Hugging Face repo id ORG/REPO, e.g. "
                                 "open_clip:hf-hub:laion/CLIP-ViT-H-14-laion2B-s32B-b79K")
        return OpenClipSpec(spec, "hf-hub", None, repo)
    if body.startswith("local-dir:"):
        folder = Path(body[len("local-dir:"):]).expanduser()
        if not (folder / "open_clip_config.json").is_file():
            raise _problem(spec, f", but {folder} has no open_clip_config.json (a local-dir: "
                                 "folder holds open_clip_config.json and the weights, as a "
                                 "downloaded Hugging Face repo of an open_clip model does)")
        return OpenClipSpec(spec, "local-dir", None, str(folder))
    if not body.strip("/"):
        raise _problem(spec, ", which names no model: write open_clip:ARCH/TAG, e.g. "
                             f"{FAMILIES['open_clip'].example}")
    return None


def check_name(spec: str) -> None:
    """The cheap check of an ``open_clip:`` name (config validation): the library is installed
    (found without importing it) and recent enough, ``hf-hub:``/``local-dir:`` names are well
    formed, ``ARCH/...`` names name something after the architecture. Imports no model library,
    downloads and builds nothing; :func:`check_open_clip_spec` checks the rest on loading."""
    body = _body(spec)
    missing = _library_missing()
    if missing:
        raise _problem(spec, f", which {missing}")
    _by_form(spec, body)


def parse_open_clip_spec(spec: str) -> OpenClipSpec:
    """An ``open_clip:`` backbone name -> :class:`OpenClipSpec`, checked against the installed
    library (architecture, pretrained tag, files); ValueError saying what is wrong and how
    to write it otherwise. Downloads nothing."""
    body = _body(spec)
    try:
        oc = _library()
    except ValueError as err:
        raise _problem(spec, f", which {err}") from None
    ref = _by_form(spec, body)
    if ref is not None:
        return ref
    arch, rest = _split_arch(body, oc.list_models())
    if arch is None:
        first = body.split("/", 1)[0]
        close = difflib.get_close_matches(first, oc.list_models(), n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise _problem(spec, f", but {first!r} is not an open_clip architecture{hint}; "
                             "python -c 'import open_clip; print(open_clip.list_pretrained())' "
                             "lists architectures with their tags; write open_clip:ARCH/TAG")
    tags = list(oc.list_pretrained_tags_by_model(arch))
    if not rest:
        example = f"{arch}/{tags[0]}" if tags else f"{arch}//path/to/weights.bin"
        raise _problem(spec, f", which names no weights: write open_clip:{example} (pretrained "
                             f"tags of {arch}: {_tag_list(tags)}) or give a weights file, "
                             f"open_clip:{arch}//path/to/weights.bin")
    if rest in tags:
        return OpenClipSpec(spec, "tag", arch, rest)
    path = Path(rest).expanduser()
    if path.is_file():
        return OpenClipSpec(spec, "file", arch, str(path))
    raise _problem(spec, f", but {rest!r} is neither a pretrained tag of {arch} (tags: "
                         f"{_tag_list(tags)}) nor an existing weights file")


def _model_config(ref: OpenClipSpec) -> Optional[dict]:
    """The architecture config (``embed_dim``, ``vision_cfg``, ...) without downloading
    anything; None for ``hf-hub`` names (their config lives on the Hub)."""
    if ref.kind == "local-dir":
        path = Path(ref.source) / "open_clip_config.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise _problem(ref.text, f", but {path} cannot be read as JSON ({err})") from None
        return data.get("model_cfg", data)
    if ref.kind == "hf-hub":
        return None
    return _library().get_model_config(ref.arch)


def _config_problem(model_cfg: dict) -> Optional[str]:
    """Why an architecture config's image tower gives no spatial tokens CALIP can use (None if
    it does, as far as the config tells; :func:`token_reader` checks the built tower)."""
    vision = model_cfg.get("vision_cfg", {})
    if "multimodal_cfg" in model_cfg or vision.get("attentional_pool"):
        return ATTENTION_POOLED
    timm_name = vision.get("timm_model_name")
    if timm_name:
        pool = vision.get("timm_pool", "avg")
        if pool in ("map", "abs_attn", "rot_attn"):
            return ATTENTION_POOLED
        import timm

        if not timm.models.is_model_in_modules(timm_name, TIMM_VIT_MODULES):
            return f"is timm's {timm_name} ({NOT_READ})"
    elif vision.get("pool_type", "tok") not in ("tok", "avg"):
        return f"has pool_type {vision.get('pool_type')!r} (no single image embedding)"
    return None


def check_open_clip_spec(spec: str) -> OpenClipSpec:
    """:func:`parse_open_clip_spec`, plus the image-tower family from the architecture config:
    families without usable spatial tokens are refused before anything is downloaded."""
    ref = parse_open_clip_spec(spec)
    cfg = _model_config(ref)
    problem = _config_problem(cfg) if cfg is not None else None
    if problem:
        raise _problem(spec, f", whose image tower {problem}; {SUPPORTED}")
    return ref


# ---------------------------------------------------------------------------- identities

def _preprocess_from_configs(ref: OpenClipSpec) -> Optional[Tuple[int, tuple, tuple]]:
    """(size, mean, std) the model will get, from the configs alone (as open_clip merges
    them: library defaults, then the pretrained tag's or the folder's preprocess config);
    None for ``hf-hub`` names."""
    cfg = _model_config(ref)
    if cfg is None:
        return None
    oc = _library()
    pre = {}
    if ref.kind == "tag":
        pre = oc.get_pretrained_cfg(ref.arch, ref.source) or {}
    elif ref.kind == "local-dir":
        path = Path(ref.source) / "open_clip_config.json"
        pre = json.loads(path.read_text(encoding="utf-8")).get("preprocess_cfg", {})
    size = cfg.get("vision_cfg", {}).get("image_size", 224)
    side = size if isinstance(size, int) else size[0]
    return (int(side), tuple(float(v) for v in pre.get("mean", oc.OPENAI_DATASET_MEAN)),
            tuple(float(v) for v in pre.get("std", oc.OPENAI_DATASET_STD)))


def _numbers(values: Sequence[float]) -> str:
    return ",".join(f"{v:.6g}" for v in values)


def _folder_digest(folder: Path) -> str:
    """SHA-256 over the folder's config and every weights file in it (by name and content)."""
    h = hashlib.sha256()
    files = [folder / "open_clip_config.json"] + sorted(
        p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".pth", ".pt"))
    for path in files:
        h.update(f"{path.name}={file_sha256(path)};".encode())
    return h.hexdigest()


def open_clip_identity(spec: str) -> str:
    """What identifies an open_clip backbone's features (feature-store keys), without loading
    it: the weights (pretrained tag; a file's SHA-256; a folder's config and weights' SHA-256;
    a hub repo id) and the preprocessing the model gets (size, mean, std; a hub repo's config
    fixes its own). Never equal to an OpenAI model's identity (``sha256:...``). ValueError
    (``backbone is '...', but ...``) for names :func:`check_open_clip_spec` refuses."""
    try:
        ref = check_open_clip_spec(spec)
    except ValueError as err:
        raise ValueError(f"backbone {err}") from None
    weights = {"tag": lambda: f"{ref.arch}/{ref.source}",
               "file": lambda: f"{ref.arch}:sha256:{file_sha256(ref.source)}",
               "local-dir": lambda: f"local-dir:sha256:{_folder_digest(Path(ref.source))}",
               "hf-hub": lambda: f"hf-hub:{ref.source}"}[ref.kind]()
    pre = _preprocess_from_configs(ref)
    if pre is None:
        return f"{PREFIX}{weights}"
    size, mean, std = pre
    return f"{PREFIX}{weights};{size}px;mean={_numbers(mean)};std={_numbers(std)}"


# ------------------------------------------------------------------------------- loading

def _failure(ref: OpenClipSpec, err: Exception, download_root) -> str:
    """What went wrong while open_clip built or loaded ``ref``, and how to fix it."""
    why = f"{type(err).__name__}: {err}"
    if ref.kind == "file":
        return (f"Could not load {ref.source} as {ref.arch} weights ({why}); it must be a state "
                f"dict of that architecture, as open_clip's training saves (epoch_N.pt) or "
                f"torch.save(model.state_dict(), path) writes")
    if ref.kind == "local-dir":
        return f"Could not load the open_clip model in {ref.source} ({why})"
    if ref.kind == "hf-hub":
        return (f"Could not load open_clip:hf-hub:{ref.source} ({why}). Offline? Download the "
                f"repo https://huggingface.co/{ref.source} elsewhere and use "
                f"--set backbone=open_clip:local-dir:/path/to/that/folder")
    cfg = _library().get_pretrained_cfg(ref.arch, ref.source) or {}
    repo = "/".join(cfg.get("hf_hub", "").split("/")[:2])
    cache = download_root or ("the Hugging Face cache (HF_HOME, default ~/.cache/huggingface)"
                              if repo else "~/.cache/clip")
    where = (f"the repo https://huggingface.co/{repo} and use --set backbone=open_clip:"
             f"local-dir:/path/to/that/folder" if repo else
             f"{cfg.get('url')} and use --set backbone=open_clip:{ref.arch}//path/to/that/file")
    return (f"Could not load the open_clip weights {ref.arch}/{ref.source} ({why}). They are "
            f"downloaded once into {cache}; offline, copy that cache from a machine that has "
            f"them, or download {where}")


def load_open_clip(spec: str, device: Union[str, "torch.device", None] = None,
                   download_root: Union[str, Path, None] = None) -> "OpenClipBackbone":
    """Load a frozen open_clip model as an :class:`OpenClipBackbone` (see the module doc for
    the names). fp32 on CPU, open_clip's fp16 mixed precision on a GPU (as ``precision_on``
    says); published weights are downloaded by open_clip into ``download_root`` or its
    default caches. A tag trained with QuickGELU gets it even when its architecture config
    says otherwise (open_clip only warns). ValueError for bad names and unusable families,
    RuntimeError (saying how to fix it) when the weights cannot be fetched or read."""
    try:
        ref = check_open_clip_spec(str(spec))
    except ValueError as err:
        raise ValueError(f"backbone {err}") from None
    from ...devices import default_device, precision_on
    from .towers import OpenClipBackbone

    oc = _library()
    device = default_device(device)
    precision = precision_on(device)
    kwargs = {"precision": "fp32" if precision == "float32" else "fp16", "device": device,
              "require_pretrained": True}
    if ref.pretrained is not None:
        kwargs["pretrained"] = ref.pretrained
    if download_root is not None:
        kwargs["cache_dir"] = str(download_root)
    if ref.kind == "tag":
        tag_cfg = oc.get_pretrained_cfg(ref.arch, ref.source) or {}
        if tag_cfg.get("quick_gelu") and not oc.get_model_config(ref.arch).get("quick_gelu"):
            kwargs["force_quick_gelu"] = True
    log.info("Loading %s on %s (%s)", ref.name, device, precision)
    with _library_info_hidden():
        try:
            model = oc.create_model(ref.model_name, **kwargs)
            tokenizer = oc.get_tokenizer(ref.model_name)
        except Exception as err:  # noqa: BLE001 - open_clip, timm and the hub raise many kinds
            raise RuntimeError(_failure(ref, err, download_root)) from err
    backbone = OpenClipBackbone(model, name=ref.name, identity=open_clip_identity(ref.text),
                                tokenizer=tokenizer)
    log.info("%s: %s, %d spatial tokens of %d dims at %d px, mean %s, std %s", ref.name,
             backbone.family, backbone.num_tokens, backbone.embed_dim, backbone.input_resolution,
             _numbers(backbone.image_mean), _numbers(backbone.image_std))
    return backbone


def __getattr__(name: str):
    """The model side, imported on first use (it imports torch): ``OpenClipBackbone`` and
    ``token_reader`` of :mod:`.towers`, still reachable from this module."""
    if name in ("OpenClipBackbone", "token_reader"):
        from . import towers

        return getattr(towers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def short_name(spec: str) -> str:
    """The loaded backbone's name (:attr:`OpenClipSpec.name`: a weights file by its file
    name); the name as written when open_clip cannot read it (not installed)."""
    try:
        return parse_open_clip_spec(spec).name
    except ValueError:
        return spec


FAMILY = Family(check=check_name, identity=open_clip_identity, load=load_open_clip,
                short_name=short_name)
FAMILIES.register("open_clip", FAMILY, prefix=PREFIX, forms=f"open_clip models: {PREFIX}ARCH/TAG",
                  example=f"{PREFIX}ViT-H-14/laion2b_s32b_b79k")
