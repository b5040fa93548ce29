"""Dropout that draws its masks from a generator it is given, not from torch's global one.

:func:`~pointcalip.fewshot.train.fit` hands every :class:`SeededDropout` of a model a
generator seeded by (seed, epoch) (:func:`use_generator`), so training sets no global state.
On the CPU the masks are those ``torch.nn.functional.dropout`` draws from the global generator
in the same state (``bernoulli(1 - p)`` on a tensor like the input, divided by ``1 - p``), so
the numbers equal those of ``torch.manual_seed(s)`` followed by ``nn.Dropout``.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn


class SeededDropout(nn.Dropout):
    """``nn.Dropout(p)`` whose masks come from ``self.generator`` while it is set (on the
    input's device), and from torch's global generator otherwise. No parameters: a model's
    state dict is the same as with ``nn.Dropout``."""

    generator: Optional[torch.Generator] = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.generator is None or not self.training or not 0 < self.p < 1 or x.numel() == 0:
            return super().forward(x)
        keep = torch.empty_like(x).bernoulli_(1 - self.p, generator=self.generator)
        return x * keep.div_(1 - self.p)


def use_generator(model: nn.Module, generator: Optional[torch.Generator]) -> None:
    """Every :class:`SeededDropout` of ``model`` draws from ``generator`` (None: the global one)."""
    for module in model.modules():
        if isinstance(module, SeededDropout):
            module.generator = generator
