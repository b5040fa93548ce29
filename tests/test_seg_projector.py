"""PointCLIP V2's segmentation projector as a preset of the realistic projector: its settings,
its 3-D path against a dense reference written from the formulas, `locate` against a per-point
loop and the rendered images, and pans in view sets. (The official code's outputs are checked in
tests/test_segmentation_official.py.)"""
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pointcalip.projection import RealisticProjector, build_projector
from pointcalip.projection.views import POINTCLIP_V2, POINTCLIP_V2_SEG, ViewSet


def clouds(b, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    p = torch.randn(b, n, 3, generator=g)
    return p / p.norm(dim=-1).amax(dim=1)[:, None, None] * 0.9


def small(**kw):
    """The segmentation preset's structure on a small grid (fast): 3-D pool and blur, a crop."""
    opts = dict(preset="pointclip_v2_seg", views=[0, 4, 9], grid_resolution=32, depth_bins=14,
                pool_kernel=5, pool_padding=2, pool_kernel_z=3, blur_kernel=3, blur_sigma=1.0,
                blur_kernel_z=5, blur_sigma_z=2.0, crop=3, image_size=40)
    opts.update(kw)
    return RealisticProjector(**opts)


def voxels(proj, points):
    """Per (cloud, view) and point, from the formulas of docs/projection.md: voxel row gx, column gy, slice k
    (ceil of the depth coordinate) and stored value (the coordinate clipped to 1..D-2)."""
    r, d = proj.grid_resolution, proj.depth_bins
    p = proj._rotate(points).double()
    lo, hi = p.amin(dim=2, keepdim=True), p.amax(dim=2, keepdim=True)
    p = (p - (lo + hi) / 2) / (hi - lo).amax(dim=-1, keepdim=True) * 2
    gx = ((p[..., 0] * proj.obj_ratio + 1) / 2 * r).ceil().clamp(1, r - 2).long()
    gy = ((p[..., 1] * proj.obj_ratio + 1) / 2 * r).ceil().clamp(1, r - 2).long()
    dz = ((p[..., 2] + 1) / 2 + proj.depth_bias) / (1 + proj.depth_bias) * (d - 2)
    return gx, gy, dz.ceil().long(), dz.clamp(1, d - 2)


def gaussian(size, sigma):
    x = torch.arange(size, dtype=torch.float64) - size // 2
    return torch.exp(-x ** 2 / (2 * sigma ** 2))


def dense_reference(proj, points):
    """The whole grid, torch's own 3-D max-pool and 3-D convolution (the normalised product
    kernel), max over slices, divide by the peak, invert, crop. -> maps [B, V, h, h] and the
    smoothed grid's intensity at each point's voxel (slice clipped to 1..D-3) [B, V, N]."""
    gx, gy, k, val = voxels(proj, points)
    b, v, n = gx.shape
    r, d, c = proj.grid_resolution, proj.depth_bins, proj.crop
    grid = torch.zeros(b * v, d, r, r, dtype=torch.float64)
    owner = torch.arange(b * v).view(b, v, 1).expand(b, v, n)
    flat = ((owner * d + k) * r + gx) * r + gy
    grid.view(-1).scatter_reduce_(0, flat.flatten(), val.flatten(), "amax", include_self=True)
    pooled = F.max_pool3d(grid[:, None], (proj.pool_kernel_z, proj.pool_kernel, proj.pool_kernel), 1,
                          (proj.pool_kernel_z // 2, proj.pool_padding, proj.pool_padding))
    gz, gxy = gaussian(proj.blur_kernel_z, proj.blur_sigma_z), gaussian(proj.blur_kernel, proj.blur_sigma)
    kernel = gz[:, None, None] * gxy[None, :, None] * gxy[None, None, :]
    smooth = F.conv3d(pooled, (kernel / kernel.sum())[None, None],
                      padding=(proj.blur_kernel_z // 2, proj.blur_kernel // 2, proj.blur_kernel // 2))[:, 0]
    img = smooth.amax(dim=1)
    peak = img.flatten(1).amax(dim=1).view(-1, 1, 1)
    shift = proj.pool_padding - proj.pool_kernel // 2
    at = smooth.flatten()[(((owner * smooth.shape[1] + k.clamp(1, d - 3)) * smooth.shape[2] + gx + shift)
                           * smooth.shape[3] + gy + shift).flatten()].view(b, v, n)
    h = img.shape[-1]
    maps = (1 - img / peak)[:, c:h - c, c:h - c]
    return maps.reshape(b, v, h - 2 * c, h - 2 * c), 1 - at / peak.view(b, v, 1)


def test_preset_settings():
    seg = RealisticProjector(preset="pointclip_v2_seg")
    assert RealisticProjector(views="pointclip_v2_seg").settings == seg.settings
    assert build_projector("realistic", preset="pointclip_v2_seg").settings == seg.settings
    s = seg.settings
    assert (s["grid_resolution"], s["depth_bins"], s["obj_ratio"], s["depth_bias"]) == (224, 112, 0.7, 0.3)
    assert (s["pool_kernel"], s["pool_padding"], s["pool_kernel_z"]) == (11, 5, 5)
    assert (s["blur_kernel"], s["blur_sigma"], s["blur_kernel_z"], s["blur_sigma_z"]) == (5, 1.0, 5, 2.0)
    assert s["crop"] == 20 and s["map_size"] == 184 and s["image_size"] == 224
    assert s["views"]["pans"][0] == math.pi / 4 and s["views"]["pans"][8] == math.pi / 15
    assert seg.view_set == POINTCLIP_V2_SEG
    # the classification preset's settings carry none of the new keys (caches stay valid)
    cls = RealisticProjector().settings
    assert not {"pool_kernel_z", "blur_kernel_z", "blur_sigma_z", "crop"} & set(cls)
    assert "pans" not in cls["views"] and cls["map_size"] == 110
    keys = {json.dumps(p.settings, sort_keys=True) for p in
            (seg, RealisticProjector(), small(), small(crop=0), small(pool_kernel_z=1), small(blur_sigma_z=1.0))}
    assert len(keys) == 6
    # options given explicitly override the preset's
    assert RealisticProjector(preset="pointclip_v2_seg", crop=0).map_size == 224


@pytest.mark.parametrize("kw, match", [
    ({"pool_kernel_z": 4}, "pool_kernel_z must be odd"), ({"blur_kernel_z": 0}, "blur_kernel_z must be"),
    ({"crop": 16}, "crop .16. leaves nothing"), ({"crop": -1}, "crop must be"), ({"depth_bins": 3}, "depth_bins must be >= 4"),
    ({"blur_sigma_z": 0.0}, "blur_sigma_z must be"), ({"preset": "nope"}, "pointclip_v2_seg")])
def test_bad_options(kw, match):
    with pytest.raises(ValueError, match=match):
        small(**kw)


@pytest.mark.parametrize("kw", [{}, {"pool_padding": 1, "blur_kernel_z": 1},
                                # the preset's kernels and crop on a 64 x 64 x 32 grid
                                {"grid_resolution": 64, "depth_bins": 32, "pool_kernel": 11,
                                 "pool_padding": 5, "pool_kernel_z": 5, "blur_kernel": 5, "crop": 20}])
def test_volume_path_matches_dense_reference(kw):
    proj = small(**kw)
    pts = clouds(1, 300, seed=1)
    ref_maps, ref_depth = dense_reference(proj, pts)
    maps = proj.project(pts)
    assert maps.shape == (1, 3, proj.map_size, proj.map_size) == ref_maps.shape
    assert torch.allclose(maps.double(), ref_maps, atol=2e-6)
    assert ((maps < 0.999).float().mean() > 0.2) and float(maps.min()) >= 0
    assert torch.allclose(proj.locate(pts).depth.double(), ref_depth, atol=2e-6)
    # CPU blocks of one map or of many give the same pixels
    proj.CPU_VOLUME_BLOCK_MAPS = 4
    assert torch.allclose(proj.project(pts), maps, atol=1e-6)


def slow_locate(proj, points):
    """Per point, from the formulas: the pixel in the CLIP image (voxel + pool shift - crop,
    scaled by the align-corners resize), the dense reference's depth at its voxel, visible when
    within 0.1 of the dense map at its pixel and not cropped off."""
    maps, depth = dense_reference(proj, points)
    gx, gy, _, _ = voxels(proj, points)
    b, v, n = gx.shape
    h, s = proj.map_size, proj.image_size
    shift = proj.pool_padding - proj.pool_kernel // 2 - proj.crop
    xy = np.zeros((b, v, n, 2)); vis = np.zeros((b, v, n), bool)
    for i in range(b):
        for k in range(v):
            for j in range(n):
                row, col = gx[i, k, j].item() + shift, gy[i, k, j].item() + shift
                inside = 0 <= row < h and 0 <= col < h
                xy[i, k, j] = (col * (s - 1) / (h - 1), row * (s - 1) / (h - 1))
                vis[i, k, j] = inside and abs(depth[i, k, j].item() - maps[i, k, row, col].item()) <= 0.1
    return xy, depth.numpy(), vis


def test_locate_matches_slow_loop():
    proj = small(crop=6, obj_ratio=0.95)          # some points land on the cropped-off border
    pts = clouds(2, 150, seed=3)
    got = proj.locate(pts)
    xy, depth, vis = slow_locate(proj, pts)
    inside = (xy >= 0).all(-1) & (xy <= proj.image_size - 1).all(-1)
    assert 0.01 < 1 - inside.mean() < 0.3
    assert np.allclose(got.xy.numpy()[inside], xy[inside], atol=1e-4)
    assert np.allclose(got.depth.numpy(), depth, atol=1e-5)
    assert (got.visible.numpy() == vis).all()
    assert not got.visible.numpy()[~inside].any()
    assert 0.2 < vis.mean() < 0.95


def test_image_holds_visible_depths():
    proj = RealisticProjector(preset="pointclip_v2_seg", views=[5, 8], image_size=184)   # no resize
    pts = clouds(1, 2048, seed=4)
    loc = proj.locate(pts)
    img = proj(pts)[:, :, 0]
    x, y = loc.xy[..., 0].round().long(), loc.xy[..., 1].round().long()
    assert torch.equal(loc.xy, loc.xy.round())
    held = torch.gather(img.flatten(2), 2, y * 184 + x)
    vis = loc.visible
    assert 0.2 < vis.float().mean() < 0.99
    assert (loc.depth[vis] - held[vis]).abs().max() <= 0.1 + 1e-6
    assert ((loc.depth[~vis] - held[~vis]).abs() > 0.1 - 1e-6).all()
    # in the 224 px CLIP image the same point sits at xy * 223/183 of the 184 px map
    full = RealisticProjector(preset="pointclip_v2_seg", views=[5, 8]).locate(pts)
    assert torch.allclose(full.xy, loc.xy * 223 / 183, atol=1e-4)
    assert torch.equal(full.visible, vis) and torch.equal(full.depth, loc.depth)


def test_pans_in_view_sets():
    with pytest.raises(ValueError, match="1 pans for 2 views"):
        ViewSet(angles=((0.0, 0.0, 0.0), (0.1, 0.0, 0.0)), pans=(0.5,))
    with pytest.raises(ValueError, match="finite"):
        ViewSet(angles=((0.0, 0.0, 0.0),), pans=(float("nan"),))
    sub = POINTCLIP_V2_SEG.subset([8, 0])
    assert sub.pans == (math.pi / 15, math.pi / 4) and sub.tilts == (math.pi / 15, math.pi / 9)
    assert len(POINTCLIP_V2_SEG.rotations()) == 3 and len(POINTCLIP_V2.rotations()) == 2
    # a pan is a rotation about x after the base rotation: pan s on (a, 0, 0) is (a + s, 0, 0)
    panned = ViewSet(angles=((0.3, 0.0, 0.0),), pans=(0.2,))
    base, pan = panned.rotations()
    assert torch.allclose(base[0] @ pan[0], ViewSet(angles=((0.5, 0.0, 0.0),)).rotations()[0][0], atol=1e-6)
    # V2's segmentation side views are its classification side views; top and bottom are panned
    seg, cls = POINTCLIP_V2_SEG.rotations(), POINTCLIP_V2.rotations()
    diff = (seg[0] @ seg[1] @ seg[2] - cls[0] @ cls[1]).abs().amax(dim=(1, 2))
    assert (diff[:8] < 1e-6).all() and (diff[8:] > 0.1).all()
