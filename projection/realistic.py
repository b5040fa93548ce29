"""PointCLIP V2's "realistic" projector: voxelise, densify, smooth, squeeze (spec section 2).

Same arithmetic as the reference, less work: only the (view, depth-slice) pairs that hold a
point are materialised, the 7x7 max-pool runs as two 1-D sliding maxima (each by doubling, three
`maximum` ops), the 3x3 Gaussian as two 1-D passes, and the CLIP resize runs on one channel.
"""
from __future__ import annotations

import math
import warnings
from typing import Optional

from .base import Projector
from .views import POINTCLIP_V2, ViewsArg, pick_preset, resolve_views

REALISTIC_PRESETS = {"pointclip_v2": POINTCLIP_V2}

#: the translation the V2 code subtracts after rotating (spec: omit it; see `reference_translation`)
V2_TRANSLATION = (-0.5, -0.5, -1.5)


def gaussian_1d(size: int, sigma: float) -> torch.Tensor:
    """[size] float32 weights exp(-x^2 / (2 sigma^2)), x centred, normalised to sum 1.

    The outer product of this with itself is the reference's normalised 2-D kernel (up to float
    rounding, ~1e-8).
    """
    import torch
    xs = torch.arange(size, dtype=torch.float32) - size // 2
    k = torch.exp(-(xs ** 2) / (2 * sigma ** 2))
    return k / k.sum()


def sliding_max(x: torch.Tensor, k: int, dim: int) -> torch.Tensor:
    """Max over windows of k consecutive entries along `dim` (length L -> L - k + 1).

    Doubling: after each step entry i holds the max of a window of `span` entries starting at i.
    """
    import torch
    span = 1
    while span < k:
        step = min(span, k - span)
        length = x.size(dim) - step
        x = torch.maximum(x.narrow(dim, 0, length), x.narrow(dim, step, length))
        span += step
    return x


def blur_1d(x: torch.Tensor, weights: torch.Tensor, dim: int) -> torch.Tensor:
    """Zero-padded 'same' correlation with an odd 1-D kernel (CPU weights) along `dim`."""
    import torch
    c = weights.numel() // 2
    w = weights.tolist()
    out = x * w[c]
    length = x.size(dim)
    for off in range(1, c + 1):
        if off >= length:
            break
        out.narrow(dim, off, length - off).add_(x.narrow(dim, 0, length - off), alpha=w[c - off])
        out.narrow(dim, 0, length - off).add_(x.narrow(dim, off, length - off), alpha=w[c + off])
    return out


