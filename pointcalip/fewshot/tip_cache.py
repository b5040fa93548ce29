"""Tip-Adapter's training-free cache over the K-shot clouds (docs/few-shot-methods.md#tip-adapter).

    f      = normalise(concat_v(w_v F_v))                      cloud descriptor [V*C]
    logits = base + alpha * exp(-beta * (1 - f @ keys^T)) @ values

keys: the shots' descriptors [M, V*C]; values: their one-hot labels [M, K]; base: zero-shot
logits (PointCLIP's, or CALIP's with its searched betas). Tip-Adapter-F makes the keys
learnable (:func:`train_tip_f`). alpha and beta are searched on validation
(:func:`search_alpha_beta`).

Scale. Our base logits are ``(100 / sqrt(V)) sum_v w_v F_v . t``; Tip-Adapter's, on the
descriptor f and the tiled, normalised text, are ``100 f . normalise(tile_V(t))``, which is
ours divided by ``||w||_2`` (the norm of the view weights; sqrt(V) when they are all 1). So
our alpha is Tip-Adapter's times ``||w||_2`` (:func:`default_grids` scales its alpha grid so),
and the same (alpha, beta) give the same predictions. Tip-Adapter-F trains on Tip-Adapter's
logits, ``(base + alpha * cache) / ||w||_2``, with Tip-Adapter's optimiser (AdamW, eps 1e-4):
the loss, gradient and key update of the published ``run_tip_adapter_F`` on the same
features, whatever the views and view weights (tests/test_tip_official.py).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..calip import ViewWeights, view_weight_tensor
from .train import write_curves
from ..core.words import count

if TYPE_CHECKING:                     # a recipe: epochs, batch_size, optimizer, lr, weight_decay,
    from .recipe import TrainConfig   # momentum, label_smoothing, schedule, patience

# Tip-Adapter's search grids start at 0.1; its default maxima are 7 for beta and 3 for alpha
# (200 x 20 values). alpha is multiplied by ||w||_2 (sqrt(V) for unit view weights) because
# our base logits are ||w||_2 times the concatenated-feature logits Tip-Adapter adds its cache to.
GRID_START = 0.1
#: Tip-Adapter-F's AdamW epsilon (its run_tip_adapter_F; torch's default is 1e-8). The key
#: gradients are small (~1e-4), so eps changes the size and direction of every update.
TIP_F_EPS = 1e-4


def tip_scale(view_weights: ViewWeights, num_views: int) -> float:
    """||w||_2 of the view weights (None: V ones, sqrt(V)): our base logits over Tip-Adapter's."""
    return float(view_weight_tensor(view_weights, num_views, torch.float64).norm())


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
                             f"{tuple(keys.shape)} and {count(labels.numel(), 'label')}")
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
                  beta_max: float = 7.0, beta_steps: int = 200, view_weights: ViewWeights = None
                  ) -> Tuple[torch.Tensor, torch.Tensor]:
    """(alphas, betas) searched for a base over ``num_views`` views with ``view_weights``:
    Tip-Adapter's grids, alpha scaled by ||w||_2 (sqrt(V) when the weights are None or 1), so
    that each of our alphas is one of Tip-Adapter's on its own logit scale."""
    return (grid(GRID_START, alpha_max, alpha_steps) * tip_scale(view_weights, num_views),
            grid(GRID_START, beta_max, beta_steps))


# ------------------------------------------------------------------------------ Tip-Adapter-F

def tip_f_logits(cache: TipCache, feats: torch.Tensor, base_logits: torch.Tensor, alpha: float,
                 beta: float, scale: float) -> torch.Tensor:
    """Tip-Adapter's logits [B, K]: ours (``cache.logits``) divided by ``scale`` = ||w||_2,
    i.e. ``base / ||w|| + (alpha / ||w||) * cache`` with our alpha (Tip-Adapter's times ||w||)."""
    return cache.logits(feats, base_logits, alpha, beta) / scale


