"""A training recipe, the config section every method that trains carries (``<method>.train``).

Its own module, free of torch, so that method modules can declare their config sections
without importing the few-shot config (which is built from them) or torch.
"""
from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Optional

from ..config import Section, non_negative, positive, ruled


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
    # "uniform": torch's (the true class keeps 1 - s + s/K); "others": s spread over the K - 1
    # other classes only (DGCNN's smooth_loss, which PointCLIP's adapter trains with)
    smoothing: typing.Literal["uniform", "others"] = "uniform"
    schedule: typing.Literal["cosine", "constant"] = "cosine"
    # the schedule advances after every batch ("step") or after every epoch ("epoch", Dassl's)
    schedule_unit: typing.Literal["step", "epoch"] = "step"
    # the first warmup_epochs epochs run at warmup_lr (Dassl's constant warm-up); the schedule
    # then starts from lr
    warmup_epochs: int = non_negative(0)
    warmup_lr: float = positive(1e-5)
    patience: Optional[int] = positive(None)
