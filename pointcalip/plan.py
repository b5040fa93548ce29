"""What the runs of a config read from the feature store, as a list of encoding jobs.

``pointcalip extract`` encodes these jobs ahead of time (on several GPUs or machines, under
torchrun); the command the config belongs to then finds every feature it needs stored:

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

``splits`` picks among ``test``, ``val`` (the TRAIN clouds above) and ``train`` (the whole
TRAIN split, e.g. to add seeds or shots later without encoding; it includes ``val``'s TRAIN
clouds, which are then not listed separately).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

from .config import ProjectorConfig, RunConfig

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


def _datasets(cfg: RunConfig, splits: Sequence[str]) -> List[tuple]:
    """(label, dataset, rows) of the clouds ``cfg``'s command reads, among ``splits``."""
    from .benchmark.config import BenchmarkConfig
    from .fewshot.config import FewShotConfig
    from .segmentation.config import SegmentConfig
    from .pipeline import load_data, validation_rows

    if isinstance(cfg, BenchmarkConfig) and cfg.table:      # each dataset of a table
        from .benchmark.table import table_jobs
        return table_jobs(cfg, splits)
    if isinstance(cfg, SegmentConfig):                       # ShapeNetPart TEST and VAL
        from .segmentation.run import load_segment_splits
        _, test, tuning = load_segment_splits(cfg)
        return ([("test", test, None)] if "test" in splits else []) + (
            [("val", tuning, None)] if "val" in splits and tuning is not test else [])

    tune_on_train = isinstance(cfg, FewShotConfig) or cfg.tune.split == "val"
    data = load_data(cfg.data, cfg.download,
                     train="train" in splits or ("val" in splits and tune_on_train))
    test, train = data.test, data.train
    out = [("test", test, None)] if "test" in splits else []
    if "val" in splits and tune_on_train:
        if isinstance(cfg, FewShotConfig):
            from .fewshot.stages import train_rows

            picked = train_rows(cfg, train, None if test is None else test.labels)   # as `fewshot` refuses
            if "train" not in splits:
                out.append(("val", train, picked.rows))
            if picked.augmented is not None:
                out.append(("val (copies)", picked.augmented, picked.bank_rows))
        elif "train" not in splits:    # the tuning set of `pointcalip zeroshot` (load_splits)
            out.append(("val", train, validation_rows(train, cfg.tune)))
    if "train" in splits:
        out.append(("train", train, None))
    if isinstance(cfg, BenchmarkConfig) and "test" in splits:    # ModelNet40-C's sets
        from .benchmark.robustness import benchmark_jobs
        out += benchmark_jobs(cfg, test.classnames)
    return out


def _pairs(cfg: RunConfig) -> List[tuple]:
    """(projector, backbone) pairs whose features ``cfg``'s command reads, main pair first."""
    from .ablation.config import AblationConfig

    pairs = [(cfg.projector, cfg.backbone)]
    if isinstance(cfg, AblationConfig):
        if "projectors" in cfg.studies:
            pairs += [(p, cfg.backbone) for p in cfg.projectors_study.projectors]
        if "backbones" in cfg.studies:
            pairs += [(cfg.projector, b) for b in cfg.backbones_study.backbones]
    unique, seen = [], set()
    for projector, backbone in pairs:
        key = (repr(sorted(projector.build().settings.items())), backbone)
        if key not in seen:
            seen.add(key)
            unique.append((projector, backbone))
    return unique


def feature_jobs(cfg: RunConfig, splits: Sequence[str] = ("test", "val")) -> List[Job]:
    """Every encoding job the runs of ``cfg`` (any config `pointcalip extract` takes) need
    among ``splits`` (see the module doc), grouped by backbone so each is loaded once."""
    bad = [s for s in splits if s not in SPLITS]
    if bad or not splits:
        raise ValueError(f"splits must be among {', '.join(SPLITS)}, got {list(splits)}")
    datasets = _datasets(cfg, splits)
    pairs = sorted(_pairs(cfg), key=lambda pair: pair[1] != cfg.backbone)   # stable: main first
    return [Job(label, dataset, rows, projector, backbone)
            for projector, backbone in pairs for label, dataset, rows in datasets]
