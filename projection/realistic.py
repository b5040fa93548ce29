"""PointCLIP V2's "realistic" projector: voxelise, densify, smooth, squeeze
(docs/projection.md#the-realistic-projector),
with V2's classification settings (preset "pointclip_v2") or its segmentation settings
("pointclip_v2_seg", docs/projection.md#the-segmentation-preset).

Same arithmetic as the references, less work. Without depth-axis operations (classification)
only the (view, depth-slice) pairs that hold a point are materialised, the 7x7 max-pool runs as
two 1-D sliding maxima (each by doubling, three `maximum` ops), the 3x3 Gaussian as two 1-D
passes, and the CLIP resize runs on one channel. With them (segmentation: a 5x11x11 max-pool and
a 5x5x5 Gaussian over a 112 x 224 x 224 grid) each map's grid is materialised only on the box of
voxels that can be nonzero (the points' extent plus the pool and blur reach on each axis), and
both operations run as three 1-D passes.
"""
from __future__ import annotations

import math
import warnings
from typing import Optional

from .base import Projector
from .views import POINTCLIP_V2, POINTCLIP_V2_SEG, ViewsArg, pick_preset, resolve_views

#: preset name -> (view list, option values); an option left None takes its preset's value.
#: "pointclip_v2": zeroshot_cls/trainers/mv_utils_zs.py; "pointclip_v2_seg":
#: zeroshot_seg/realistic_projection.py (params['vit_b16']) and main.py's 20:204 crop.
REALISTIC_PRESETS = {
    "pointclip_v2": (POINTCLIP_V2, {
        "grid_resolution": 112, "depth_bins": 8, "obj_ratio": 0.8, "depth_bias": 0.2,
        "pool_kernel": 7, "pool_padding": 2, "pool_kernel_z": 1,
        "blur_kernel": 3, "blur_sigma": 3.0, "blur_kernel_z": 1, "blur_sigma_z": 1.0, "crop": 0}),
    "pointclip_v2_seg": (POINTCLIP_V2_SEG, {
        "grid_resolution": 224, "depth_bins": 112, "obj_ratio": 0.7, "depth_bias": 0.3,
        "pool_kernel": 11, "pool_padding": 5, "pool_kernel_z": 5,
        "blur_kernel": 5, "blur_sigma": 1.0, "blur_kernel_z": 5, "blur_sigma_z": 2.0, "crop": 20}),
}

#: the translation the V2 code subtracts after rotating (omitted: see `reference_translation`)
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


def blur_matrix(weights: torch.Tensor, length: int, device) -> torch.Tensor:
    """[length, length] banded matrix M with ``M @ x`` = `blur_1d` of x along its first axis
    (zero padding): M[i, j] = weights[c + j - i] for |j - i| <= c = len(weights) // 2."""
    import torch
    c = weights.numel() // 2
    m = torch.zeros(length, length)
    for off in range(-c, c + 1):
        if abs(off) < length:
            m += torch.diag(weights[c + off].expand(length - abs(off)), off)
    return m.to(device)


