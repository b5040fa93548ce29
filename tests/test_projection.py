"""Projectors against slow per-point references written from docs/projection.md, hand-computed
cases, the official code's outputs (golden arrays in tests/data/projector_goldens.npz, written
by scripts/make_goldens.py from checkouts of the official repositories), and bad inputs."""
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from pointcalip.projection import (POINTCLIP_FEWSHOT, POINTCLIP_V2, POINTCLIP_ZEROSHOT, PointCLIPProjector,
                                   RealisticProjector, ViewSet, build_projector, ring_views)
from pointcalip.projection.base import CLIP_MEAN, CLIP_STD


def clouds(b, n, seed=0, scale=1.0):
    """[b, n, 3] float32 clouds inside the unit sphere (times `scale`), box-like."""
    g = torch.Generator().manual_seed(seed)
    p = (torch.rand(b, n, 3, generator=g) * 2 - 1) * torch.tensor([1.0, 0.8, 0.5])
    return p / p.norm(dim=-1).amax() * scale


def frac_close(a, b, tol=1e-4):
    return ((a - b).abs() <= tol).double().mean().item()


GOLDENS = Path(__file__).parent / "data" / "projector_goldens.npz"


@pytest.fixture(scope="module")
def golden():
    """The official projectors' outputs on fixed clouds, and those clouds (float32 arrays as
    torch tensors; metadata as str). Rewrite with scripts/make_goldens.py."""
    with np.load(GOLDENS, allow_pickle=False) as f:
        return {k: str(f[k]) if f[k].dtype.kind == "U" else torch.from_numpy(f[k]) for k in f.files}


# --- slow references, one point at a time, straight from the docs ------------------------------

def rot(a, b, c):
    """Rx(a) @ Ry(b) @ Rz(c) in float64."""
    ca, sa, cb, sb, cc, sc = math.cos(a), math.sin(a), math.cos(b), math.sin(b), math.cos(c), math.sin(c)
    rx = np.array([[1, 0, 0], [0, ca, -sa], [0, sa, ca]])
    ry = np.array([[cb, 0, sb], [0, 1, 0], [-sb, 0, cb]])
    rz = np.array([[cc, -sc, 0], [sc, cc, 0], [0, 0, 1]])
    return rx @ ry @ rz


def slow_pointclip(points, angles, res, dist):
    """points [N, 3] -> [V, res, res]: one-pixel splats, harmonic mean of the depths."""
    out = np.zeros((len(angles), res, res))
    for vi, (a, b, c) in enumerate(angles):
        count = np.zeros((res, res))
        inv = np.zeros((res, res))
        for p in np.asarray(points, dtype=np.float64):
            x, y, z = rot(a, b, c) @ p
            z = z + dist
            u, v = x / (z + 1e-12), y / (z + 1e-12)
            row, col = math.ceil((u + 1) * res / 2 - 0.5), math.ceil((v + 1) * res / 2 - 0.5)
            if not (0 <= row <= res - 1 and 0 <= col <= res - 1) or z < 0:
                continue
            count[row, col] += 1
            inv[row, col] += 1 / (z + 1e-12)
        out[vi] = np.where(inv > 0, count / np.where(inv > 0, inv, 1), 0)
    return out