class RealisticProjector(Projector):
    """PointCLIP V2's realistic projection.

    views: None (V2's 10 tilted views), indices into that list, a ring mapping, (a, b, c) triples
        or a ViewSet (see `views.resolve_views`).
    grid_resolution R (112), depth_bins D (8), obj_ratio (0.8), depth_bias (0.2),
    pool_kernel / pool_padding (7 / 2: maps are R + 2*pad - kernel + 1 = 110 px),
    blur_kernel / blur_sigma (3 / 3.0, zero padding kernel // 2).
    reference_translation: subtract V2's translation (-0.5, -0.5, -1.5) before normalising, as
        the published code does. The spec omits it (the normalisation cancels it); keeping it
        only changes float rounding, which flips a voxel `ceil` for about 1 pixel in 10^5, so
        set it to reproduce the published pixels bit for bit.

    project: points [B, N, 3] -> maps [B, V, 110, 110] in [0, 1], white (1) background, darker
        farther. Clouds whose view has zero extent (all points equal) give a blank (all 1) map.
    __call__: -> [B, V, 3, 224, 224].
    """

    def __init__(self, views: ViewsArg = None, *, preset: Optional[str] = None,
                 grid_resolution: int = 112, depth_bins: int = 8, obj_ratio: float = 0.8,
                 depth_bias: float = 0.2, pool_kernel: int = 7, pool_padding: int = 2,
                 blur_kernel: int = 3, blur_sigma: float = 3.0, reference_translation: bool = False,
                 image_size: int = 224, clip_normalize: bool = False):
        preset, views = pick_preset(views, preset, REALISTIC_PRESETS, "pointclip_v2", "realistic")
        for name, val, lo in [("grid_resolution", grid_resolution, 3), ("depth_bins", depth_bins, 3),
                              ("pool_kernel", pool_kernel, 1), ("pool_padding", pool_padding, 0),
                              ("blur_kernel", blur_kernel, 1)]:
            if isinstance(val, bool) or not isinstance(val, int) or val < lo:
                raise ValueError(f"{name} must be an integer >= {lo}; got {val!r}")
        if pool_padding > pool_kernel // 2:
            raise ValueError(f"pool_padding ({pool_padding}) must be at most pool_kernel // 2 "
                             f"({pool_kernel // 2}), as for torch max-pooling")
        if blur_kernel % 2 == 0:
            raise ValueError(f"blur_kernel must be odd (zero padding blur_kernel // 2); got {blur_kernel}")
        if grid_resolution + 2 * pool_padding - pool_kernel + 1 < 1:
            raise ValueError("pool_kernel too large for grid_resolution: maps would be empty")
        for name, val, lo in [("obj_ratio", obj_ratio, 0.0), ("depth_bias", depth_bias, -1.0),
                              ("blur_sigma", blur_sigma, 0.0)]:
            if not math.isfinite(val) or val <= lo:
                raise ValueError(f"{name} must be a number > {lo}; got {val!r}")
        self.preset = preset
        self.grid_resolution = grid_resolution
        self.depth_bins = depth_bins
        self.obj_ratio = float(obj_ratio)
        self.depth_bias = float(depth_bias)
        self.pool_kernel = pool_kernel
        self.pool_padding = pool_padding
        self.blur_kernel = blur_kernel
        self.blur_sigma = float(blur_sigma)
        self.reference_translation = bool(reference_translation)
        self._blur = None         # gaussian_1d(blur_kernel, blur_sigma), made at the first projection
        super().__init__(resolve_views(views, REALISTIC_PRESETS[preset]), image_size, clip_normalize)

    @property
    def map_size(self) -> int:
        return self.grid_resolution + 2 * self.pool_padding - self.pool_kernel + 1

    def _own_settings(self) -> dict:
        return {"preset": self.preset, "grid_resolution": self.grid_resolution,
                "depth_bins": self.depth_bins, "obj_ratio": self.obj_ratio, "depth_bias": self.depth_bias,
                "pool_kernel": self.pool_kernel, "pool_padding": self.pool_padding,
                "blur_kernel": self.blur_kernel, "blur_sigma": self.blur_sigma, "background": 0.0,
                "reference_translation": self.reference_translation}

    #: maps per block on the CPU (about 80 planes of 116 x 116 floats)
    CPU_BLOCK_MAPS = 16
    #: maps per block elsewhere (CUDA): bounds the planes' memory (<= 8 * 54 KB per map)
    DEVICE_BLOCK_MAPS = 1024

    def _squeeze_block(self, gx: torch.Tensor, gy: torch.Tensor, k: torch.Tensor, val: torch.Tensor,
                       out: torch.Tensor) -> None:
        """Steps 3-6 for a block of c maps.

        gx, gy: [c, N] int64 voxel row / column (clipped); k: [c, N] int64 depth slice;
        val: [c, N] stored depth values; out: [c, h*h] zeros, receives the squeezed maps.
        """
        import torch
        c, n = gx.shape
        d, pad, dev = self.depth_bins, self.pool_padding, gx.device
        side = self.grid_resolution + 2 * pad
        # 3. scatter-max into the occupied (map, slice) planes only, each padded for the pool
        slot_key = (torch.arange(c, device=dev).view(c, 1) * d + k).flatten()        # [c*N]
        occupied = torch.zeros(c * d, dtype=torch.bool, device=dev)
        occupied[slot_key] = True
        slot_of = torch.cumsum(occupied, 0) - 1
        owner = torch.nonzero(occupied).flatten() // d                   # [M] plane -> map
        m = owner.numel()
        # rows follow X and columns follow Y (the reference's final transpose); zero padding
        # equals max-pool's -inf padding: values are >= 0 and every window covers a real cell
        flat = slot_of[slot_key] * (side * side) + ((gx + pad) * side + (gy + pad)).flatten()
        planes = torch.zeros(m * side * side, device=dev)
        planes.scatter_reduce_(0, flat, val.flatten(), reduce="amax", include_self=True)
        planes = planes.view(m, side, side)
        # 4. densify (max-pool, stride 1), 5. smooth (Gaussian, zero padding)
        planes = sliding_max(sliding_max(planes, self.pool_kernel, 1), self.pool_kernel, 2)
        if self._blur is None:
            self._blur = gaussian_1d(self.blur_kernel, self.blur_sigma)
        planes = blur_1d(blur_1d(planes, self._blur, 1), self._blur, 2)
        # 6. squeeze: max over the slices (absent slices are all 0 and never win)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*index_reduce.*beta.*")
            out.index_reduce_(0, owner, planes.reshape(m, -1), "amax", include_self=True)

    def _project(self, points: torch.Tensor) -> torch.Tensor:
        return self._render(points)[0]

    def _render(self, points: torch.Tensor):
        """points [B, N, 3] -> (maps [B, V, h, h], voxel row gx / column gy [B*V, N] int64,
        stored depth value val [B*V, N], peak [B*V, 1] (the map's maximum before the intensity
        step), blank [B*V] bool): the maps of `_project` and what `locate` needs."""
        import torch
        b, n, _ = points.shape
        v, r, d = self.num_views, self.grid_resolution, self.depth_bins
        bv = b * v
        dev = points.device

        # 1. per (cloud, view) normalisation to the bounding box, as in points2grid
        p = self._rotate(points)                                         # [B, V, N, 3]
        if self.reference_translation:  # cancelled by the normalisation up to float rounding
            p = p - torch.tensor(V2_TRANSLATION, device=dev)
        pmax, pmin = p.amax(dim=2), p.amin(dim=2)                        # [B, V, 3]
        pcent = (pmax + pmin) / 2
        prange = (pmax - pmin).amax(dim=-1)                              # [B, V]
        blank = ~(prange > 0) | ~torch.isfinite(prange)                  # degenerate: no extent
        prange = torch.where(blank, torch.ones_like(prange), prange)
        p = (p - pcent.unsqueeze(2)) / prange[:, :, None, None] * 2.

        # 2. voxel coordinates and stored depth values
        gx = ((p[..., 0] * self.obj_ratio + 1) / 2 * r).ceil_().clamp_(1, r - 2)
        gy = ((p[..., 1] * self.obj_ratio + 1) / 2 * r).ceil_().clamp_(1, r - 2)
        dz = ((p[..., 2] + 1) / 2 + self.depth_bias) / (1 + self.depth_bias) * (d - 2)
        k = dz.ceil().clamp_(0, d - 1).long()                            # slice index, before clipping
        val = dz.clamp_(1, d - 2)

        # 3-6 run on blocks of maps so the planes of a block stay in cache (pixels do not depend
        # on the block size; on CUDA everything is one block)
        h = self.map_size
        img = torch.zeros(bv, h * h, device=dev)
        block = self.CPU_BLOCK_MAPS if dev.type == "cpu" else self.DEVICE_BLOCK_MAPS
        gx, gy, k, val = gx.long().view(bv, n), gy.long().view(bv, n), k.view(bv, n), val.view(bv, n)
        for s in range(0, bv, block):
            e = min(s + block, bv)
            self._squeeze_block(gx[s:e], gy[s:e], k[s:e], val[s:e], img[s:e])

        # 7. intensity: divide by the map's own maximum, invert; blank maps for degenerate views
        peak = img.amax(dim=1, keepdim=True)
        img = 1 - img / torch.where(peak > 0, peak, torch.ones_like(peak))
        img = torch.where(blank.view(bv, 1), torch.ones_like(img), img)
        return img.view(b, v, h, h), gx, gy, val, peak, blank.view(bv)

    #: a point is visible when its intensity is within this of the map's there (V2: 0.1)
    VISIBLE_TOLERANCE = 0.1

    def _locate_pixels(self, points: torch.Tensor):
        """Map pixel of each point: voxel (gx, gy) lands at row gx + pool_padding -
        pool_kernel // 2 (the centre of the max-pool windows that hold it), column likewise;
        its depth is the intensity it would give the map alone, ``1 - val / peak`` (the
        map's units: 0 near, 1 far / background). Visible: the front surface at its pixel,
        i.e. its intensity is within ``VISIBLE_TOLERANCE`` of the rendered, densified map
        (the map keeps the nearest depth; blur can lift it at edges). Points of a blank
        (zero-extent) view are not visible."""
        import torch
        b, n, _ = points.shape
        v, h = self.num_views, self.map_size
        maps, gx, gy, val, peak, blank = self._render(points)
        shift = self.pool_padding - self.pool_kernel // 2
        row = (gx + shift).clamp(0, h - 1).view(b, v, n)
        col = (gy + shift).clamp(0, h - 1).view(b, v, n)
        depth = (1 - val / torch.where(peak > 0, peak, torch.ones_like(peak))).view(b, v, n)
        front = ~blank.view(b, v, 1).expand(b, v, n)
        return maps, row, col, depth, front
