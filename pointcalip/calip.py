"""CALIP's parameter-free attention (docs/calip.md#the-attention-per-view) and view
aggregation (docs/calip.md#views-to-shape-logits).

Per image (= per view), with unit rows ``F_s`` [HW, C], ``F_t`` [K, C], ``F_v`` [C]::

    A     = 2 * F_s @ F_t^T                      [HW, K]
    F_t^a = softmax(A, over HW)^T @ F_s          [K, C]
    F_s^a = softmax(A, over K) @ F_t             [HW, C]
    F_v^a = mean_HW(F_s^a) + max_HW(F_s^a)       [C]
    l0 = 100 F_v F_t^T,  l1 = 100 F_v F_t^a^T,  l2 = 100 F_v^a F_t^T

No re-normalisation. ``l1`` is computed as ``100 * softmax_HW(A)^T @ (F_s F_v)``, which is the
same product re-associated, so that no [N, K, C] tensor is formed.

Per cloud, ``logits = (1 / sqrt(V)) * sum_v w_v * (l0_v + beta2 * l1_v + beta3 * l2_v)``:
:func:`combine_view_logits` then :func:`weighted_view_sum`, with the view weights checked by
:func:`view_weight_tensor`. Everything that aggregates views (the CALIP head, the search,
PointCALIP) goes through these three.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

import torch
from .core.words import count

LOGIT_SCALE = 100.0

ViewWeights = Union[None, Sequence[float], torch.Tensor]


def calip_attention(spatial: torch.Tensor, text: torch.Tensor, temperature: float = 0.5
                    ) -> Tuple[torch.Tensor, torch.Tensor]:
    """spatial [n, HW, C], text [K, C] or [n, K, C] -> (softmax over HW, softmax over K) of
    ``A = F_s F_t^T / temperature``, each [n, HW, K]. The one place CALIP's attention is
    computed (classification here, dense logits in :mod:`pointcalip.dense_calip`)."""
    eq = "nhc,kc->nhk" if text.dim() == 2 else "nhc,nkc->nhk"
    a = torch.einsum(eq, spatial, text) / temperature
    return torch.softmax(a, dim=1), torch.softmax(a, dim=2)


def calip_logits(global_feats: torch.Tensor, spatial: torch.Tensor, text: torch.Tensor,
                 temperature: float = 0.5, chunk_size: Optional[int] = 4096
                 ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """global_feats: [N, C], spatial: [N, HW, C], text: [K, C] (unit rows)
    -> (l0, l1, l2), each [N, K] float32, already x100, on the features' device.

    ``temperature`` 0.5 gives CALIP's ``A = 2 F_s F_t^T``. Computed in float32 whatever the
    input dtype, in chunks of ``chunk_size`` images (None: all at once).
    """
    if global_feats.dim() != 2 or spatial.dim() != 3 or text.dim() != 2:
        raise ValueError(f"calip_logits expects global [N, C], spatial [N, HW, C], text [K, C]; "
                         f"got {tuple(global_feats.shape)}, {tuple(spatial.shape)}, "
                         f"{tuple(text.shape)}")
    n, c = global_feats.shape
    if spatial.shape[0] != n or spatial.shape[2] != c or text.shape[1] != c:
        raise ValueError(f"calip_logits: shapes do not match: global {tuple(global_feats.shape)}, "
                         f"spatial {tuple(spatial.shape)}, text {tuple(text.shape)}")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size}")
    device = global_feats.device
    text = text.to(device, torch.float32)
    step = chunk_size or max(n, 1)
    outs = [[], [], []]
    for start in range(0, n, step):
        g = global_feats[start:start + step].to(device, torch.float32)
        s = spatial[start:start + step].to(device, torch.float32)
        over_hw, over_k = calip_attention(s, text, temperature)            # [n, HW, K]
        sv = torch.einsum("nhc,nc->nh", s, g)                               # [n, HW] = F_s F_v
        l0 = g @ text.T
        l1 = torch.einsum("nhk,nh->nk", over_hw, sv)                        # F_v F_t^a^T
        fsa = torch.einsum("nhk,kc->nhc", over_k, text)                     # [n, HW, C]
        fva = fsa.mean(dim=1) + fsa.amax(dim=1)                             # [n, C]
        l2 = fva @ text.T
        for out, logit in zip(outs, (l0, l1, l2)):
            out.append(LOGIT_SCALE * logit)
    if not outs[0]:
        empty = torch.zeros(0, text.shape[0], device=device)
        return empty, empty.clone(), empty.clone()
    return tuple(torch.cat(o) for o in outs)  # type: ignore[return-value]


def view_weight_tensor(view_weights: ViewWeights, num_views: int,
                       dtype: torch.dtype = torch.float32,
                       device: Union[str, torch.device, None] = None) -> torch.Tensor:
    """The weights of ``num_views`` views as a [V] tensor (None: all ones). The one check of
    view weights: their count must match the views, and weights given as numbers must be
    finite (tensors, e.g. learned weights, are not read back from the device to check)."""
    if view_weights is None:
        return torch.ones(num_views, dtype=dtype, device=device)
    given_as_tensor = isinstance(view_weights, torch.Tensor)
    w = torch.as_tensor(view_weights, dtype=dtype, device=device).flatten()
    if w.numel() != num_views:
        raise ValueError(f"view_weights has {count(w.numel(), 'value')} but there are "
                         f"{count(num_views, 'view')}")
    if not given_as_tensor and not bool(torch.isfinite(w).all()):
        raise ValueError(f"view_weights must be finite numbers, got {w.tolist()}")
    return w


def combine_view_logits(l0: torch.Tensor, l1: torch.Tensor, l2: torch.Tensor,
                        beta2: Union[float, torch.Tensor], beta3: Union[float, torch.Tensor]
                        ) -> torch.Tensor:
    """Per-view CALIP logits ``l0 + beta2 * l1 + beta3 * l2`` (each [..., V, K])."""
    return l0 + beta2 * l1 + beta3 * l2


def weighted_view_sum(logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """logits [B, V, K], weights [V] -> [B, K] = ``(1 / sqrt(V)) * sum_v w_v * logits_v``;
    several weight vectors at once: weights [M, V] -> [M, B, K]."""
    scaled = weights.to(logits) / math.sqrt(logits.shape[1])   # scale V weights, not B x K sums
    return torch.einsum("...v,bvk->...bk", scaled, logits)


def aggregate_views(l0: torch.Tensor, l1: torch.Tensor, l2: torch.Tensor,
                    beta2: Union[float, torch.Tensor] = 0.0, beta3: Union[float, torch.Tensor] = 0.0,
                    view_weights: ViewWeights = None) -> torch.Tensor:
    """l0, l1, l2: [B, V, K] per-view logits -> [B, K] shape logits
    ``(1 / sqrt(V)) * sum_v w_v * (l0_v + beta2 * l1_v + beta3 * l2_v)`` (w default 1).
    Select a view subset by slicing the V axis first; V is then the subset's size."""
    if l0.dim() != 3 or l0.shape != l1.shape or l0.shape != l2.shape:
        raise ValueError(f"aggregate_views expects three [B, V, K] tensors, got "
                         f"{tuple(l0.shape)}, {tuple(l1.shape)}, {tuple(l2.shape)}")
    for name, beta in (("beta2", beta2), ("beta3", beta3)):
        if not isinstance(beta, torch.Tensor) and not math.isfinite(beta):
            raise ValueError(f"{name} must be a finite number, got {float(beta)}")
    w = view_weight_tensor(view_weights, l0.shape[1], l0.dtype, l0.device)
    return weighted_view_sum(combine_view_logits(l0, l1, l2, beta2, beta3), w)
