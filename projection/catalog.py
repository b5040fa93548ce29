"""Every projector, declared once: the registry that ``build_projector``, ``PROJECTORS`` and the
config's ``projector.name`` / options all derive from. Imports no torch: a target is
``"module:Class"``, imported when the projector is built or its options are read.

Adding a projector: its module (a :class:`~pointcalip.projection.base.Projector` subclass whose
keyword arguments are its options), one ``PROJECTORS.register`` call here, and its YAML
(``configs/projector/<name>.yaml``).
"""
from __future__ import annotations

import importlib
import inspect
from typing import Any, List

from ..core.registry import Registry

PROJECTORS = Registry("projector")

PROJECTORS.register("pointclip", "pointcalip.projection.pointclip:PointCLIPProjector")
PROJECTORS.register("realistic", "pointcalip.projection.realistic:RealisticProjector")


def projector_class(name: str) -> Any:
    """The class registered as ``name`` (KeyError with the known names otherwise)."""
    module, _, attr = PROJECTORS[name].target.partition(":")
    return getattr(importlib.import_module(module), attr)


def projector_options(name: str) -> List[str]:
    """The keyword arguments the ``name`` projector accepts (its config options)."""
    return [p for p in inspect.signature(projector_class(name)).parameters if p != "self"]
