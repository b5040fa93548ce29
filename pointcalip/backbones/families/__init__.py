"""Backbone families: how a backbone name becomes a frozen :class:`ClipBackbone`.

Each module of this package is one family and registers itself in :data:`FAMILIES` under its
name prefix (``open_clip:`` for :mod:`.openclip`; the empty prefix of :mod:`.openai`, OpenAI's
``clip`` family, takes every name no other prefix claims: OpenAI names and checkpoint files).
A name belongs to the family with the longest prefix it starts with (:func:`family_of`, the one
place a prefix is tested). The entry's target is a :class:`Family`; it declares ``prefix``,
``forms`` (its names in words, for help and errors) and ``example``.

Adding a family is adding its module here (or its package, as :mod:`.openclip`), and nothing
else: discovery imports every module and package of this folder whose name does not start with
``_``. The family declares a cheap ``check`` of its names (imports no model library, builds
nothing: config validation calls it), ``identity`` and ``load``, and a ``ClipBackbone`` subclass
if its models read their tokens differently. Discovery runs when a name is checked, so a family
module is light at import: torch, the model library and the backbone class (:mod:`..base`) are
imported inside ``load`` (or by a submodule that only ``load`` imports, as
:mod:`.openclip.towers`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Union

from pointcalip.core.registry import Entry, Registry

if TYPE_CHECKING:  # pragma: no cover
    from ..base import ClipBackbone

FAMILIES = Registry("backbone family", discover=__name__)


@dataclass(frozen=True)
class Family:
    """What a family does with one of its names (the whole name, prefix included).

    - ``check(name)``: the name's form, cheaply (no model library imported, nothing built or
      downloaded); ValueError phrased to follow "backbone" (``is '...', but ...``).
    - ``identity(name)``: what identifies the weights (feature-store keys), without loading them.
    - ``load(name, device, download_root)``: the frozen backbone, its engine not yet chosen.
    - ``short_name(name)``: the loaded backbone's ``name`` (logs, feature-store and run
      folders), without loading it; by default the file name of a path (``mymodel.pt``).
    """

    check: Callable[[str], None]
    identity: Callable[[str], str]
    load: Callable[..., "ClipBackbone"]
    short_name: Callable[[str], str] = lambda name: Path(name).expanduser().name


def family_of(name: Union[str, Path]) -> Entry:
    """The family entry of a backbone name: the registered family with the longest prefix that
    ``name`` starts with."""
    text = str(name)
    owners = [e for e in FAMILIES.entries() if text.startswith(e.prefix)]
    if not owners:
        raise ValueError(f"is {text!r}, which names no backbone: use {forms()}")
    return max(owners, key=lambda e: len(e.prefix))


def forms(but: str = "") -> str:
    """Every family's names in words (``but``: leave that family out), for help and errors;
    shortest prefix first, so the order does not depend on which module was imported first."""
    entries = sorted(FAMILIES.entries(), key=lambda e: (len(e.prefix), e.name))
    return "; ".join(f"{e.forms}, e.g. {e.example}" for e in entries if e.name != but)


def check_backbone_name(name: Union[str, Path]) -> None:
    """A backbone name some family accepts, checked cheaply by its family (no model library
    imported, nothing built or downloaded); ValueError phrased to follow "backbone" otherwise.
    The family checks the rest when the model is loaded, before anything is downloaded."""
    family_of(name).target.check(str(name))


def short_name(name: Union[str, Path]) -> str:
    """A backbone's short name, the ``name`` of the backbone it loads, without loading it:
    ``ViT-B/16``, ``mymodel.pt`` for a checkpoint file (its extension kept),
    ``open_clip:ViT-B-32/laion2b_s34b_b79k``. Feature-store folders and run folders name the
    backbone by it (:func:`pointcalip.core.paths.slug` of it: ``ViT-B_16``)."""
    return family_of(name).target.short_name(str(name))


def checkpoint_identity(name: Union[str, Path]) -> str:
    """What identifies a backbone's weights (feature-store keys), without loading it: for
    OpenAI names the SHA-256 in the download URL, for files their SHA-256, for ``open_clip:``
    names the weights and preprocessing (:func:`.openclip.open_clip_identity`)."""
    return family_of(name).target.identity(str(name))
