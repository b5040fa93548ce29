"""Package faces that hand names on lazily, so importing a package (for ``--help``, a config
check, a catalog) does not import torch or the submodule behind each name."""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from typing import Any, Dict, Mapping


def lazy_attribute(package: str, exports: Mapping[str, str], name: str) -> Any:
    """``name`` of ``package`` (a module's ``__getattr__``), imported on first use from its
    submodule ``exports[name]``; AttributeError, worded as Python's, for any other name."""
    if name in exports:
        return getattr(importlib.import_module(f".{exports[name]}", package), name)
    raise AttributeError(f"module {package!r} has no attribute {name!r}")


class _RenamedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Old module paths kept working after a rename: importing ``old`` gives the module it
    became (the same object), so code and docs written before the rename still run."""

    def __init__(self) -> None:
        self.renamed: Dict[str, str] = {}

    def find_spec(self, fullname, path=None, target=None):
        if fullname in self.renamed:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return importlib.import_module(self.renamed[spec.name])

    def exec_module(self, module) -> None:
        """Nothing to run: the module it became ran when it was imported."""


_RENAMED = _RenamedModules()


def renamed_modules(package: str, renamed: Mapping[str, str]) -> None:
    """Keep ``package.<old>`` importable for each ``old: new`` submodule renamed in
    ``package`` (called from the package's ``__init__``; imports nothing now)."""
    if _RENAMED not in sys.meta_path:
        sys.meta_path.append(_RENAMED)
    _RENAMED.renamed.update({f"{package}.{old}": f"{package}.{new}" for old, new in renamed.items()})
