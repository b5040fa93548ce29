"""Per-cloud k-means centres of CALIP's spatial tokens, the local cache's keys
(docs/test-time-cache.md; Point-Cache's "hierarchical" cache).

    tokens  = normalise(spatial)  pooled over views     [B, V*HW, C]
    centres = k-means(tokens, m)  each normalised       [B, m, C]
    query   = mean(centres)       (not renormalised; OnlineCache computes it)

Lloyd's algorithm on squared Euclidean distance, batched over clouds: the initial centres
are the tokens at ``m`` distinct positions drawn once from ``seed`` (the same positions for
every cloud, so a cloud's centres never depend on the stream order or on the batch it came
in); at most ``iterations`` rounds, stopping early once no assignment changes; an empty
cluster keeps its previous centre. (Point-Cache runs scikit-learn's KMeans with k-means++
and ``random_state=1``; we have no scikit-learn dependency: a seeded plain init.)
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

#: Lloyd rounds at most (scikit-learn, which Point-Cache runs, stops on a tolerance)
ITERATIONS = 10


def init_positions(num_tokens: int, m: int, seed: int) -> np.ndarray:
    """The ``m`` distinct token positions in [0, num_tokens) the centres start from."""
    if not 1 <= m <= num_tokens:
        raise ValueError(f"k-means needs 1 <= m <= tokens per cloud ({num_tokens}), got m={m}")
    rng = np.random.Generator(np.random.PCG64([int(seed), 29]))
    return np.sort(rng.choice(num_tokens, size=m, replace=False))


@torch.no_grad()
def kmeans_centres(spatial: torch.Tensor, m: int = 3, seed: int = 0,
                   iterations: int = ITERATIONS) -> torch.Tensor:
    """spatial [B, V, HW, C] (or [B, T, C]) -> unit centres [B, m, C] float32."""
    tokens = spatial.float()
    if tokens.dim() == 4:
        tokens = tokens.flatten(1, 2)
    if tokens.dim() != 3:
        raise ValueError(f"spatial tokens must be [B, V, HW, C] or [B, T, C], got "
                         f"{tuple(spatial.shape)}")
    tokens = F.normalize(tokens, dim=-1)
    start = torch.as_tensor(init_positions(tokens.shape[1], m, seed), device=tokens.device)
    centres = tokens[:, start].clone()                                   # [B, m, C]
    assign = None
    for _ in range(iterations):
        # |x - c|^2 = |x|^2 - 2 x.c + |c|^2 and |x| = 1: the nearest minimises |c|^2 - 2 x.c
        cost = centres.pow(2).sum(-1).unsqueeze(1) - 2.0 * tokens @ centres.transpose(1, 2)
        new = cost.argmin(-1)                                             # [B, T]
        if assign is not None and torch.equal(new, assign):
            break
        assign = new
        onehot = F.one_hot(assign, m).to(tokens.dtype)                    # [B, T, m]
        counts = onehot.sum(1)                                            # [B, m]
        sums = onehot.transpose(1, 2) @ tokens                            # [B, m, C]
        filled = counts > 0
        centres = torch.where(filled.unsqueeze(-1), sums / counts.clamp_min(1).unsqueeze(-1),
                              centres)
    return F.normalize(centres, dim=-1)
