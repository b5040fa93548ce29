"""`pointcalip fewshot` configuration: the shared sections plus one section per method.

The defaults here equal configs/fewshot_defaults.yaml (a test checks it), where every
method's recipe and budget is written out for users to read and override.
"""
from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import ClassVar, List, Optional, Union

from ..config import (ConfigError, ProjectorConfig, RunConfig, Section, non_negative, positive,
                      ruled)

METHODS = ("zeroshot", "tip", "tip_f", "adapter", "calip_fs")


@dataclass
class TrainConfig(Section):
    """A training recipe: optimiser, schedule, budget. The model kept is the epoch with the
    best validation accuracy (the first of equals); ``patience`` stops after that many epochs
    without a better one (null: train every epoch)."""

    epochs: int = positive(50)
    batch_size: int = positive(32)
    optimizer: typing.Literal["adamw", "sgd"] = "adamw"
    lr: float = positive(1e-3)
    weight_decay: float = non_negative(0.0)
    momentum: float = non_negative(0.9)                 # sgd only
    label_smoothing: float = ruled(0.2, lambda v: 0 <= v < 1, "a number in [0, 1)")
    schedule: typing.Literal["cosine", "constant"] = "cosine"
    patience: Optional[int] = positive(None)


@dataclass
class CalipFSConfig(Section):
    """CALIP-FS: rank null = full-rank projections, or r for I + U V^T."""

    rank: Optional[int] = positive(16)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=50, batch_size=32, optimizer="adamw", lr=1e-3, weight_decay=1e-4,
        label_smoothing=0.2))


@dataclass
class AdapterConfig(Section):
    """PointCLIP's inter-view adapter, its published recipe. ``checkpoint``: evaluate a
    released ``model-best.pth.tar`` instead of training."""

    ratio: float = ruled(0.6, lambda v: 0 <= v <= 1, "a number in [0, 1]")
    fusion_init: float = 0.5
    dropout: float = ruled(0.075, lambda v: 0 <= v < 1, "a number in [0, 1)")
    checkpoint: Optional[str] = None
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=250, batch_size=32, optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=5e-4,
        label_smoothing=0.2))


@dataclass
class TipConfig(Section):
    """Tip-Adapter's cache on top of zero-shot ``base`` logits; alpha and beta searched on
    validation over ``0.1 + i (max - 0.1) / steps`` (Tip-Adapter's grids and its default
    maxima; alpha multiplied by sqrt(V), see fewshot/tip.py)."""

    base: typing.Literal["pointclip", "calip"] = "calip"
    alpha_max: float = positive(3.0)
    alpha_steps: int = positive(20)
    beta_max: float = positive(7.0)
    beta_steps: int = positive(200)


@dataclass
class TipFConfig(Section):
    """Tip-Adapter-F: the cache keys trained (published: AdamW lr 1e-3, cosine, 20 epochs,
    plain cross-entropy), alpha and beta searched on validation after training."""

    base: typing.Literal["pointclip", "calip"] = "calip"
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=20, batch_size=256, optimizer="adamw", lr=1e-3, weight_decay=0.01,
        label_smoothing=0.0))


@dataclass
class AugmentConfig(Section):
    """A bank of ``copies`` augmented copies of each shot (per-axis scale in ``scale``, per-axis
    shift within +-``shift``, point shuffle), encoded once; each epoch trains on one of them
    or the original, drawn per shot. 0 copies: no augmentation."""

    copies: int = non_negative(0)
    seed: int = non_negative(0)
    scale: List[float] = field(default_factory=lambda: [2 / 3, 3 / 2])
    shift: float = non_negative(0.2)

    def validate(self) -> None:
        if len(self.scale) != 2 or not 0 < self.scale[0] <= self.scale[1]:
            raise ConfigError("scale", f"must be [low, high] with 0 < low <= high, got {self.scale}")


@dataclass
class FewShotConfig(RunConfig):
    """`pointcalip fewshot`: every method at every shot count and seed, honestly selected."""

    COMMAND: ClassVar[str] = "fewshot"

    projector: ProjectorConfig = field(default_factory=lambda: ProjectorConfig("pointclip", {"views": "fewshot"}))
    templates: Union[str, List[str]] = "pointclip_fewshot"
    shots: List[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    seeds: List[int] = field(default_factory=lambda: [1, 2, 3])
    methods: List[str] = field(default_factory=lambda: list(METHODS))
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    calip_fs: CalipFSConfig = field(default_factory=CalipFSConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    tip: TipConfig = field(default_factory=TipConfig)
    tip_f: TipFConfig = field(default_factory=TipFConfig)
    name: str = "fewshot"

    def validate(self) -> None:
        super().validate()
        for key, values, low in (("shots", self.shots, 1), ("seeds", self.seeds, 0)):
            if not values or min(values) < low or len(set(values)) != len(values):
                raise ConfigError(key, f"must be a list of distinct integers >= {low}, got {values}")
        unknown = [m for m in self.methods if m not in METHODS]
        if not self.methods or unknown:
            raise ConfigError("methods", f"must list methods among {', '.join(METHODS)} (or "
                                         f"`all`), got {self.methods}")
        if self.tune.split != "val":
            raise ConfigError("tune.split", "must be 'val': few-shot selection and searches use a "
                                            "validation part of TRAIN, never the test split")
