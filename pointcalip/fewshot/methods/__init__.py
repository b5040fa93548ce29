"""The few-shot methods of `pointcalip fewshot`, one module each, found by discovery.

A method module registers a runner and declares what it needs::

    @METHODS.register("tip", section=TipConfig, trains=False, augmented=False, order=1)
    def run(prepared, k, seed) -> FewShotRun: ...

- ``section``: its config section class (the config key is the method's name), or None;
- ``trains``: whether it trains a model (``fit``: checkpoints, curves, ``--resume``);
- ``augmented``: whether it trains on the augmented copies of the shots (``augment.copies``);
- ``order``: its place in the default ``methods`` list, in ``all`` and in tables;
- ``baseline`` (optional): it runs once, before the others, and returns a list of rows;
- ``once`` (optional): ``once(cfg)`` true -> it runs once, not per shots and seed, and returns
  a list of rows (e.g. the adapter evaluating a released checkpoint).
- ``check`` (optional): ``check(cfg, num_views, channels, trust)`` raises before anything is
  encoded when the run cannot work (e.g. a released checkpoint for another backbone).

Everything else (``FewShotConfig``'s sections and checks, the CLI's ``--method`` choices, the
runners of fewshot/run.py, which clouds get augmented copies) is derived from these entries,
so adding a method is adding its module (and its section in configs/fewshot_defaults.yaml).
Method modules stay light at import time (torch is imported inside the runners), so listing
the names, e.g. for ``--help``, imports no torch.
"""
from __future__ import annotations

from typing import List

from ...core.registry import Entry, Registry

METHODS = Registry("few-shot method", discover=__name__)


#: what every method must declare
REQUIRED = ("section", "trains", "augmented", "order")


def method_entries() -> List[Entry]:
    """Every registered method, in its declared order."""
    entries = METHODS.entries()
    for entry in entries:
        missing = [key for key in REQUIRED if key not in entry.meta]
        if missing:
            raise TypeError(f"few-shot method {entry.name!r} ({getattr(entry.target, '__module__', '?')}) "
                            f"declares no {', '.join(missing)}: METHODS.register({entry.name!r}, "
                            f"section=..., trains=..., augmented=..., order=...)")
    return sorted(entries, key=lambda e: e.order)


def method_names() -> List[str]:
    """The names of every method, in order: the default ``methods`` and ``all``."""
    return [e.name for e in method_entries()]
