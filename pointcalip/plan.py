"""What the runs of a config read from the feature store, as a list of encoding jobs.

``pointcalip extract`` encodes these jobs ahead of time (on several GPUs or machines, under
torchrun); the command the config belongs to then finds every feature it needs stored. Each
task declares what it reads (``datasets`` and ``pairs`` of its entry in
:data:`pointcalip.tasks.TASKS`); the shipped tasks read:

- ``zeroshot`` and ``ablate`` configs: the TEST split and the tuning set (the validation
  subset of TRAIN; nothing more when tuning on test), under the config's projector and
  backbone; for ``ablate`` also under every projector of the projectors study and every
  backbone of the backbones study, when those studies are listed.
- ``fewshot`` configs: the TEST split, and from TRAIN the validation subset, every seed's
  shots and, for methods that train on them, the shots' augmented copies.
- ``benchmark`` table configs (``datasets:``, e.g. openshape): per dataset, its reported
  clouds and its tuning set (:func:`pointcalip.benchmark.table.table_jobs`).
- ``segment`` configs: ShapeNetPart's TEST split and its official VAL split (the tuning
  split; nothing more with ``tune.split: test``); ``train`` adds nothing (segment reads no
  TRAIN). `pointcalip extract` also fills their location cache.
- ``benchmark`` robustness configs (``benchmark:``, e.g. modelnet40c): as ``zeroshot`` (clean
  TEST and the clean tuning set), and with ``test`` every evaluated set of the benchmark
  (``original`` and each corruption x severity, the rows ``limit`` keeps).
- ``adapt`` configs: the clean tuning set and, with ``test``, the streamed sets: every set of
  the benchmark (the rows ``limit`` keeps; clean TEST is not streamed then), else clean TEST.

``splits`` picks among ``test``, ``val`` (the TRAIN clouds above) and ``train`` (the whole
TRAIN split, e.g. to add seeds or shots later without encoding; it includes ``val``'s TRAIN
clouds, which are then not listed separately).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import numpy as np

from .config import ProjectorConfig, RunConfig
from .tasks import Task, resolve, task_of

#: the choices of `pointcalip extract --splits`
SPLITS = ("test", "val", "train")


@dataclass
class Job:
    """Encode ``rows`` of ``dataset`` (None: all) under ``projector`` and ``backbone``."""

    label: str                  # e.g. "test", "val", "val (copies)"
    dataset: object             # an H5CloudDataset or AugmentedSplit
    rows: Optional[np.ndarray]
    projector: ProjectorConfig
    backbone: str

    def __len__(self) -> int:
        return len(self.dataset) if self.rows is None else len(self.rows)


def split_datasets(cfg: RunConfig, splits: Sequence[str], tune_on_train: bool,
                   val_sets: Callable[[object, object, bool], List[tuple]]) -> List[tuple]:
    """(label, dataset, rows) of a classification config's TEST and TRAIN clouds among
    ``splits``: TEST whole; with ``val`` (when ``tune_on_train``) what ``val_sets(train, test,
    whole_train)`` lists of TRAIN (``whole_train``: ``train`` is asked for too, so TRAIN rows
    are listed once, whole); with ``train`` the whole TRAIN split. The tasks' ``datasets``
    functions build on this."""
    from .pipeline import load_data

    data = load_data(cfg.data, cfg.download,
                     train="train" in splits or ("val" in splits and tune_on_train))
    test, train = data.test, data.train
    out = [("test", test, None)] if "test" in splits else []
    if "val" in splits and tune_on_train:
        out += val_sets(train, test, "train" in splits)
    if "train" in splits:
        out.append(("train", train, None))
    return out


def tuned_datasets(cfg: RunConfig, splits: Sequence[str]) -> List[tuple]:
    """(label, dataset, rows) a zero-shot style run reads: TEST and its tuning set (the
    validation rows of TRAIN, as :func:`pointcalip.pipeline.load_splits` picks them; nothing
    more when tuning on test). The ``datasets`` of ``zeroshot`` and ``ablate``."""
    from .pipeline import validation_rows

    def val(train, test, whole_train):
        return [] if whole_train else [("val", train, validation_rows(train, cfg.tune))]

    return split_datasets(cfg, splits, cfg.tune.split == "val", val)


def _pairs(cfg: RunConfig, task: Task) -> List[tuple]:
    """(projector, backbone) pairs whose features ``cfg``'s runs read, main pair first."""
    pairs = [(cfg.projector, cfg.backbone)]
    if task.pairs:
        pairs += resolve(task.pairs)(cfg)
    unique, seen = [], set()
    for projector, backbone in pairs:
        key = (repr(sorted(projector.build().settings.items())), backbone)
        if key not in seen:
            seen.add(key)
            unique.append((projector, backbone))
    return unique


def feature_jobs(cfg: RunConfig, splits: Sequence[str] = ("test", "val")) -> List[Job]:
    """Every encoding job the runs of ``cfg`` (any config `pointcalip extract` takes) need
    among ``splits`` (see the module doc), grouped by backbone so each is loaded once. What
    a task reads is what its entry in :data:`pointcalip.tasks.TASKS` declares."""
    bad = [s for s in splits if s not in SPLITS]
    if bad or not splits:
        raise ValueError(f"splits must be among {', '.join(SPLITS)}, got {list(splits)}")
    task = task_of(cfg)
    datasets = resolve(task.datasets)(cfg, splits)
    pairs = sorted(_pairs(cfg, task), key=lambda pair: pair[1] != cfg.backbone)   # stable: main first
    return [Job(label, dataset, rows, projector, backbone)
            for projector, backbone in pairs for label, dataset, rows in datasets]
