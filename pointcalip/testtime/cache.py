"""The online test-time cache over zero-shot logits (docs/test-time-cache.md).

Per cloud, in stream order, with base logits ``z`` [K] (``scale`` x the ``100 cos`` logits
TDA's constants assume), descriptor ``f`` [D] (unit) and, for the local cache, the cloud's
k-means centres ``u`` [m, C] (:mod:`.local`)::

    c = argmax z;  H = entropy(softmax(z / scale)) in nats;  h = H / log2(K)
    positive (class c, capacity k, kept sorted by H):  append if not full,
                                                       else replace the worst when H is lower
    negative (same rule, capacity k_n), only when band[0] < h < band[1]; keeps p = softmax(z / scale)
    local    (in lock-step with positive: same admissions and replacements) keeps u
    A_pos[c] = sum_{items i of c} exp(-beta (1 - f . k_i))
    A_neg    = sum_{negative items i} exp(-beta_n (1 - f . k_i)) * 1[mask[0] < p_i < mask[1]]
    A_loc[c] = sum_{cached centres u_j of c} exp(-beta_l (1 - q . u_j)),  q = mean(u)
    logits   = z + scale (alpha A_pos + alpha A_loc - alpha_n A_neg)

By default a cloud updates the caches and is then scored (as TDA and Point-Cache do, so an
admitted cloud meets itself); ``score_first=True`` scores it with the caches as they were.
A term whose alpha is 0 is not added at all, so alpha = alpha_n = 0 returns the base logits
bit for bit. Ties in H keep the older item first (TDA's stable sort after appending).
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
from ..core.words import count

Band = Tuple[float, float]


@dataclass
class CacheEntry:
    """One cached item: its pseudo-label, entropy H (nats), key [D], and for a negative item
    its probability vector p [K], for a positive item with a local cache its centres [m, C]."""

    label: int
    entropy: float
    key: torch.Tensor
    probs: Optional[torch.Tensor] = None
    centres: Optional[torch.Tensor] = None


class _ClassSlots:
    """A per-class store of capacity ``k``: ``order[c]`` lists class c's slots by entropy
    ascending (ties: older first); each slot owns a row of the dense arrays, given out in the
    order slots are first filled, so the filled rows are always ``[:used]`` (what scoring
    reads) and ``row_class[r]`` is the class of row r."""

    def __init__(self, num_classes: int, capacity: int):
        self.k = capacity
        self.order: List[List[int]] = [[] for _ in range(num_classes)]
        self.entropy = [[math.inf] * capacity for _ in range(num_classes)]
        self.row = [[-1] * capacity for _ in range(num_classes)]
        self.used = 0
        self.row_class = torch.zeros(num_classes * capacity, dtype=torch.long)
        self.keys: Optional[torch.Tensor] = None      # [K * k, D], rows [:used] filled

    def admit(self, c: int, h: float) -> Optional[int]:
        """The row an item of class ``c`` with entropy ``h`` goes to (its order updated), or
        None when the class is full and ``h`` is not lower than its worst."""
        order, ent = self.order[c], self.entropy[c]
        if len(order) < self.k:
            slot = len(order)
            self.row[c][slot] = self.used
            self.row_class[self.used] = c
            self.used += 1
        elif h < ent[order[-1]]:
            slot = order.pop()
        else:
            return None
        ent[slot] = h
        position = bisect.bisect_right([ent[s] for s in order], h)
        order.insert(position, slot)
        return self.row[c][slot]

    def count(self, c: int) -> int:
        return len(self.order[c])


class OnlineCache:
    """Positive, negative and (``local=True``) local caches over a test stream; see the
    module doc for the rule. ``neg_capacity`` or ``neg_alpha`` 0 turns the negative cache
    off; ``local_beta`` defaults to ``beta``. State grows only through :meth:`step` (and
    :meth:`prefill`, which makes the run not online: :attr:`online` turns False)."""

    def __init__(self, num_classes: int, capacity: int = 3, alpha: float = 4.0, beta: float = 3.0,
                 neg_capacity: int = 2, neg_alpha: float = 0.117, neg_beta: float = 1.0,
                 neg_band: Band = (0.2, 0.5), neg_mask: Band = (0.03, 1.0), scale: float = 1.0,
                 local: bool = False, local_beta: Optional[float] = None,
                 score_first: bool = False):
        if num_classes < 2:
            raise ValueError(f"OnlineCache needs at least 2 classes, got num_classes={num_classes}")
        if capacity < 1 or neg_capacity < 0:
            raise ValueError(f"capacity must be >= 1 and neg_capacity >= 0, got {capacity} "
                             f"and {neg_capacity}")
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.num_classes = int(num_classes)
        self.capacity, self.alpha, self.beta = int(capacity), float(alpha), float(beta)
        self.neg_capacity, self.neg_alpha = int(neg_capacity), float(neg_alpha)
        self.neg_beta = float(neg_beta)
        self.neg_band = (float(neg_band[0]), float(neg_band[1]))
        self.neg_mask = (float(neg_mask[0]), float(neg_mask[1]))
        self.scale = float(scale)
        self.local = bool(local)
        self.local_beta = self.beta if local_beta is None else float(local_beta)
        self.score_first = bool(score_first)
        self.online = True
        self.steps = 0
        self._log2k = math.log2(self.num_classes)
        self._pos = _ClassSlots(self.num_classes, self.capacity)
        self._neg = _ClassSlots(self.num_classes, max(self.neg_capacity, 1))
        self._neg_mask: Optional[torch.Tensor] = None     # [K * k_n, K] 0/1
        self._neg_probs: Optional[torch.Tensor] = None    # [K * k_n, K]
        self._centres: Optional[torch.Tensor] = None      # [K * k, m, C]

    # ------------------------------------------------------------------------- inspection

    @property
    def negative_on(self) -> bool:
        return self.neg_capacity > 0 and self.neg_alpha != 0.0

    def sizes(self) -> Tuple[List[int], List[int]]:
        """(items per class in the positive cache, in the negative cache)."""
        return ([self._pos.count(c) for c in range(self.num_classes)],
                [self._neg.count(c) if self.negative_on else 0 for c in range(self.num_classes)])

    def entries(self, negative: bool = False) -> List[CacheEntry]:
        """The cached items, class by class, each class by entropy ascending."""
        slots = self._neg if negative else self._pos
        out = []
        for c in range(self.num_classes):
            for s in slots.order[c]:
                row = slots.row[c][s]
                out.append(CacheEntry(
                    c, slots.entropy[c][s], slots.keys[row].clone(),
                    probs=self._neg_probs[row].clone() if negative else None,
                    centres=(self._centres[row].clone()
                             if self.local and not negative else None)))
        return out

    # ------------------------------------------------------------------------------ steps

    def _check(self, base: torch.Tensor, keys: torch.Tensor, centres: Optional[torch.Tensor]):
        if base.dim() != 2 or base.shape[1] != self.num_classes:
            raise ValueError(f"base_logits must be [B, {self.num_classes}], got {tuple(base.shape)}")
        if keys.dim() != 2 or keys.shape[0] != base.shape[0]:
            raise ValueError(f"keys must be [B, D] with B = {base.shape[0]}, got {tuple(keys.shape)}")
        if self.local and (centres is None or centres.dim() != 3
                           or centres.shape[0] != base.shape[0]):
            raise ValueError(f"a local cache needs centres [B, m, C] with B = {base.shape[0]}, "
                             f"got {None if centres is None else tuple(centres.shape)}")
        if self._pos.keys is not None and keys.shape[1] != self._pos.keys.shape[1]:
            raise ValueError(f"keys have {count(keys.shape[1], 'channel')}, the cache holds "
                             f"{self._pos.keys.shape[1]}")

    def _allocate(self, keys: torch.Tensor, centres: Optional[torch.Tensor]) -> None:
        if self._pos.keys is not None:
            return
        k, d, kk = self.num_classes, keys.shape[1], self.num_classes
        like = dict(dtype=keys.dtype, device=keys.device)
        self._pos.keys = torch.zeros(k * self._pos.k, d, **like)
        self._neg.keys = torch.zeros(k * self._neg.k, d, **like)
        self._pos.row_class = self._pos.row_class.to(keys.device)
        self._neg_probs = torch.zeros(k * self._neg.k, kk, **like)
        self._neg_mask = torch.zeros(k * self._neg.k, kk, **like)
        if self.local:
            self._centres = torch.zeros(k * self._pos.k, *centres.shape[1:],
                                        dtype=centres.dtype, device=centres.device)

    def _observe(self, z: torch.Tensor) -> Tuple[int, float, float, torch.Tensor]:
        """(pseudo-label c, H in nats, TDA's gate h = H / log2 K, p) of base logits z [K]."""
        t = z / self.scale if self.scale != 1.0 else z
        p = t.softmax(-1)
        entropy = float(-(p * t.log_softmax(-1)).sum())
        return int(z.argmax()), entropy, entropy / self._log2k, p

    def _update(self, z: torch.Tensor, f: torch.Tensor, u: Optional[torch.Tensor]) -> None:
        c, entropy, gate, p = self._observe(z)
        row = self._pos.admit(c, entropy)
        if row is not None:
            self._pos.keys[row] = f
            if self.local:
                self._centres[row] = u
        if self.negative_on and self.neg_band[0] < gate < self.neg_band[1]:
            row = self._neg.admit(c, entropy)
            if row is not None:
                self._neg.keys[row] = f
                self._neg_probs[row] = p
                lo, hi = self.neg_mask
                self._neg_mask[row] = ((p > lo) & (p < hi)).to(p.dtype)

    def _score(self, z: torch.Tensor, f: torch.Tensor, u: Optional[torch.Tensor]) -> torch.Tensor:
        out = z.clone()
        pos, neg = self._pos, self._neg
        if self.alpha != 0.0 and pos.used:
            # exp(-beta (1 - a)) written exp(beta (a - 1)), in place: the scores of each row
            w = (pos.keys[:pos.used] @ f).sub_(1.0).mul_(self.beta).exp_()
            if self.local:
                q = u.mean(0)
                a = (self._centres[:pos.used].flatten(0, 1) @ q).sub_(1.0)
                w = w + a.mul_(self.local_beta).exp_().view(pos.used, -1).sum(1).to(w.dtype)
            term = torch.zeros(self.num_classes, dtype=w.dtype).index_add_(
                0, pos.row_class[:pos.used], w)
            out += (self.alpha * self.scale) * term.to(z.dtype)
        if self.negative_on and neg.used:
            w = (neg.keys[:neg.used] @ f).sub_(1.0).mul_(self.neg_beta).exp_()
            out -= (self.neg_alpha * self.scale) * (w @ self._neg_mask[:neg.used]).to(z.dtype)
        return out

    @torch.no_grad()
    def step(self, base_logits: torch.Tensor, keys: torch.Tensor,
             centres: Optional[torch.Tensor] = None) -> torch.Tensor:
        """base_logits [B, K], keys [B, D] (unit rows), centres [B, m, C] (local cache only)
        -> logits [B, K]: the rows are taken one by one in order, each updating the caches
        and then being scored (``score_first``: the other way round)."""
        self._check(base_logits, keys, centres)
        self._allocate(keys, centres)
        out = torch.empty_like(base_logits)
        for i in range(base_logits.shape[0]):
            z, f = base_logits[i], keys[i]
            u = centres[i] if self.local else None
            if self.score_first:
                out[i] = self._score(z, f, u)
                self._update(z, f, u)
            else:
                self._update(z, f, u)
                out[i] = self._score(z, f, u)
            self.steps += 1
        return out

    @torch.no_grad()
    def prefill(self, base_logits: torch.Tensor, keys: torch.Tensor,
                centres: Optional[torch.Tensor] = None) -> int:
        """NOT ONLINE (Point-Cache's protocol, for reproducing its numbers only): fill the
        positive (and local) cache from these clouds, each appended to its pseudo-class while
        that class has room (never replacing), stopping once every class is full. -> the
        number of clouds read. The negative cache is left empty, as Point-Cache leaves it."""
        self._check(base_logits, keys, centres)
        self._allocate(keys, centres)
        self.online = False
        full = self.num_classes * self.capacity
        for i in range(base_logits.shape[0]):
            c, entropy, _, _ = self._observe(base_logits[i])
            if self._pos.count(c) < self.capacity:
                row = self._pos.admit(c, entropy)
                self._pos.keys[row] = keys[i]
                if self.local:
                    self._centres[row] = centres[i]
            if sum(self._pos.count(k) for k in range(self.num_classes)) == full:
                return i + 1
        return base_logits.shape[0]
