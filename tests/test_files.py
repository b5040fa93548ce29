"""load_point_cloud on every supported cloud and mesh format."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from pointcalip.datasets import load_point_cloud
from pointcalip.datasets.files import Z_UP_TO_Y_UP, resample_points, sample_mesh_surface

N = 300


@pytest.fixture(scope="module")
def cloud() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(size=(N, 3)) * [1.0, 2.0, 0.5] + [3.0, -1.0, 2.0]


def _unit(p: np.ndarray) -> np.ndarray:
    c = p - p.mean(axis=0)
    return c / np.linalg.norm(c, axis=1).max()


def _write(path, pts, fmt):
    if fmt in ("ply", "pcd"):
        import open3d as o3d

        pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
        assert o3d.io.write_point_cloud(str(path), pc)
    elif fmt == "npy":
        np.save(path, np.hstack([pts, np.ones((len(pts), 2))]))  # extra columns ignored
    elif fmt == "npz":
        np.savez(path, points=pts, labels=np.zeros(len(pts)))
    elif fmt == "xyz":
        np.savetxt(path, pts, fmt="%.10f")
    elif fmt == "pts":
        path.write_text(f"{len(pts)}\n" + "\n".join(" ".join(f"{v:.10f}" for v in r) + " 0.5 7" for r in pts))
    elif fmt == "txt":
        np.savetxt(path, np.hstack([pts, np.ones((len(pts), 3))]), fmt="%.10f", delimiter=" ")
    elif fmt == "csv":
        np.savetxt(path, pts, fmt="%.10f", delimiter=",", header="x,y,z", comments="")


@pytest.mark.parametrize("fmt", ["ply", "pcd", "npy", "npz", "xyz", "pts", "txt", "csv"])
def test_cloud_formats(tmp_path, cloud, fmt):
    path = tmp_path / f"cloud.{fmt}"
    _write(path, cloud, fmt)
    out = load_point_cloud(path, num_points=N)
    assert out.dtype == torch.float32 and out.shape == (N, 3)
    # All N points kept in file order, centred and scaled onto the unit sphere.
    np.testing.assert_allclose(out.numpy(), _unit(cloud), atol=1e-5)


def test_subsample_upsample_and_seed(tmp_path, cloud):
    path = tmp_path / "c.npy"
    np.save(path, cloud)
    a = load_point_cloud(path, num_points=100, seed=1)
    torch.testing.assert_close(a, load_point_cloud(path, num_points=100, seed=1))
    assert not torch.equal(a, load_point_cloud(path, num_points=100, seed=2))
    assert np.linalg.norm(a.numpy(), axis=1).max() == pytest.approx(1.0, abs=1e-6)
    sub = resample_points(cloud, 100, seed=1)
    rows = [int(np.flatnonzero((cloud == r).all(1))[0]) for r in sub]
    assert len(set(rows)) == 100 and rows == sorted(rows)  # distinct points, file order
    np.testing.assert_allclose(a.numpy(), _unit(sub), atol=1e-6)
    up = resample_points(cloud[:10], 25, seed=0)
    np.testing.assert_array_equal(up[:10], cloud[:10])  # every point once, then repeats
    assert all((cloud[:10] == r).all(1).any() for r in up[10:])
    fps = resample_points(cloud, 5, sampling="fps")
    np.testing.assert_array_equal(fps[0], cloud[0])
    d = np.linalg.norm(cloud - cloud[0], axis=1)
    np.testing.assert_array_equal(fps[1], cloud[np.argmax(d)])


def test_up_axis(tmp_path, cloud):
    path = tmp_path / "c.xyz"
    np.savetxt(path, cloud)
    y = load_point_cloud(path, num_points=N, up="y").numpy()
    z = load_point_cloud(path, num_points=N, up="z").numpy()
    np.testing.assert_allclose(z, y @ Z_UP_TO_Y_UP.T, atol=1e-6)
    np.testing.assert_allclose(z[:, 1], y[:, 2], atol=1e-6)  # z-up becomes y-up
    np.testing.assert_allclose(z[:, 2], -y[:, 1], atol=1e-6)
    assert np.linalg.det(Z_UP_TO_Y_UP) == pytest.approx(1.0)


@pytest.mark.parametrize("fmt", ["off", "obj", "stl", "ply"])
def test_mesh_points_lie_on_surface(tmp_path, fmt):
    import open3d as o3d

    box = o3d.geometry.TriangleMesh.create_box(width=2.0, height=1.0, depth=0.5)
    box.compute_triangle_normals()  # STL needs normals
    path = tmp_path / f"box.{fmt}"
    assert o3d.io.write_triangle_mesh(str(path), box)
    out = load_point_cloud(path, num_points=2000, seed=3).numpy().astype(np.float64)
    assert out.shape == (2000, 3)
    # Normalisation is a translation + uniform scale, so the samples still lie on an
    # axis-aligned box with side ratios 2 : 1 : 0.5: each point sits on some face plane.
    lo, hi = out.min(0), out.max(0)
    side = hi - lo
    np.testing.assert_allclose(side / side[0], [1.0, 0.5, 0.25], atol=0.02)
    on_face = (np.abs(out - lo) < 1e-5) | (np.abs(out - hi) < 1e-5)
    assert on_face.any(axis=1).all()
    # Area-weighted: the two 2x1 faces (z = lo/hi) carry 2*2/(2*(2+1+0.5)) = 4/7 of points.
    frac = ((np.abs(out[:, 2] - lo[2]) < 1e-5) | (np.abs(out[:, 2] - hi[2]) < 1e-5)).mean()
    assert frac == pytest.approx(4 / 7, abs=0.05)
    np.testing.assert_array_equal(out, load_point_cloud(path, num_points=2000, seed=3).numpy())


def test_sample_mesh_surface_inside_triangle():
    v = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    pts = sample_mesh_surface(v, np.array([[0, 1, 2]]), 4000, seed=0)
    assert np.all(pts[:, 2] == 0) and np.all(pts[:, :2] >= 0) and np.all(pts.sum(1) <= 1 + 1e-12)
    np.testing.assert_allclose(pts.mean(0), [1 / 3, 1 / 3, 0], atol=0.02)  # uniform density


def test_bad_files(tmp_path, cloud, monkeypatch):
    with pytest.raises(FileNotFoundError, match="missing.ply"):
        load_point_cloud(tmp_path / "missing.ply")
    (tmp_path / "a.foo").write_text("1 2 3")
    with pytest.raises(ValueError, match=r"\.foo"):
        load_point_cloud(tmp_path / "a.foo")
    np.savez(tmp_path / "two.npz", a=cloud, b=cloud)
    with pytest.raises(KeyError, match="two.npz"):
        load_point_cloud(tmp_path / "two.npz")
    (tmp_path / "words.txt").write_text("hello world\nno numbers here\n")
    with pytest.raises(ValueError, match="words.txt"):
        load_point_cloud(tmp_path / "words.txt")
    (tmp_path / "bad.csv").write_text("x,y,z\n1,2,3\n4,5\n")
    with pytest.raises(ValueError, match="bad.csv line 3"):
        load_point_cloud(tmp_path / "bad.csv")
    pts = cloud.copy()
    pts[5] = np.nan
    np.save(tmp_path / "nan.npy", pts)
    out = load_point_cloud(tmp_path / "nan.npy", num_points=N - 1)
    np.testing.assert_allclose(out.numpy(), _unit(np.delete(cloud, 5, axis=0)), atol=1e-5)
    with pytest.raises(ValueError, match="up"):
        load_point_cloud(tmp_path / "nan.npy", up="x")
    monkeypatch.setitem(sys.modules, "open3d", None)  # make `import open3d` fail
    _write(tmp_path / "c.xyz", cloud, "xyz")
    load_point_cloud(tmp_path / "c.xyz")  # text formats need no Open3D
    (tmp_path / "m.off").write_text("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")
    with pytest.raises(RuntimeError, match="pip install open3d"):
        load_point_cloud(tmp_path / "m.off")
