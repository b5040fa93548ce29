"""load_point_cloud on every supported cloud and mesh format."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from pointcalip.datasets import files, load_point_cloud
from pointcalip.datasets.file_checks import read_obj
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


# ------------------------------------------------------------- OBJ clouds and polygons

def test_obj_without_faces_is_read_as_its_vertices(tmp_path, cloud):
    """A common point-cloud export: 'v' lines only (here with colours and a comment)."""
    path = tmp_path / "scan.obj"
    path.write_text("# exported cloud\n" + "".join(f"v {x:.17g} {y:.17g} {z:.17g} 0.5 0.5 0.5\n"
                                                   for x, y, z in cloud))
    out = load_point_cloud(path, num_points=N).numpy()
    np.testing.assert_allclose(out, _unit(cloud), atol=1e-6)   # every vertex, in file order


def _tiles_hit(out: np.ndarray) -> set:
    """Which of the unit square's two triangles (split along x = y) the samples lie in."""
    return set(np.where(out[:, 0] > out[:, 1], "below", "above").tolist())


def test_obj_quad_is_split_into_two_triangles(tmp_path):
    """A unit square as one quad (Open3D alone drops it). Samples cover both triangles of
    the fan (0 1 2) and (0 2 3), evenly, and lie on the square (z = 0, inside [0, 1]^2)."""
    path = tmp_path / "quad.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nf 1/1/1 2/2/1 3/3/1 4/4/1\n")
    raw = files._read_obj(path, 4000, seed=0)
    assert raw.shape == (4000, 3) and np.abs(raw[:, 2]).max() == 0
    assert raw[:, :2].min() >= 0 and raw[:, :2].max() <= 1
    below = (raw[:, 0] > raw[:, 1]).mean()                     # triangle (0 1 2) under x = y
    assert 0.45 < below < 0.55                                 # equal areas, equal shares
    out = load_point_cloud(path, num_points=500).numpy()
    assert _tiles_hit(out - out.min(axis=0)) == {"below", "above"}


def test_obj_polygons_are_fans_from_the_first_vertex(tmp_path):
    """A regular hexagon (one 'f' line, relative indices) and a triangle in one file: the
    fan has 4 triangles, the mesh 5, and sampling is area-weighted over all of them."""
    angles = np.arange(6) * np.pi / 3
    hexagon = "".join(f"v {np.cos(a):.17g} {np.sin(a):.17g} 0\n" for a in angles)
    path = tmp_path / "hex.obj"
    path.write_text(hexagon + "f -6 -5 -4 -3 -2 -1\nv 0 0 5\nv 1 0 5\nv 0 1 5\nf 7 8 9\n")
    obj = read_obj(path, path.read_bytes())
    assert obj.polygons == [7]
    assert obj.triangles().tolist() == [[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 5], [6, 7, 8]]
    raw = files._read_obj(path, 20000, seed=0)
    on_hexagon = raw[:, 2] == 0
    hex_area, tri_area = 3 * np.sqrt(3) / 2, 0.5
    assert on_hexagon.mean() == pytest.approx(hex_area / (hex_area + tri_area), abs=0.01)
    # every sample is inside the hexagon (radius 1), and all six sectors are reached
    flat = raw[on_hexagon]
    assert np.linalg.norm(flat[:, :2], axis=1).max() <= 1 + 1e-9
    sectors = np.floor((np.arctan2(flat[:, 1], flat[:, 0]) % (2 * np.pi)) / (np.pi / 3))
    assert sorted(set(sectors.astype(int).tolist())) == [0, 1, 2, 3, 4, 5]


def test_obj_triangles_still_read_by_open3d(tmp_path):
    """Triangle-only OBJ files keep their old reading (Open3D's mesh, same samples)."""
    path = tmp_path / "tri.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1 2 3\nf 1 2 4\nf 1 3 4\n")
    tri = np.array([[0, 1, 2], [0, 1, 3], [0, 2, 3]])
    verts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float64)
    np.testing.assert_array_equal(files._read_obj(path, 256, seed=3),
                                  sample_mesh_surface(verts, tri, 256, seed=3))


# ------------------------------------------------------------- binary text, folders

def test_binary_pts_is_named_binary_with_the_formats_read(tmp_path, cloud):
    path = tmp_path / "scan.pts"
    path.write_bytes(cloud.astype(np.float32).tobytes())
    with pytest.raises(ValueError) as err:
        load_point_cloud(path)
    message = str(err.value)
    assert message.startswith(f"{path}: holds binary data, but .pts files are read as text "
                              f"(one point a line: 'x y z ...'); read formats: text .xyz .pts "
                              f".txt .csv; binary or text .ply .pcd .stl; arrays .npy .npz")
    assert "\\x" not in message and "\ufffd" not in message and message.isprintable()


def test_binary_without_nul_bytes_is_binary_too(tmp_path):
    path = tmp_path / "scan.xyz"
    path.write_bytes(bytes(range(1, 256)) * 40)
    with pytest.raises(ValueError, match=r"scan\.xyz: holds binary data"):
        load_point_cloud(path)


def test_latin1_comment_in_a_text_cloud_still_reads(tmp_path):
    path = tmp_path / "scan.xyz"
    path.write_bytes("# caf\u00e9 scan\n".encode("latin-1") + b"0 0 0\n1 0 0\n0 1 0\n0 0 1\n")
    assert load_point_cloud(path, num_points=4).shape == (4, 3)


@pytest.mark.parametrize("name", ["x.ply", "x.obj", "scans"])
def test_a_folder_is_named_a_folder(tmp_path, name):
    (tmp_path / name).mkdir()
    with pytest.raises(IsADirectoryError, match=rf"{tmp_path / name} is a folder, not a "
                       r"point-cloud file; give the path of a file inside it"):
        load_point_cloud(tmp_path / name)
