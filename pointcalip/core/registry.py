"""One registry per extension axis (datasets, projectors, backbone families, engines, few-shot
methods, ablation studies, commands), in the manner of timm's ``@register_model``.

    METHODS = Registry("few-shot method", discover="pointcalip.fewshot.methods")

    @METHODS.register("tip", trains=False)          # in pointcalip/fewshot/methods/tip.py
    def run_tip(...): ...

    METHODS.names()            # ["adapter", "calip_fs", "tip", ...], for CLI choices and checks
    METHODS["tip"].target      # the registered object
    METHODS["tip"].trains      # what the entry declared
    METHODS["tpi"]             # KeyError: unknown few-shot method 'tpi' (did you mean 'tip'?) ...

With ``discover``, the first lookup imports every module of that package, so adding an entry is
adding its module: no list to edit elsewhere. Keep those modules light at import time (import
torch inside functions) when the names are needed before any work starts, e.g. for ``--help``.
"""
from __future__ import annotations

import difflib
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator


@dataclass(frozen=True)
class Entry:
    """A registered object and what it declared about itself (``Entry.trains`` etc.)."""

    name: str
    target: Any
    meta: dict = field(default_factory=dict)

    def __getattr__(self, key: str):
        try:
            return self.__dict__["meta"][key]
        except KeyError:
            raise AttributeError(f"{self.name!r} declares no {key!r}") from None


class Registry:
    """Named entries of one axis, in registration order."""

    def __init__(self, axis: str, discover: str | None = None):
        self.axis, self._discover, self._entries = axis, discover, {}

    def register(self, name: str, target: Any = None, **meta) -> Callable:
        """Register ``target`` under ``name``; without ``target``, a decorator."""
        def add(obj):
            if name in self._entries and self._entries[name].target is not obj:
                raise ValueError(f"{self.axis} {name!r} is registered twice")
            self._entries[name] = Entry(name, obj, meta)
            return obj
        return add if target is None else add(target)

    def _load(self) -> dict[str, Entry]:
        if self._discover:
            package = importlib.import_module(self._discover)
            for info in pkgutil.iter_modules(package.__path__):
                if not info.name.startswith("_"):
                    importlib.import_module(f"{self._discover}.{info.name}")
            self._discover = None
        return self._entries

    def names(self) -> list[str]:
        return list(self._load())

    def entries(self) -> list[Entry]:
        return list(self._load().values())

    def __contains__(self, name: object) -> bool:
        return name in self._load()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._load())

    def __getitem__(self, name: str) -> Entry:
        entries = self._load()
        if name not in entries:
            raise KeyError(self.unknown(name))
        return entries[name]

    def unknown(self, name: object) -> str:
        """The message for a name that is not registered: the close names and every name."""
        close = difflib.get_close_matches(str(name), self.names(), n=2, cutoff=0.6)
        hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
        return f"unknown {self.axis} {name!r}{hint}; known: {', '.join(self.names())}"
