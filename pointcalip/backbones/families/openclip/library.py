"""The open_clip library as this family uses it: whether it is here and recent enough (found
without importing it, or imported), its log lines kept quiet while it loads, and what
PointCALIP reads of its image towers, in words. A light module: nothing here imports open_clip
or torch at import time (the family's names are checked with it)."""
from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import logging
from typing import Iterator, Optional

INSTALL = "pip install 'pointcalip[open_clip]' (or pip install 'open_clip_torch>=3.0')"
MIN_VERSION = (3, 0)
#: timm modules whose models are ViTs that :class:`.towers._TimmViT` reads (EVA-CLIP, ViTamin, ...).
TIMM_VIT_MODULES = ("vision_transformer", "vision_transformer_hybrid", "eva", "vitamin")
SUPPORTED = ("supported are ViTs whose image embedding is the class token or the mean of the "
             "patch tokens (OpenAI-style ViTs of LAION, DataComp, DFN, MetaCLIP, CLIPA; "
             "EVA-CLIP, ViTamin and MobileCLIP-B through timm) and ModifiedResNets (RN50, "
             "RN101, RN50x4, ...)")
NOT_READ = ("PointCALIP reads timm's VisionTransformer and Eva towers; ConvNeXt, Swin, FastViT "
            "and relative-position ViTs are not read for spatial tokens")
ATTENTION_POOLED = ("pools its tokens with learnt attention queries (CoCa's attentional pooler, "
                    "SigLIP's and PE's MAP head), so no token by itself lies in the space of the "
                    "image embedding, and CALIP has no spatial tokens to attend to")


def too_old(version: str) -> Optional[str]:
    found = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if found < MIN_VERSION:
        return f"needs open_clip_torch>=3.0 but {version} is installed; upgrade it with {INSTALL}"
    return None


def library():
    """The open_clip module; ValueError (phrased to follow a backbone name) if it is missing
    or older than 3.0."""
    try:
        import open_clip
    except ImportError as err:
        raise ValueError(f"needs the open_clip library, which cannot be imported here ({err}); "
                         f"install it with {INSTALL}") from None
    old = too_old(open_clip.__version__)
    if old:
        raise ValueError(old)
    return open_clip


def library_missing() -> Optional[str]:
    """Why open_clip cannot be used here, found without importing it (None: it looks usable)."""
    try:
        found = importlib.util.find_spec("open_clip")
    except (ImportError, ValueError):
        found = None
    if found is None:
        return (f"needs the open_clip library, which is not installed here; install it with "
                f"{INSTALL}")
    try:
        return too_old(importlib.metadata.version("open_clip_torch"))
    except importlib.metadata.PackageNotFoundError:   # installed otherwise: checked on loading
        return None


@contextlib.contextmanager
def library_info_hidden() -> Iterator[None]:
    """open_clip reports each loading step with ``logging.info`` on the root logger; keep those
    lines out of PointCALIP's log while it loads (its warnings and errors still show, and
    everything does when debug logging is on: ``pointcalip -v``)."""
    root = logging.getLogger()
    if root.isEnabledFor(logging.DEBUG):
        yield
        return
    keep = lambda record: record.levelno >= logging.WARNING  # noqa: E731
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)
