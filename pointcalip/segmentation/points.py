"""From per-view dense logits to one part per point (docs/segmentation.md#views-to-points).

Per point: ``logit(n) = sum_v w_v * visible_v(n) * S_v(xy_v(n))``, then argmax over the
category's parts. A point visible in no view takes the label of its nearest visible point
(``nearest_visible``; the share of such points is reported).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from ..dense_calip import dense_calip_logits, read_at_pixels, tokens_to_grid
from ..core.words import count


@dataclass
class PointLogits:
    """The three dense terms read at each point of M shapes of one category, per view:
    ``s0, s1, s2`` [M, V, N, P] float32; ``visible`` [M, V, N] bool; ``source`` [M, N] long:
    the point whose prediction each point takes (itself when visible in some view, else its
    nearest visible point)."""

    s0: torch.Tensor
    s1: torch.Tensor
    s2: torch.Tensor
    visible: torch.Tensor
    source: torch.Tensor

    @property
    def unseen_share(self) -> float:
        """Share of points visible in no view (labelled from their nearest visible point)."""
        return float((~self.visible.any(dim=1)).float().mean()) if self.visible.numel() else 0.0

    def take(self, rows) -> "PointLogits":
        return PointLogits(self.s0[rows], self.s1[rows], self.s2[rows], self.visible[rows],
                           self.source[rows])

    def subsample(self, points: torch.Tensor) -> "PointLogits":
        """Keep the point indices ``points`` [n'] (a search on fewer points); points whose
        source was dropped keep their own (zero) logits."""
        keep = torch.as_tensor(points).long()
        remap = torch.full((self.source.shape[1],), -1, dtype=torch.long)
        remap[keep] = torch.arange(keep.numel())
        src = remap[self.source[:, keep]]
        src = torch.where(src >= 0, src, torch.arange(keep.numel()).expand_as(src))
        return PointLogits(self.s0[:, :, keep], self.s1[:, :, keep], self.s2[:, :, keep],
                           self.visible[:, :, keep], src)


#: distances computed at once by :func:`nearest_visible` (float64: 32 MB), whatever N
NEAREST_BLOCK = 1 << 22
#: (unseen x seen) pairs above which :func:`nearest_visible` searches a KD-tree instead
KD_TREE_PAIRS = 1 << 26
_SEEN_CHUNK = 8192


def _nearest_in_blocks(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a [L, 3], b [H, 3] float64 -> [L] index into b of the point minimising ``|b|^2 - 2 a.b``
    (ties: the lower index), in blocks of at most :data:`NEAREST_BLOCK` distances."""
    norms = (b * b).sum(dim=1)
    rows = max(1, NEAREST_BLOCK // min(len(b), _SEEN_CHUNK))
    out = torch.empty(len(a), dtype=torch.long)
    for r in range(0, len(a), rows):
        part = a[r:r + rows]
        best = torch.full((len(part),), float("inf"), dtype=torch.float64)
        arg = torch.zeros(len(part), dtype=torch.long)
        for c in range(0, len(b), _SEEN_CHUNK):
            d = torch.addmm(norms[c:c + _SEEN_CHUNK].unsqueeze(0), part, b[c:c + _SEEN_CHUNK].T,
                            alpha=-2)
            value, index = d.min(dim=1)
            closer = value < best
            best = torch.where(closer, value, best)
            arg = torch.where(closer, index + c, arg)
        out[r:r + rows] = arg
    return out


def _nearest_in_tree(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a [L, 3], b [H, 3] float64 -> [L] index into b of the nearest point (Euclidean), by
    Open3D's KD-tree search: memory O(L + H), time O((L + H) log H)."""
    import open3d as o3d

    search = o3d.core.nns.NearestNeighborSearch(o3d.core.Tensor(b.numpy()))
    search.knn_index()
    index, _ = search.knn_search(o3d.core.Tensor(a.numpy()), 1)
    return torch.from_numpy(index.numpy()[:, 0].astype("int64"))


def nearest_visible(points: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """points [M, N, 3], seen [M, N] bool -> source [M, N] long: n itself where seen, else the
    index of the nearest seen point of the same shape (itself if the shape has none). The
    nearest minimises ``|b|^2 - 2 a.b`` (the squared distance less ``|a|^2``, in float64; ties
    go to the lower index), taken in blocks of at most :data:`NEAREST_BLOCK` distances with a
    running minimum; above :data:`KD_TREE_PAIRS` (unseen x seen) pairs (never for ShapeNetPart's
    2048 points; `segment FILE` with many points) a KD-tree finds the nearest instead (exact
    too; of equally near points it may take another). Memory never grows with N^2."""
    m, n, _ = points.shape
    source = torch.arange(n).expand(m, n).clone()
    for i in range(m):
        lost = torch.nonzero(~seen[i]).flatten()
        have = torch.nonzero(seen[i]).flatten()
        if lost.numel() and have.numel():
            a, b = points[i, lost].double(), points[i, have].double()
            find = _nearest_in_tree if lost.numel() * have.numel() > KD_TREE_PAIRS \
                else _nearest_in_blocks
            source[i, lost] = have[find(a, b)]
    return source


def point_logits(spatial: torch.Tensor, text: torch.Tensor, xy: torch.Tensor,
                 visible: torch.Tensor, points: torch.Tensor, image_size: int,
                 smooth: bool = True, temperature: float = 0.5) -> PointLogits:
    """One category's shapes. spatial [M, V, HW, C] (unit rows), text [P, C] (unit rows),
    xy [M, V, N, 2] and visible [M, V, N] from ``projector.locate``, points [M, N, 3]
    -> :class:`PointLogits`: S0, S1, S2 on each view's token grid, smoothed, read at each
    point's pixel of the bilinearly upsampled grid."""
    m, v, hw, c = spatial.shape
    n = xy.shape[2]
    terms = torch.cat(dense_calip_logits(spatial.reshape(m * v, hw, c), text, temperature),
                      dim=2)                                  # S0 | S1 | S2: [M V, HW, 3P]
    read = read_at_pixels(tokens_to_grid(terms), xy.reshape(m * v, n, 2), image_size, smooth)
    s0, s1, s2 = read.view(m, v, n, -1).chunk(3, dim=3)
    source = nearest_visible(points, visible.any(dim=1))
    return PointLogits(s0, s1, s2, visible=visible, source=source)


def combine_points(logits: PointLogits, beta2: float = 0.0, beta3: float = 0.0,
                   view_weights: Optional[Sequence[float]] = None) -> torch.Tensor:
    """-> [M, N, P]: ``sum_v w_v * visible_v * (S0 + beta2 S1 + beta3 S2)`` (w default 1)."""
    v = logits.s0.shape[1]
    w = torch.ones(v) if view_weights is None else torch.as_tensor(view_weights,
                                                                   dtype=torch.float32)
    if w.numel() != v:
        raise ValueError(f"view_weights has {count(w.numel(), 'value')} but there are "
                         f"{count(v, 'view')}")
    mask = logits.visible.float() * w.view(1, v, 1)
    per = logits.s0 + beta2 * logits.s1 + beta3 * logits.s2
    return torch.einsum("mvn,mvnp->mnp", mask, per)


def predict_local(logits: PointLogits, beta2: float = 0.0, beta3: float = 0.0,
                  view_weights: Optional[Sequence[float]] = None) -> torch.Tensor:
    """-> [M, N] local part index (0 .. P-1) per point, with the nearest-visible fallback."""
    best = combine_points(logits, beta2, beta3, view_weights).argmax(dim=2)
    return torch.gather(best, 1, logits.source)
