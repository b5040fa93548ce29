"""Tip-Adapter's training-free cache over the K-shot clouds (spec/calip_fs.md section 2).

    f      = normalise(concat_v(w_v F_v))                      cloud descriptor [V*C]
    logits = base + alpha * exp(-beta * (1 - f @ keys^T)) @ values

keys: the shots' descriptors [M, V*C]; values: their one-hot labels [M, K]; base: zero-shot
logits (PointCLIP's, or CALIP's with its searched betas). Tip-Adapter-F makes the keys
learnable. alpha and beta are searched on validation (:func:`search_alpha_beta`).
"""
from __future__ import annotations

import math
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..calip import ViewWeights, view_weight_tensor

# Tip-Adapter's search grids start at 0.1; its default maxima are 7 for beta and 3 for alpha
# (200 x 20 values). alpha is multiplied by sqrt(V) because our base logits are sqrt(V) times
# the concatenated-feature logits Tip-Adapter adds its cache to.
GRID_START = 0.1


def descriptors(global_feats: torch.Tensor, view_weights: ViewWeights = None) -> torch.Tensor:
    """global [B, V, C] (unit rows) -> normalise(concat_v(w_v F_v)) [B, V*C]."""
    w = view_weight_tensor(view_weights, global_feats.shape[1], torch.float32, global_feats.device)
    return F.normalize((global_feats.float() * w.view(1, -1, 1)).flatten(1), dim=-1)


class TipCache(nn.Module):
    """keys [M, D] (unit rows), labels [M] in [0, num_classes). ``learnable``: the keys are a
    parameter (Tip-Adapter-F), else a buffer."""

    def __init__(self, keys: torch.Tensor, labels, num_classes: int, learnable: bool = False):
        super().__init__()
        labels = torch.as_tensor(labels, dtype=torch.long).flatten()
        if keys.dim() != 2 or keys.shape[0] != labels.numel() or labels.numel() == 0:
            raise ValueError(f"TipCache needs keys [M, D] and M labels, got keys "
                             f"{tuple(keys.shape)} and {labels.numel()} labels")
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ValueError(f"labels must lie in [0, {num_classes}), got {labels.min()}..{labels.max()}")
        keys = keys.detach().float().clone()
        if learnable:
            self.keys = nn.Parameter(keys)
        else:
            self.register_buffer("keys", keys)
        self.register_buffer("values", F.one_hot(labels, num_classes).float())

    def affinity(self, feats: torch.Tensor) -> torch.Tensor:
        """feats [B, D] -> f @ keys^T [B, M]."""
        return feats.float() @ self.keys.T

    def cache_logits(self, feats: torch.Tensor, beta: float) -> torch.Tensor:
        """feats [B, D] -> exp(-beta * (1 - affinity)) @ values [B, K]."""
        return torch.exp(-beta * (1.0 - self.affinity(feats))) @ self.values

    def logits(self, feats: torch.Tensor, base_logits: torch.Tensor, alpha: float = 1.0,
               beta: float = 5.5) -> torch.Tensor:
        """feats [B, D], base_logits [B, K] -> [B, K]."""
        return base_logits + alpha * self.cache_logits(feats, beta)


def grid(low: float, high: float, steps: int) -> torch.Tensor:
    """Tip-Adapter's grid ``low + i (high - low) / steps``, i = 0 .. steps - 1."""
    return low + torch.arange(steps, dtype=torch.float64) * (high - low) / steps


def search_alpha_beta(cache: TipCache, feats: torch.Tensor, base_logits: torch.Tensor, labels,
                      alphas: Sequence[float], betas: Sequence[float]) -> Tuple[float, float, float]:
    """The (alpha, beta) with the best accuracy of ``cache.logits`` on a validation set
    (feats [N, D], base_logits [N, K], labels [N]); ties go to the first beta, then the first
    alpha. -> (alpha, beta, accuracy in [0, 1])."""
    labels = torch.as_tensor(labels, dtype=torch.long, device=feats.device)
    alphas_t = torch.as_tensor(list(alphas), dtype=torch.float32, device=feats.device)
    with torch.no_grad():
        affinity = cache.affinity(feats)
        best = (-1.0, 0.0, 0.0)
        for beta in betas:
            cached = torch.exp(-float(beta) * (1.0 - affinity)) @ cache.values        # [N, K]
            logits = base_logits.float()[None] + alphas_t.view(-1, 1, 1) * cached[None]
            acc = (logits.argmax(-1) == labels).float().mean(dim=1)                  # [A]
            i = int(acc.argmax())
            if float(acc[i]) > best[0]:
                best = (float(acc[i]), float(alphas_t[i]), float(beta))
    return best[1], best[2], best[0]


def default_grids(num_views: int, alpha_max: float = 3.0, alpha_steps: int = 20,
                  beta_max: float = 7.0, beta_steps: int = 200) -> Tuple[torch.Tensor, torch.Tensor]:
    """(alphas, betas) searched for a base over ``num_views`` views: Tip-Adapter's grids,
    alpha scaled by sqrt(V)."""
    return (grid(GRID_START, alpha_max, alpha_steps) * math.sqrt(num_views),
            grid(GRID_START, beta_max, beta_steps))