class RealisticProjector(Projector):
    """PointCLIP V2's realistic projection.

    preset: "pointclip_v2" (default: V2's classification projector) or "pointclip_v2_seg" (its
        segmentation projector); gives the view list that indices refer to and every option
        left None. A string `views` names the preset.
    views: None (the preset's 10 views), indices into that list, a ring mapping, (a, b, c)
        triples or a ViewSet (see `views.resolve_views`).
    grid_resolution R, depth_bins D: the voxel grid is D slices of R x R
        (classification 112 / 8, segmentation 224 / 112).
    obj_ratio (0.8 / 0.7), depth_bias (0.2 / 0.3): share of the grid side the cloud spans, and
        the depth offset of its nearest point.
    pool_kernel / pool_padding (7 / 2, segmentation 11 / 5): the densifying max-pool in the
        image plane; maps are R + 2*pad - kernel + 1 px (110 / 224).
    pool_kernel_z (1 / 5): its extent along the depth axis (odd, centred on the slice).
    blur_kernel / blur_sigma (3 / 3.0, segmentation 5 / 1.0): the Gaussian in the image plane,
        zero padding kernel // 2; blur_kernel_z / blur_sigma_z (1 / -, segmentation 5 / 2.0):
        along the depth axis (odd). With pool_kernel_z or blur_kernel_z above 1 the grid is
        smoothed in 3-D before the squeeze (V2's segmentation projector).
    crop (0 / 20): pixels cut from each side of the map before the CLIP resize (V2's
        segmentation crop 20:204), so maps are 184 px and images 224 px.
    reference_translation: subtract V2's translation (-0.5, -0.5, -1.5) before normalising, as
        the published code does. We omit it (the normalisation cancels it); keeping it
        only changes float rounding, which flips a voxel `ceil` for about 1 pixel in 10^5, so
        set it to reproduce the published pixels bit for bit.

    project: points [B, N, 3] -> maps [B, V, h, h] in [0, 1] (h = map_size), white (1)
        background, darker farther. Clouds whose view has zero extent (all points equal) give a
        blank (all 1) map.
    __call__: -> [B, V, 3, 224, 224].
    """

    def __init__(self, views: ViewsArg = None, *, preset: Optional[str] = None,
                 grid_resolution: Optional[int] = None, depth_bins: Optional[int] = None,
                 obj_ratio: Optional[float] = None, depth_bias: Optional[float] = None,
                 pool_kernel: Optional[int] = None, pool_padding: Optional[int] = None,
                 pool_kernel_z: Optional[int] = None, blur_kernel: Optional[int] = None,
                 blur_sigma: Optional[float] = None, blur_kernel_z: Optional[int] = None,
                 blur_sigma_z: Optional[float] = None, crop: Optional[int] = None,
                 reference_translation: bool = False, image_size: int = 224, clip_normalize: bool = False):
        preset, views = pick_preset(views, preset, REALISTIC_PRESETS, "pointclip_v2", "realistic")
        preset_views, defaults = REALISTIC_PRESETS[preset]
        given = {"grid_resolution": grid_resolution, "depth_bins": depth_bins, "obj_ratio": obj_ratio,
                 "depth_bias": depth_bias, "pool_kernel": pool_kernel, "pool_padding": pool_padding,
                 "pool_kernel_z": pool_kernel_z, "blur_kernel": blur_kernel, "blur_sigma": blur_sigma,
                 "blur_kernel_z": blur_kernel_z, "blur_sigma_z": blur_sigma_z, "crop": crop}
        o = {k: defaults[k] if v is None else v for k, v in given.items()}
        for name, lo in [("grid_resolution", 3), ("depth_bins", 3), ("pool_kernel", 1), ("pool_padding", 0),
                         ("pool_kernel_z", 1), ("blur_kernel", 1), ("blur_kernel_z", 1), ("crop", 0)]:
            val = o[name]
            if isinstance(val, bool) or not isinstance(val, int) or val < lo:
                raise ValueError(f"{name} must be an integer >= {lo}; got {val!r}")
        if o["pool_padding"] > o["pool_kernel"] // 2:
            raise ValueError(f"pool_padding ({o['pool_padding']}) must be at most pool_kernel // 2 "
                             f"({o['pool_kernel'] // 2}), as for torch max-pooling")
        for name in ("blur_kernel", "pool_kernel_z", "blur_kernel_z"):
            if o[name] % 2 == 0:
                raise ValueError(f"{name} must be odd (a window centred on its voxel); got {o[name]}")
        side = o["grid_resolution"] + 2 * o["pool_padding"] - o["pool_kernel"] + 1
        if side < 1:
            raise ValueError("pool_kernel too large for grid_resolution: maps would be empty")
        if side - 2 * o["crop"] < 1:
            raise ValueError(f"crop ({o['crop']}) leaves nothing of the {side} px maps; it must be "
                             f"below {(side + 1) // 2}")
        volumetric = o["pool_kernel_z"] > 1 or o["blur_kernel_z"] > 1
        if volumetric and o["depth_bins"] < 4:
            raise ValueError(f"depth_bins must be >= 4 with depth-axis pooling or blur (points are "
                             f"read at slices 1..depth_bins-3); got {o['depth_bins']}")
        for name, lo in [("obj_ratio", 0.0), ("depth_bias", -1.0), ("blur_sigma", 0.0), ("blur_sigma_z", 0.0)]:
            val = o[name]
            if isinstance(val, bool) or not isinstance(val, (int, float)) or not math.isfinite(val) or val <= lo:
                raise ValueError(f"{name} must be a number > {lo}; got {val!r}")
        self.preset = preset
        self.grid_resolution = o["grid_resolution"]
        self.depth_bins = o["depth_bins"]
        self.obj_ratio = float(o["obj_ratio"])
        self.depth_bias = float(o["depth_bias"])
        self.pool_kernel = o["pool_kernel"]
        self.pool_padding = o["pool_padding"]
        self.pool_kernel_z = o["pool_kernel_z"]
        self.blur_kernel = o["blur_kernel"]
        self.blur_sigma = float(o["blur_sigma"])
        self.blur_kernel_z = o["blur_kernel_z"]
        self.blur_sigma_z = float(o["blur_sigma_z"])
        self.crop = o["crop"]
        self.volumetric = volumetric
        self.reference_translation = bool(reference_translation)
        self._blur = None         # gaussian_1d(blur_kernel, blur_sigma), made at the first projection
        self._blur_z = None       # gaussian_1d(blur_kernel_z, blur_sigma_z), likewise
        super().__init__(resolve_views(views, preset_views), image_size, clip_normalize)

    @property
    def full_map_size(self) -> int:
        """Side of the squeezed map before the crop."""
        return self.grid_resolution + 2 * self.pool_padding - self.pool_kernel + 1

    @property
    def map_size(self) -> int:
        return self.full_map_size - 2 * self.crop

    def _own_settings(self) -> dict:
        """The options; the depth-axis ones only with depth-axis operations and `crop` only when
        cropping, so settings (and caches keyed on them) read as before these options existed."""
        out = {"preset": self.preset, "grid_resolution": self.grid_resolution,
               "depth_bins": self.depth_bins, "obj_ratio": self.obj_ratio, "depth_bias": self.depth_bias,
               "pool_kernel": self.pool_kernel, "pool_padding": self.pool_padding,
               "blur_kernel": self.blur_kernel, "blur_sigma": self.blur_sigma, "background": 0.0,
               "reference_translation": self.reference_translation}
        if self.volumetric:
            out.update(pool_kernel_z=self.pool_kernel_z, blur_kernel_z=self.blur_kernel_z,
                       blur_sigma_z=self.blur_sigma_z)
        if self.crop:
            out["crop"] = self.crop
        return out

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

    #: maps per block of the 3-D path on the CPU (one grid box, <= 25 MB, stays in memory)
    CPU_VOLUME_BLOCK_MAPS = 1
    #: maps per block of the 3-D path elsewhere (CUDA): a few grid boxes at a time
    DEVICE_VOLUME_BLOCK_MAPS = 16

    def _volume_block(self, gx: torch.Tensor, gy: torch.Tensor, k: torch.Tensor, val: torch.Tensor,
                      out: torch.Tensor, at_points: Optional[torch.Tensor] = None) -> None:
        """Steps 3-6 with depth-axis pooling / blur for a block of c maps (inputs as
        `_squeeze_block`; out: [c, H*H] zeros, H = full_map_size).

        The grid is materialised on one box for the block: along each axis, the voxels that can
        be nonzero after the pool and the blur (the points' extent widened by both reaches),
        within the grid. 3-4: each point writes its value into its whole pooling window (a
        scatter-max of kz * k * k values per point), which is the max-pool of the grid holding
        the points (the windows are where the point is in the pool's reach; zeros stand for
        max-pool's -inf padding as values are >= 0). 5: the Gaussian runs as three 1-D passes,
        each a product with a banded matrix (`blur_matrix`: faster than shifted adds on grids
        this size), zeros outside the box standing for its zero padding (nothing nonzero lies
        there).
        at_points: None or [c, N], receives the smoothed grid value at each point's voxel, its
        slice clipped to 1..D-3 (the voxel V2's segmentation code reads).
        """
        import torch
        c, n = gx.shape
        dev = gx.device
        kx, px, bx = self.pool_kernel, self.pool_padding, self.blur_kernel // 2
        pz, bz = self.pool_kernel_z // 2, self.blur_kernel_z // 2
        # output positions a voxel i reaches through the pool: i + lo .. i + hi on each axis
        lo_x, hi_x = px - kx + 1, px
        za, xa, ya = int(k.min()) - pz - bz, int(gx.min()) + lo_x - bx, int(gy.min()) + lo_x - bx
        lz = int(k.max()) + pz + bz - za + 1
        lx = int(gx.max()) + hi_x + bx - xa + 1
        ly = int(gy.max()) + hi_x + bx - ya + 1
        # 3-4. scatter-max every point over its pooling window
        dz = torch.arange(-pz, pz + 1, device=dev).view(-1, 1, 1)
        dxy = torch.arange(lo_x, hi_x + 1, device=dev)
        window = ((dz * lx + dxy.view(1, -1, 1)) * ly + dxy.view(1, 1, -1)).flatten()
        owner = torch.arange(c, device=dev).view(c, 1)
        at = ((owner * lz + (k - za)) * lx + (gx - xa)) * ly + (gy - ya)          # [c, N]
        grid = torch.zeros(c * lz * lx * ly, device=dev)
        grid.scatter_reduce_(0, (at.view(-1, 1) + window).flatten(),
                             val.reshape(-1, 1).expand(-1, window.numel()).flatten(),
                             reduce="amax", include_self=True)
        # keep the box inside the grid: beyond it max-pool and blur see padding, not voxels
        z0, x0, y0 = max(0, za), max(0, xa), max(0, ya)
        z1 = min(self.depth_bins, za + lz)
        x1, y1 = min(self.full_map_size, xa + lx), min(self.full_map_size, ya + ly)
        grid = grid.view(c, lz, lx, ly)[:, z0 - za:z1 - za, x0 - xa:x1 - xa, y0 - ya:y1 - ya]
        # 5. smooth: Gaussian along each axis
        if self._blur is None:
            self._blur = gaussian_1d(self.blur_kernel, self.blur_sigma)
            self._blur_z = gaussian_1d(self.blur_kernel_z, self.blur_sigma_z)
        mz, mx, my = grid.shape[1:]
        grid = torch.matmul(blur_matrix(self._blur_z, mz, dev), grid.reshape(c, mz, mx * my))
        grid = torch.matmul(blur_matrix(self._blur, mx, dev), grid.view(c * mz, mx, my))
        grid = torch.matmul(grid.view(-1, my), blur_matrix(self._blur, my, dev).T).view(c, mz, mx, my)
        # 6. squeeze: max over the slices
        out.view(c, self.full_map_size, self.full_map_size)[:, x0:x1, y0:y1] = grid.amax(dim=1)
        if at_points is not None:
            shift = px - kx // 2
            zc = k.clamp(1, self.depth_bins - 3) - z0
            inside = (zc >= 0) & (zc < mz)                # slices outside the box hold 0
            rows = (gx + shift - x0).clamp(0, mx - 1)     # a point's own pixel is in the box
            cols = (gy + shift - y0).clamp(0, my - 1)     # when it is in the map
            idx = ((owner * mz + zc.clamp(0, mz - 1)) * mx + rows) * my + cols
            at_points.copy_(torch.where(inside, grid.reshape(-1)[idx], torch.zeros_like(val)))

    def _project(self, points: torch.Tensor) -> torch.Tensor:
        return self._render(points)

    def _render(self, points: torch.Tensor, with_points: bool = False):
        """points [B, N, 3] -> maps [B, V, h, h] (after the crop); with_points, also per point
        [B, V, N]: map row and column (int64, clamped into the map), depth (map units, see
        `_locate_pixels`) and front (bool: it lands inside the map of a non-blank view)."""
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
        # on the block size)
        h = self.full_map_size
        img = torch.zeros(bv, h * h, device=dev)
        gx, gy, k, val = gx.long().view(bv, n), gy.long().view(bv, n), k.view(bv, n), val.view(bv, n)
        on_cpu = dev.type == "cpu"
        if self.volumetric:
            block = self.CPU_VOLUME_BLOCK_MAPS if on_cpu else self.DEVICE_VOLUME_BLOCK_MAPS
            at_points = torch.zeros(bv, n, device=dev) if with_points else None
            for s in range(0, bv, block):
                e = min(s + block, bv)
                self._volume_block(gx[s:e], gy[s:e], k[s:e], val[s:e], img[s:e],
                                   None if at_points is None else at_points[s:e])
        else:
            block = self.CPU_BLOCK_MAPS if on_cpu else self.DEVICE_BLOCK_MAPS
            at_points = val
            for s in range(0, bv, block):
                e = min(s + block, bv)
                self._squeeze_block(gx[s:e], gy[s:e], k[s:e], val[s:e], img[s:e])

        # 7. intensity: divide by the map's own maximum, invert; blank maps for degenerate views
        peak = img.amax(dim=1, keepdim=True)
        peak = torch.where(peak > 0, peak, torch.ones_like(peak))
        img = 1 - img / peak
        img = torch.where(blank.view(bv, 1), torch.ones_like(img), img)
        maps = img.view(b, v, h, h)
        c = self.crop
        if c:
            maps = maps[:, :, c:h - c, c:h - c].contiguous()
        if not with_points:
            return maps
        shift = self.pool_padding - self.pool_kernel // 2 - c
        m = h - 2 * c
        row, col = (gx + shift).view(b, v, n), (gy + shift).view(b, v, n)
        front = ~blank.view(b, v, 1) & (row >= 0) & (row < m) & (col >= 0) & (col < m)
        depth = (1 - at_points / peak).view(b, v, n)
        return maps, row.clamp(0, m - 1), col.clamp(0, m - 1), depth, front

    #: a point is visible when its depth is within this of the map's there (V2: 0.1)
    VISIBLE_TOLERANCE = 0.1

    def _locate_pixels(self, points: torch.Tensor):
        """Map pixel of each point: voxel (gx, gy) lands at row gx + pool_padding -
        pool_kernel // 2 - crop (the centre of the max-pool windows that hold it, in the
        cropped map), column likewise.

        Depth, in the map's units (0 near, 1 far / background): without depth-axis operations
        (classification) the intensity the point would give the map alone, ``1 - val / peak``;
        with them (segmentation, as V2's code) the smoothed grid's intensity at the point's voxel
        (its slice clipped to 1..D-3). Visible: the front surface at its pixel, i.e. that depth
        is within ``VISIBLE_TOLERANCE`` of the rendered, densified map there (the map keeps the
        nearest depth; blur can lift it at edges). Points of a blank (zero-extent) view, or
        cropped off the map, are not visible.

        V2's segmentation code applies the same rule at the transposed pixel: its point
        location is (voxel column, voxel row), used as (row, column), so its (row, col) is our
        (col, row) + crop before its crop mapping ``ceil((loc - 20) * 224 / 184)`` (ours is the
        exact align-corners position, see `Projector.locate`); tests/test_segmentation_official.py
        checks this on its outputs."""
        return self._render(points, with_points=True)