def tip_f_loss(cache: TipCache, feats: torch.Tensor, base_logits: torch.Tensor, labels: torch.Tensor,
               alpha: float, beta: float, scale: float, label_smoothing: float = 0.0
               ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Tip-Adapter-F's objective on one batch: cross-entropy of :func:`tip_f_logits`
    (plain, as published, unless ``label_smoothing``). -> (loss, logits)."""
    logits = tip_f_logits(cache, feats, base_logits, alpha, beta, scale)
    return F.cross_entropy(logits, labels, label_smoothing=label_smoothing), logits


def tip_f_optimizer(params, recipe: "TrainConfig") -> torch.optim.Optimizer:
    """Tip-Adapter-F's optimiser: AdamW(lr, weight_decay, eps=1e-4) (SGD with momentum when
    the recipe asks for ``sgd``)."""
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum,
                               weight_decay=recipe.weight_decay)
    return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay, eps=TIP_F_EPS)


@dataclass
class TipFFit:
    """What :func:`train_tip_f` did (the fields of ``fewshot.train.FitResult``) and the kept,
    best-epoch keys [M, D]."""

    best_epoch: int
    best_val_accuracy: float          # percent
    epochs_run: int
    seconds: float
    curves: List[dict]
    keys: torch.Tensor


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 in percent, from the count of hits (as Tip-Adapter's cls_acc: 39 of 40 is 97.5)."""
    return 100.0 * int((logits.argmax(-1) == labels).sum()) / max(len(labels), 1)


def train_tip_f(cache: TipCache, feats: torch.Tensor, base_logits: torch.Tensor, labels,
                val_feats: torch.Tensor, val_base: torch.Tensor, val_labels, alpha: float,
                beta: float, view_weights: ViewWeights, num_views: int, recipe: "TrainConfig",
                generator: torch.Generator, run_dir: Optional[Path] = None) -> TipFFit:
    """Train ``cache.keys`` as Tip-Adapter-F's ``run_tip_adapter_F`` does, on stored features.

    feats [S, D] (the shots' descriptors), base_logits [S, K] (ours), labels [S]; val_*
    likewise for validation. Each epoch shuffles the shots with ``generator`` into batches of
    ``recipe.batch_size``; every batch minimises :func:`tip_f_loss` (Tip-Adapter's logits at
    our (alpha, beta), i.e. divided by ||w||_2 of ``view_weights``) with
    :func:`tip_f_optimizer` and a cosine schedule over all steps (``recipe.schedule``). After
    each epoch the validation accuracy at (alpha, beta) is measured; the keys of the first
    best epoch are kept (as Tip-Adapter-F keeps its best epoch, which it picks on test; we pick
    on validation), written into ``cache`` and returned with one curve row per epoch (epoch,
    loss, train_accuracy, val_accuracy, lr), also written to ``run_dir/curves.csv`` when
    ``run_dir`` is given. ``recipe.patience`` stops early. No checkpoints: a rerun is cheap
    and, with the same generator, identical.
    """
    if not isinstance(cache.keys, nn.Parameter):
        raise ValueError("train_tip_f needs a TipCache built with learnable=True")
    device = cache.keys.device
    scale = tip_scale(view_weights, num_views)
    feats, base_logits = feats.float().to(device), base_logits.float().to(device)
    labels = torch.as_tensor(labels, dtype=torch.long).to(device)
    val_feats, val_base = val_feats.float().to(device), val_base.float().to(device)
    val_labels = torch.as_tensor(val_labels, dtype=torch.long).to(device)
    n = len(labels)
    steps = math.ceil(n / recipe.batch_size)
    optimizer = tip_f_optimizer([cache.keys], recipe)
    schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(recipe.epochs * steps, 1))
                if recipe.schedule == "cosine" else torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0))
    start = time.perf_counter()
    curves: List[dict] = []
    best_acc, best_epoch, best_keys = -1.0, 0, cache.keys.detach().clone()
    for epoch in range(1, recipe.epochs + 1):
        order = torch.randperm(n, generator=generator).to(device)
        total, hits = 0.0, 0
        for i in range(0, n, recipe.batch_size):
            idx = order[i:i + recipe.batch_size]
            loss, logits = tip_f_loss(cache, feats[idx], base_logits[idx], labels[idx], alpha, beta,
                                      scale, recipe.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(idx)
            hits += int((logits.argmax(-1) == labels[idx]).sum())
        with torch.no_grad():
            val_acc = _accuracy(cache.logits(val_feats, val_base, alpha, beta), val_labels)
        curves.append({"epoch": epoch, "loss": total / n, "train_accuracy": 100.0 * hits / n,
                       "val_accuracy": val_acc, "lr": schedule.get_last_lr()[0]})
        if val_acc > best_acc:
            best_acc, best_epoch, best_keys = val_acc, epoch, cache.keys.detach().clone()
        if recipe.patience and epoch - best_epoch >= recipe.patience:
            break
    with torch.no_grad():
        cache.keys.copy_(best_keys)
    if run_dir is not None:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        write_curves(curves, Path(run_dir) / "curves.csv")
    return TipFFit(best_epoch, best_acc, len(curves), time.perf_counter() - start, curves, best_keys)
