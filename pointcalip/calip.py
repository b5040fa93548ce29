"""CALIP's parameter-free attention (spec/calip.md section 2) and view aggregation (section 3).

Per image (= per view), with unit rows ``F_s`` [HW, C], ``F_t`` [K, C], ``F_v`` [C]::

    A     = 2 * F_s @ F_t^T                      [HW, K]
    F_t^a = softmax(A, over HW)^T @ F_s          [K, C]
    F_s^a = softmax(A, over K) @ F_t             [HW, C]
    F_v^a = mean_HW(F_s^a) + max_HW(F_s^a)       [C]
    l0 = 100 F_v F_t^T,  l1 = 100 F_v F_t^a^T,  l2 = 100 F_v^a F_t^T

No re-normalisation. ``l1`` is computed as ``100 * softmax_HW(A)^T @ (F_s F_v)``, which is the
same product re-associated, so that no [N, K, C] tensor is formed.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

import torch

LOGIT_SCALE = 100.0


def calip_logits(global_feats: torch.Tensor, spatial: torch.Tensor, text: torch.Tensor,
                 temperature: float = 0.5, chunk_size: Optional[int] = 4096
                 ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """global_feats: [N, C], spatial: [N, HW, C], text: [K, C] (unit rows)
    -> (l0, l1, l2), each [N, K] float32, already x100.

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
    text = text.float()
    step = chunk_size or max(n, 1)
    outs = [[], [], []]
    for start in range(0, n, step):
        g = global_feats[start:start + step].to(text.device, torch.float32)
        s = spatial[start:start + step].to(text.device, torch.float32)
        a = torch.einsum("nhc,kc->nhk", s, text) / temperature            # [n, HW, K]
        over_hw = torch.softmax(a, dim=1)
        over_k = torch.softmax(a, dim=2)
        sv = torch.einsum("nhc,nc->nh", s, g)                               # [n, HW] = F_s F_v
        l0 = g @ text.T
        l1 = torch.einsum("nhk,nh->nk", over_hw, sv)                        # F_v F_t^a^T
        fsa = torch.einsum("nhk,kc->nhc", over_k, text)                     # [n, HW, C]
        fva = fsa.mean(dim=1) + fsa.amax(dim=1)                             # [n, C]
        l2 = fva @ text.T
        for out, logit in zip(outs, (l0, l1, l2)):
            out.append(LOGIT_SCALE * logit)
    if not outs[0]:
        empty = torch.zeros(0, text.shape[0], device=text.device)
        return empty, empty.clone(), empty.clone()
    return tuple(torch.cat(o) for o in outs)  # type: ignore[return-value]


def _weights(view_weights: Union[None, Sequence[float], torch.Tensor], num_views: int,
             like: torch.Tensor) -> torch.Tensor:
    if view_weights is None:
        return torch.ones(num_views, dtype=like.dtype, device=like.device)
    w = torch.as_tensor(view_weights, dtype=like.dtype, device=like.device).flatten()
    if w.numel() != num_views:
        raise ValueError(f"view_weights has {w.numel()} values but the logits have "
                         f"{num_views} views")
    return w


def aggregate_views(l0: torch.Tensor, l1: torch.Tensor, l2: torch.Tensor,
                    beta2: float = 0.0, beta3: float = 0.0,
                    view_weights: Union[None, Sequence[float], torch.Tensor] = None
                    ) -> torch.Tensor:
    """l0, l1, l2: [B, V, K] per-view logits -> [B, K] shape logits
    ``(1 / sqrt(V)) * sum_v w_v * (l0_v + beta2 * l1_v + beta3 * l2_v)`` (w default 1).
    Select a view subset by slicing the V axis first; V is then the subset's size."""
    if l0.dim() != 3 or l0.shape != l1.shape or l0.shape != l2.shape:
        raise ValueError(f"aggregate_views expects three [B, V, K] tensors, got "
                         f"{tuple(l0.shape)}, {tuple(l1.shape)}, {tuple(l2.shape)}")
    v = l0.shape[1]
    w = _weights(view_weights, v, l0)
    per_view = l0 + beta2 * l1 + beta3 * l2
    return torch.einsum("bvk,v->bk", per_view, w) / math.sqrt(v)