def slow_realistic(points, angles, tilts, res=112, depth=8, ratio=0.8, bias=0.2, pool=7, pool_pad=2,
                   blur=3, sigma=3.0):
    """points [N, 3] -> [V, res + 2 * pool_pad - pool + 1, same]: V2's realistic projection."""
    pts = np.asarray(points, dtype=np.float64)
    g = np.exp(-(np.arange(blur) - blur // 2) ** 2 / (2 * sigma ** 2))
    kern = np.outer(g, g) / np.outer(g, g).sum()
    h = res + 2 * pool_pad - pool + 1
    maps = []
    for (a, b, c), t in zip(angles, tilts):
        q = pts @ (rot(0, t, 0) @ rot(a, b, c)).T
        lo, hi = q.min(0), q.max(0)
        q = (q - (lo + hi) / 2) / (hi - lo).max() * 2
        q[:, :2] *= ratio
        grid = np.zeros((depth, res, res))
        for x, y, z in q:
            gx = min(max(math.ceil((x + 1) / 2 * res), 1), res - 2)
            gy = min(max(math.ceil((y + 1) / 2 * res), 1), res - 2)
            dz = ((z + 1) / 2 + bias) / (1 + bias) * (depth - 2)
            k = math.ceil(dz)
            grid[k, gx, gy] = max(grid[k, gx, gy], min(max(dz, 1), depth - 2))
        padded = np.full((depth, res + 2 * pool_pad, res + 2 * pool_pad), -np.inf)
        padded[:, pool_pad:pool_pad + res, pool_pad:pool_pad + res] = grid
        pooled = np.zeros((depth, h, h))
        for i in range(h):
            for j in range(h):
                pooled[:, i, j] = padded[:, i:i + pool, j:j + pool].max(axis=(1, 2))
        bp = np.pad(pooled, ((0, 0), (blur // 2, blur // 2), (blur // 2, blur // 2)))
        smooth = np.zeros_like(pooled)
        for i in range(h):
            for j in range(h):
                smooth[:, i, j] = (bp[:, i:i + blur, j:j + blur] * kern).sum(axis=(1, 2))
        img = smooth.max(0)
        maps.append(1 - img / img.max())
    return np.stack(maps)


def test_pointclip_matches_slow_reference():
    pts = (torch.rand(30, 3, generator=torch.Generator().manual_seed(1)) * 4 - 2)  # some behind / outside
    for preset, idx in [("zeroshot", [0, 4]), ("fewshot", [5, 6])]:
        proj = PointCLIPProjector(views=idx, preset=preset)
        views = (POINTCLIP_ZEROSHOT if preset == "zeroshot" else POINTCLIP_FEWSHOT).subset(idx)
        ref = slow_pointclip(pts.numpy(), views.angles, proj.resolution, proj.distance)
        ours = proj.project(pts)[0].double().numpy()
        assert (ref > 0).sum() >= 10  # the test sees real points
        np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_realistic_matches_slow_reference():
    pts = clouds(1, 30, seed=2)[0]
    proj = RealisticProjector(views=[0, 8], grid_resolution=24)
    ref = slow_realistic(pts.numpy(), [POINTCLIP_V2.angles[i] for i in (0, 8)],
                         [POINTCLIP_V2.tilts[i] for i in (0, 8)], res=24)
    ours = proj.project(pts)[0].double().numpy()
    assert ours.shape == ref.shape == (2, 22, 22)
    assert (ref < 0.5).sum() > 20
    np.testing.assert_allclose(ours, ref, atol=1e-4)


# --- hand-computed cases -----------------------------------------------------------------------

def test_pointclip_single_points_by_hand():
    proj = PointCLIPProjector(views=[0])  # (0, 0, pi/2): (x, y, z) -> (-y, x, z), depth z + 1.6
    m = proj.project(torch.tensor([[0.0, 0.0, 0.0]]))[0, 0]
    assert m[64, 64] == pytest.approx(1.6) and (m > 0).sum() == 1  # X = 64, row ceil(63.5)
    # (0.2, -0.1, 0.3) -> (0.1, 0.2, 0.3), depth 1.9: X = 64 + 64 * 0.1 / 1.9 = 67.37 -> row 67,
    # Y = 64 + 64 * 0.2 / 1.9 = 70.74 -> column 71
    m = proj.project(torch.tensor([[0.2, -0.1, 0.3]]))[0, 0]
    assert m[67, 71] == pytest.approx(1.9) and (m > 0).sum() == 1


def test_pointclip_harmonic_mean_by_hand():
    proj = PointCLIPProjector(views=[0])
    m = proj.project(torch.tensor([[0.0, 0.0, 0.2], [0.0, 0.0, 0.6]]))[0, 0]  # depths 1.8, 2.2
    assert m[64, 64].item() == pytest.approx(2 / (1 / 1.8 + 1 / 2.2), rel=1e-6)  # 1.98, not a z-buffer
    assert (m > 0).sum() == 1


def test_pointclip_view_rotations_by_hand():
    proj = PointCLIPProjector()  # 4 side views around y, then top (looks along -y) and bottom
    up = proj.project(torch.tensor([[0.0, 0.5, 0.0]]))[0]
    for v in range(4):  # u = -0.5 / 1.6 -> X = 44 -> row 44 (above the centre: y is up), column 64
        assert up[v, 44, 64] == pytest.approx(1.6) and (up[v] > 0).sum() == 1
    assert up[4, 64, 64] == pytest.approx(1.1)  # top view: the point is 0.5 closer
    assert up[5, 64, 64] == pytest.approx(2.1)  # bottom view: 0.5 farther
    right = proj.project(torch.tensor([[0.5, 0.0, 0.0]]))[0]
    assert right[0, 64, 84] == pytest.approx(1.6)  # v = 0.5 / 1.6 -> Y = 84 -> column 84
    assert right[1, 64, 64] == pytest.approx(2.1)  # view 1 looks along +x
    assert right[3, 64, 64] == pytest.approx(1.1)  # view 3 looks along -x


def test_realistic_two_points_by_hand():
    # identity view; bbox centre (0, .1, .15), largest side 1 -> normalised (-.8, -.16, -.3), (.8, .16, .3)
    proj = RealisticProjector(views=[(0.0, 0.0, 0.0)])
    m = proj.project(torch.tensor([[-0.5, 0.0, 0.0], [0.5, 0.2, 0.3]]))[0, 0].double()
    # voxels: X = ceil(.1 * 112) = 12, Y = ceil(.42 * 112) = 48, dz = .55 / 1.2 * 6 = 2.75
    #         X = ceil(.9 * 112) = 101, Y = ceil(.58 * 112) = 65, dz = .85 / 1.2 * 6 = 4.25
    # the 7x7 pool (padding 2) spreads input row r over output rows r-4 .. r+2
    assert m.shape == (110, 110)
    assert m[100, 64].item() == pytest.approx(0.0, abs=1e-6)           # inside the far plateau: max
    assert m[11, 47].item() == pytest.approx(1 - 2.75 / 4.25, abs=1e-6)  # inside the near plateau
    e = math.exp(-1 / 18)
    edge = 2.75 * (1 + e) / (1 + 2 * e)  # top edge row 8: the blur row above is empty
    assert m[8, 47].item() == pytest.approx(1 - edge / 4.25, abs=1e-6)
    assert m[7, 47].item() == pytest.approx(1 - 2.75 * e / (1 + 2 * e) / 4.25, abs=1e-6)
    assert m[6, 47].item() == 1.0 and m[0, 0].item() == 1.0 and m[50, 50].item() == 1.0


# --- against the official code's outputs (tests/data/projector_goldens.npz) ----------------------

@pytest.mark.parametrize("fewshot", [False, True])
def test_pointclip_matches_official(golden, fewshot):
    key, res = ("pointclip_fewshot", 224) if fewshot else ("pointclip_zeroshot", 128)
    pts, ref_maps = golden["clouds"], golden[f"{key}_maps"]
    proj = PointCLIPProjector(views="fewshot" if fewshot else "zeroshot")
    maps = proj.project(pts)
    assert maps.shape == ref_maps.shape == (3, proj.num_views, res, res)
    assert frac_close(maps, ref_maps) >= 0.9999
    assert (ref_maps > 0).sum() > 1000
    # CLIP images of one cloud; the golden keeps channel 0 (the official channels are equal)
    i = int(golden["image_cloud"])
    imgs = proj(pts[i:i + 1])[0]
    assert imgs.shape == (proj.num_views, 3, 224, 224)
    for c in range(3):
        assert frac_close(imgs[:, c], golden[f"{key}_images"]) >= 0.9999


def test_realistic_matches_official(golden):
    pts, ref_maps = golden["clouds"], golden["realistic_maps"]
    i, views = int(golden["image_cloud"]), golden["realistic_image_views"].tolist()
    for exact in (False, True):
        proj = RealisticProjector(reference_translation=exact)
        maps, imgs = proj.project(pts), proj(pts[i:i + 1])[0, views]
        assert maps.shape == ref_maps.shape == (3, 10, 110, 110)
        assert imgs.shape == (len(views), 3, 224, 224)
        need = 1.0 if exact else 0.9999
        assert frac_close(maps, ref_maps) >= need
        for c in range(3):
            assert frac_close(imgs[:, c], golden["realistic_images"]) >= need


def test_golden_metadata(golden):
    for which in ("pointclip", "pointclip_v2"):
        assert re.fullmatch(r"[0-9a-f]{40}", golden[f"meta_{which}_commit"]), "official code at a clean commit"
        assert "trainers/mv_utils_zs.py=" in golden[f"meta_{which}_sha256"]
    assert golden["meta_pointclip_url"].endswith("ZrrSkywalker/PointCLIP")
    assert golden["meta_pointclip_v2_url"].endswith("yangyangyang127/PointCLIP_V2")
    assert re.match(r"\d+\.\d+", golden["meta_torch"]) and re.match(r"\d{4}-\d\d-\d\d", golden["meta_date"])
    assert golden["meta_command"].startswith("python scripts/make_goldens.py")
    assert golden["clouds"].dtype == torch.float32 and golden["clouds"].shape == (3, 1024, 3)


# --- properties ----------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [PointCLIPProjector, RealisticProjector])
def test_point_order_and_batching(make):
    proj = make()
    pts = clouds(3, 500, seed=5)
    full = proj.project(pts)
    perm = torch.randperm(500, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(proj.project(pts[:, perm]), full, atol=1e-5)
    for i in range(3):
        assert torch.equal(proj.project(pts[i]), full[i:i + 1])


@pytest.mark.parametrize("make", [PointCLIPProjector, RealisticProjector])
def test_fp16_and_numpy_input(make):
    proj = make()
    pts = clouds(2, 300, seed=6).half()
    out = proj.project(pts)
    assert out.dtype == torch.float32 and proj(pts).dtype == torch.float32
    assert torch.equal(out, proj.project(pts.float()))
    assert torch.equal(proj.project(pts.float().numpy()), out)


def test_subsets_equal_slices():
    pts = clouds(2, 400, seed=7)
    for kwargs, idx in [({}, [0, 2, 4]), ({"preset": "fewshot"}, [9, 4, 1])]:
        full = PointCLIPProjector(**kwargs).project(pts)
        sub = PointCLIPProjector(views=idx, **kwargs)
        assert sub.num_views == 3
        assert torch.equal(sub.project(pts), full[:, idx])
    full = RealisticProjector().project(pts)
    assert torch.equal(RealisticProjector(views=[8, 0, 3]).project(pts), full[:, [8, 0, 3]])
    # select_views on an existing projector: same pixels, same settings as building the subset
    fewshot = PointCLIPProjector(views="fewshot")
    picked = fewshot.select_views([9, 4, 1])
    assert picked.num_views == 3 and fewshot.num_views == 10
    assert torch.equal(picked.project(pts), fewshot.project(pts)[:, [9, 4, 1]])
    assert picked.settings["views"]["angles"] == PointCLIPProjector(views=[9, 4, 1], preset="fewshot").settings["views"]["angles"]


def test_ring_views():
    pts = clouds(2, 400, seed=8)
    # a ring of 4 with top/bottom is exactly PointCLIP's zero-shot view list
    ring = PointCLIPProjector(views={"ring": 4, "top_bottom": True})
    assert ring.view_set.angles == POINTCLIP_ZEROSHOT.angles and ring.view_set.tilts is None
    assert torch.equal(ring.project(pts), PointCLIPProjector().project(pts))
    # a ring of 8 at elevation -20 (tilt pi/9) holds V2's eight side views, in another order
    r8 = RealisticProjector(views=ring_views(8, elevation=-20))
    side = RealisticProjector(views=list(range(8))).project(pts)
    assert frac_close(r8.project(pts)[:, [1, 3, 5, 7, 0, 2, 4, 6]], side) >= 0.9999
    # any size, elevation, with top/bottom, for either projector
    for make in (PointCLIPProjector, RealisticProjector):
        proj = make(views={"ring": 5, "elevation": 30, "top_bottom": True})
        out = proj.project(pts)
        assert proj.num_views == 7 and out.shape[1] == 7 and torch.isfinite(out).all()
    # elevation 30: camera above the horizon, so a point above the centre is nearer (depth
    # 1.6 - 0.5 sin 30) and one below farther
    up = PointCLIPProjector(views={"ring": 1, "elevation": 30})
    near = up.project(torch.tensor([[0.0, 0.5, 0.0]]))[0, 0]
    far = up.project(torch.tensor([[0.0, -0.5, 0.0]]))[0, 0]
    assert near.max().item() == pytest.approx(1.35, abs=1e-5)
    assert far.max().item() == pytest.approx(1.85, abs=1e-5)
    with pytest.raises(ValueError, match="ring"):
        PointCLIPProjector(views={"rings": 4})
    with pytest.raises(ValueError, match="positive integer"):
        ring_views(0)


def test_clip_images_and_normalisation():
    pts = clouds(2, 300, seed=9)
    proj = PointCLIPProjector()
    maps, imgs = proj.project(pts), proj(pts)
    assert imgs.shape == (2, 6, 3, 224, 224)
    assert torch.equal(imgs[:, :, 0], imgs[:, :, 2])
    up = torch.nn.functional.interpolate(maps.reshape(12, 1, 128, 128), size=(224, 224), mode="bilinear",
                                         align_corners=True).reshape(2, 6, 224, 224)
    assert torch.equal(imgs[:, :, 1], up)
    normed = PointCLIPProjector(clip_normalize=True)(pts)
    for c in range(3):
        assert torch.allclose(normed[:, :, c], (up - CLIP_MEAN[c]) / CLIP_STD[c], atol=1e-6)
    fs = PointCLIPProjector(views="fewshot")  # 224 px maps: no resize
    assert torch.equal(fs(pts)[:, :, 0], fs.project(pts))


def test_settings_and_factory():
    configs = [PointCLIPProjector(), PointCLIPProjector(views="fewshot"), PointCLIPProjector(views=[0, 1]),
               PointCLIPProjector(distance=1.5), PointCLIPProjector(clip_normalize=True),
               PointCLIPProjector(image_size=112), PointCLIPProjector(views={"ring": 6}),
               PointCLIPProjector(views={"ring": 6, "elevation": 10}),
               RealisticProjector(), RealisticProjector(views=[0, 1]), RealisticProjector(depth_bins=6),
               RealisticProjector(reference_translation=True), RealisticProjector(blur_sigma=1.0)]
    keys = [json.dumps(p.settings, sort_keys=True) for p in configs]
    assert len(set(keys)) == len(keys)
    s = PointCLIPProjector(views="fewshot").settings
    assert s["class"] == "PointCLIPProjector" and s["resolution"] == 224 and s["distance"] == 1.4
    assert s["views"]["angles"][4] == [5 * math.pi / 4, -math.pi / 4, math.pi / 2]
    assert s["image_size"] == 224 and s["clip_normalize"] is False
    assert build_projector("pointclip", views="fewshot").settings == s
    assert build_projector("realistic").settings == RealisticProjector().settings
    assert RealisticProjector().settings["views"]["tilts"][8] == math.pi / 15
    with pytest.raises(ValueError, match="pointclip"):
        build_projector("nope")
    with pytest.raises(ValueError, match="realistic"):
        build_projector("realistic", resolution=3)
    with pytest.raises(ValueError, match="disagree"):
        PointCLIPProjector(views="fewshot", preset="zeroshot")
    with pytest.raises(ValueError, match=r"\[0, 5\]"):
        PointCLIPProjector(views=[6])
    custom = ViewSet(angles=((0.0, 0.0, 0.0), (0.1, 0.2, 0.3)), tilts=(0.0, 0.5), name="mine")
    assert PointCLIPProjector(views=custom).settings["views"]["tilts"] == [0.0, 0.5]
    with pytest.raises(ValueError, match="2 tilts for 1 view;"):
        ViewSet(angles=((0.0, 0.0, 0.0),), tilts=(0.0, 0.5))


# --- bad and extreme inputs ----------------------------------------------------------------------

@pytest.mark.parametrize("make", [PointCLIPProjector, RealisticProjector])
def test_bad_inputs(make):
    proj = make()
    pts = clouds(4, 50, seed=10)
    for bad in (float("nan"), float("inf")):
        x = pts.clone()
        x[2, 7, 1] = bad
        with pytest.raises(ValueError, match="cloud 2"):
            proj.project(x)
    for shape in [(5, 2), (2, 5, 4), (5,), (1, 2, 5, 3)]:
        with pytest.raises(ValueError, match=r"\[B, N, 3\].*" + str(shape).replace("(", r"\(").replace(")", r"\)")):
            proj.project(torch.zeros(shape))
    for shape in [(0, 3), (2, 0, 3), (0, 5, 3)]:
        with pytest.raises(ValueError, match=r"\[B, N, 3\]"):
            proj(torch.zeros(shape))
    with pytest.raises(TypeError):
        proj.project([[0.0, 0.0, 0.0]])


@pytest.mark.parametrize("distance", [float("nan"), float("inf"), -1.6, 0.0])
def test_bad_camera_distance(distance):
    with pytest.raises(ValueError, match="distance must be a positive number"):
        PointCLIPProjector(distance=distance)


def test_degenerate_clouds():
    same = torch.full((2, 100, 3), 0.3)
    flat = clouds(2, 100, seed=11)
    flat[..., 1] = 0.0  # a plane seen edge-on by the top/bottom views and face-on by others
    single = torch.tensor([[0.1, 0.2, 0.3]])
    for make in (PointCLIPProjector, RealisticProjector):
        for x in (same, flat, single):
            assert torch.isfinite(make()(x)).all()
    assert torch.equal(RealisticProjector().project(same), torch.ones(2, 10, 110, 110))  # blank: white
    assert torch.equal(RealisticProjector().project(single), torch.ones(1, 10, 110, 110))
    assert ((PointCLIPProjector().project(same) > 0).sum(dim=(2, 3)) == 1).all()  # one pixel a view
    assert (RealisticProjector().project(flat) < 1).any(dim=(2, 3)).all()


def test_large_cloud(golden):
    pts = golden["large_cloud"]                       # [1, 20000, 3]: several points per pixel
    # each point five times (100,000 points): the official pixels are the same (a harmonic mean
    # and a maximum over repeated values, the same bounding box), up to float rounding
    for cloud in (pts, pts.repeat(1, 5, 1)):
        for proj, key in [(PointCLIPProjector(), "large_pointclip_zeroshot_maps"),
                          (RealisticProjector(reference_translation=True), "large_realistic_maps")]:
            out = proj.project(cloud)
            assert out.shape == golden[key].shape
            assert frac_close(out, golden[key]) >= 0.9999


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    pts = clouds(8, 2048, seed=13)
    for proj in (PointCLIPProjector(), PointCLIPProjector(views="fewshot"), RealisticProjector()):
        cpu = proj(pts)
        gpu = proj(pts.cuda())
        assert gpu.device.type == "cuda" and gpu.dtype == torch.float32
        assert frac_close(gpu.cpu(), cpu) >= 0.9999
        assert torch.isfinite(gpu).all()
        assert frac_close(proj(pts.cuda().half()).cpu(), proj(pts.half())) >= 0.9999
