"""`locate`: where each point lands, against a slow per-point loop and the rendered images."""
import math

import numpy as np
import pytest
import torch

from pointcalip.projection import PointCLIPProjector, RealisticProjector


def clouds(b, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    p = torch.randn(b, n, 3, generator=g)
    return p / p.norm(dim=-1).amax(dim=1)[:, None, None] * 0.9


def rotated(proj, points, v):
    p = points.double()
    for m in proj.view_set.rotations():
        p = p @ m[v].double()
    return p


def slow_pointclip(proj, points, tol):
    """Per point: the pixel it splats to, its depth, visibility against the rendered map."""
    maps = proj.project(points).double()
    b, n, _ = points.shape
    v, r, s = proj.num_views, proj.resolution, proj.image_size
    xy = np.zeros((b, v, n, 2)); depth = np.zeros((b, v, n)); vis = np.zeros((b, v, n), bool)
    for i in range(b):
        for k in range(v):
            p = rotated(proj, points[i], k)
            for j in range(n):
                x, y, z = p[j].tolist()
                d = z + proj.distance
                row = math.ceil((x / (d + 1e-12) + 1) * r / 2 - 0.5)
                col = math.ceil((y / (d + 1e-12) + 1) * r / 2 - 0.5)
                inside = 0 <= row < r and 0 <= col < r and d >= 0
                row, col = min(max(row, 0), r - 1), min(max(col, 0), r - 1)
                xy[i, k, j] = (col * (s - 1) / (r - 1), row * (s - 1) / (r - 1))
                depth[i, k, j] = d
                vis[i, k, j] = inside and abs(d - maps[i, k, row, col].item()) <= tol
    return xy, depth, vis


def test_pointclip_locate_matches_slow_loop():
    proj = PointCLIPProjector(resolution=24)
    pts = clouds(2, 150)
    got = proj.locate(pts)
    xy, depth, vis = slow_pointclip(proj, pts, proj.VISIBLE_TOLERANCE)
    assert got.xy.shape == (2, 6, 150, 2) and got.visible.dtype == torch.bool
    assert np.allclose(got.xy.numpy(), xy, atol=1e-4)
    assert np.allclose(got.depth.numpy(), depth, atol=1e-5)
    assert (got.visible.numpy() == vis).mean() > 0.999       # float ties at the tolerance
    assert 0.2 < vis.mean() < 0.95                           # some points hidden, most seen


def test_pointclip_hidden_point_by_hand():
    # view 0 looks along z (depth z + 1.6). Two far-apart points on the axis share a pixel
    # whose value is their harmonic mean 2 / (1/1.1 + 1/2.1) = 1.44: neither is within 0.05
    # of it (PointCLIP keeps no z-buffer); two close points (1.6, 1.62; mean 1.61) both are.
    proj = PointCLIPProjector(views=[0], resolution=16)
    pts = torch.tensor([[[0.0, 0.0, -0.5], [0.0, 0.0, 0.5], [0.5, 0.5, 0.0], [0.5, 0.5, 0.02]]])
    loc = proj.locate(pts)
    assert loc.visible[0, 0].tolist() == [False, False, True, True]
    assert torch.equal(loc.xy[0, 0, 0], loc.xy[0, 0, 1])
    assert loc.depth[0, 0].tolist() == pytest.approx([1.1, 2.1, 1.6, 1.62])
    assert proj.locate(pts, visible_tolerance=0.4).visible[0, 0].tolist() == [True, False, True, True]


def test_pointclip_image_holds_visible_depths():
    proj = PointCLIPProjector(views="fewshot")               # 224 px maps: image == map
    pts = clouds(2, 400, seed=1)
    loc = proj.locate(pts)
    img = proj(pts)[:, :, 0]
    x, y = loc.xy[..., 0].round().long(), loc.xy[..., 1].round().long()
    held = torch.gather(img.flatten(2), 2, y * 224 + x)
    vis = loc.visible
    assert vis.float().mean() > 0.3
    assert (loc.depth[vis] - held[vis]).abs().max() <= proj.VISIBLE_TOLERANCE + 1e-5
    assert ((loc.depth[~vis] - held[~vis]).abs() > proj.VISIBLE_TOLERANCE - 1e-5).all()


def slow_realistic(proj, points):
    """Per point, the voxel formulas of docs/projection.md; the map pixel is voxel - 1 (7x7 pool, pad 2)."""
    maps = proj.project(points).double()
    b, n, _ = points.shape
    v, r, d, h = proj.num_views, proj.grid_resolution, proj.depth_bins, proj.map_size
    xy = np.zeros((b, v, n, 2)); depth = np.zeros((b, v, n)); vis = np.zeros((b, v, n), bool)
    raw = np.zeros((b, v, n))
    for i in range(b):
        for k in range(v):
            p = rotated(proj, points[i], k).numpy()
            lo, hi = p.min(0), p.max(0)
            p = (p - (lo + hi) / 2) / (hi - lo).max() * 2
            for j in range(n):
                gx = min(max(math.ceil((p[j, 0] * 0.8 + 1) / 2 * r), 1), r - 2)
                gy = min(max(math.ceil((p[j, 1] * 0.8 + 1) / 2 * r), 1), r - 2)
                dz = ((p[j, 2] + 1) / 2 + 0.2) / 1.2 * (d - 2)
                raw[i, k, j] = min(max(dz, 1), d - 2)
                xy[i, k, j] = ((gy - 1) * (proj.image_size - 1) / (h - 1),
                               (gx - 1) * (proj.image_size - 1) / (h - 1))
            peak = raw[i, k].max()   # the map's maximum before inversion is the top stored value
            for j in range(n):
                depth[i, k, j] = 1 - raw[i, k, j] / peak
                row, col = int(round(xy[i, k, j, 1] * (h - 1) / (proj.image_size - 1))), \
                    int(round(xy[i, k, j, 0] * (h - 1) / (proj.image_size - 1)))
                vis[i, k, j] = abs(depth[i, k, j] - maps[i, k, row, col].item()) <= 0.1
    return xy, depth, vis


def test_realistic_locate_matches_slow_loop():
    proj = RealisticProjector(views=[0, 3, 7], blur_kernel=1)   # no blur: the peak is a stored value
    pts = clouds(2, 120, seed=2)
    got = proj.locate(pts)
    xy, depth, vis = slow_realistic(proj, pts)
    assert np.allclose(got.xy.numpy(), xy, atol=1e-3)
    assert np.allclose(got.depth.numpy(), depth, atol=1e-4)
    assert (got.visible.numpy() == vis).mean() > 0.999
    assert 0.2 < vis.mean() < 0.99


def test_realistic_image_holds_visible_depths():
    proj = RealisticProjector(image_size=110)               # image == map, no resize
    pts = clouds(2, 500, seed=3)
    loc = proj.locate(pts)
    img = proj(pts)[:, :, 0]
    x, y = loc.xy[..., 0].round().long(), loc.xy[..., 1].round().long()
    held = torch.gather(img.flatten(2), 2, y * 110 + x)
    vis = loc.visible
    assert 0.2 < vis.float().mean() < 0.99
    assert (loc.depth[vis] - held[vis]).abs().max() <= 0.1 + 1e-6
    assert ((loc.depth[~vis] - held[~vis]).abs() > 0.1 - 1e-6).all()
    # a stricter tolerance hides more points
    assert proj.locate(pts, visible_tolerance=0.01).visible.sum() < vis.sum()


@pytest.mark.parametrize("make", [lambda: PointCLIPProjector(), lambda: RealisticProjector(),
                                  lambda: RealisticProjector(preset="pointclip_v2_seg", views=[0, 9])])
def test_locate_leaves_projection_alone(make):
    proj = make()
    pts = clouds(1, 300, seed=4)
    before = proj.project(pts).clone()
    loc = proj.locate(pts[0])                                # [N, 3] accepted
    assert loc.xy.shape == (1, proj.num_views, 300, 2)
    assert float(loc.xy.min()) >= 0 and float(loc.xy.max()) <= proj.image_size - 1
    assert torch.equal(proj.project(pts), before)


@pytest.mark.parametrize("build", [
    lambda: PointCLIPProjector(),
    lambda: PointCLIPProjector("fewshot", clip_normalize=True),
    lambda: RealisticProjector(),
    lambda: RealisticProjector([0, 3, 8], preset="pointclip_v2_seg"),
])
@pytest.mark.parametrize("tol", [None, 0.02])
def test_one_render_gives_the_images_and_locate_bit_for_bit(build, tol):
    """``images_and_locations``: the images of ``proj(points)`` and the locations of
    ``proj.locate(points)`` from one render, equal to both calls bit for bit on random
    clouds (hidden and visible points mixed)."""
    proj = build()
    pts = clouds(3, 500, seed=7)
    images, loc = proj.images_and_locations(pts, visible_tolerance=tol)
    alone = proj.locate(pts, visible_tolerance=tol)
    assert torch.equal(images, proj(pts))
    assert torch.equal(loc.xy, alone.xy) and torch.equal(loc.visible, alone.visible)
    assert torch.equal(loc.depth, alone.depth)
    assert (loc.map_size, loc.image_size) == (alone.map_size, alone.image_size)
    assert loc.visible.any() and not loc.visible.all()


def test_one_render_renders_once(monkeypatch):
    """The realistic projector renders (``_render``) once for images and locations."""
    proj = RealisticProjector()
    calls = []
    inner = RealisticProjector._render
    monkeypatch.setattr(RealisticProjector, "_render",
                        lambda self, *a, **k: calls.append(k) or inner(self, *a, **k))
    proj.images_and_locations(clouds(1, 100))
    assert calls == [{"with_points": True}]
