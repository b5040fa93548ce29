"""What an engine gets of an image tower (:class:`Tower`): a function computing the tokens and
what it needs around it, never the backbone that owns them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # pragma: no cover - a light module: engines are checked without torch
    import torch
    from torch import nn

Tokens = Callable[["torch.Tensor"], "torch.Tensor"]


@dataclass(frozen=True)
class Tower:
    """What an engine gets of an image tower. ``tokens``: model input [N, 3, S, S] -> tokens
    [N, 1 + HW, C] (every token, not normalised); ``probe(n, seed)``: a seeded model input
    [n, 3, S, S]; ``weights``: the module whose parameters ``tokens`` reads (an exported graph
    holds them); ``name`` (logs, graph file names) and ``key`` (what identifies the weights and
    input size: cached graphs are found by it); ``device``, ``precision`` ("float32", ...) and
    ``nbytes`` (bytes of the image tower's weights and buffers)."""

    name: str
    key: str
    tokens: Tokens
    probe: Callable[[int, int], torch.Tensor]
    weights: nn.Module
    device: torch.device
    precision: str
    nbytes: int
