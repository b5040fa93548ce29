"""The tasks registry: what each task (zero-shot classification, few-shot, part segmentation,
the benchmarks, the ablations, ...) is, declared in its own command module.

    TASKS.register("zeroshot", Task(                 # in pointcalip/commands/zeroshot.py
        config="pointcalip.config:ZeroShotConfig",   # its config dataclass (COMMAND "zeroshot")
        run="pointcalip.zeroshot:run_zeroshot",      # its runner: (cfg, ...) -> a result
        datasets="pointcalip.zeroshot:feature_datasets",  # what `extract` encodes for it
        compact_stores=True), order=10)              # it reads tokens8 and logits stores

``pointcalip extract``'s plan (:func:`pointcalip.plan.feature_jobs`), the config kinds
(:func:`pointcalip.config.config_class`, the ``command:`` key of a config file) and the
store modes a config may ask for are read from here, so adding a task is its package, its
config YAML and its command module: no list to edit elsewhere.

Entries name their objects as ``"module:attribute"`` strings, imported on use: this module
and the command modules that register tasks import neither torch nor the tasks' packages, so
``--help`` and config errors stay instant (tests/test_startup.py).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, List, Optional

from .core.registry import Entry, Registry

#: every task, declared by the command modules (discovered on first lookup)
TASKS = Registry("task", discover="pointcalip.commands")


def resolve(ref: str) -> Any:
    """The object ``"package.module:attribute"`` names (the module imported now)."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Task:
    """What a task is. Every reference is ``"module:attribute"``.

    - ``config``: its config dataclass (a Section with ``COMMAND`` = the task's name).
    - ``run``: its runner, ``run(cfg, ...)`` -> its result (what its command calls).
    - ``datasets``: ``datasets(cfg, splits)`` -> ``[(label, dataset, rows or None)]``, the
      clouds its runs read from the feature store among ``splits`` (``test``, ``val``,
      ``train``; :mod:`pointcalip.plan`), which ``pointcalip extract`` encodes.
    - ``pairs``: ``pairs(cfg)`` -> ``[(ProjectorConfig, backbone)]`` its runs read besides
      the config's own (None: only the config's own).
    - ``after_encode``: ``after_encode(store_root, dataset, projector, cfg, shard)``, what
      ``extract`` fills besides features for each job (e.g. segmentation's location cache).
    - ``encode_with``: ``encode_with(store_root, dataset, projector, cfg)`` -> what
      ``extract`` keeps from the render that makes the images (passed to
      :func:`pointcalip.extract.encode_missing` as ``locations``; segmentation's location
      cache), or None.
    - ``compact_stores``: whether its runs read ``tokens8`` and ``logits`` stores.
    """

    config: str
    run: str
    datasets: str
    pairs: Optional[str] = None
    after_encode: Optional[str] = None
    encode_with: Optional[str] = None
    compact_stores: bool = False

    def config_class(self):
        return resolve(self.config)


def task_entries() -> List[Entry]:
    """Every registered task, in command order (``pointcalip --help``'s)."""
    return sorted(TASKS.entries(), key=lambda entry: entry.meta.get("order", 0))


def task_names() -> List[str]:
    return [entry.name for entry in task_entries()]


def task_of(cfg) -> Task:
    """The task a config object belongs to (its class's ``COMMAND``)."""
    return TASKS[type(cfg).COMMAND].target
