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
    schedule: typing.Literal["cosine", "constant"] = "cosine"
    patience: Optional[int] = positive(None)
