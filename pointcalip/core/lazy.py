"""Package faces that hand names on lazily, so importing a package (for ``--help``, a config
check, a catalog) does not import torch or the submodule behind each name."""
from __future__ import annotations

import importlib
from typing import Any, Mapping


def lazy_attribute(package: str, exports: Mapping[str, str], name: str) -> Any:
    """``name`` of ``package`` (a module's ``__getattr__``), imported on first use from its
    submodule ``exports[name]``; AttributeError, worded as Python's, for any other name."""
    if name in exports:
        return getattr(importlib.import_module(f".{exports[name]}", package), name)
    raise AttributeError(f"module {package!r} has no attribute {name!r}")
