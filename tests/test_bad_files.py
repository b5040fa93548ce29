"""Broken own files: every class of bad input is a ValueError naming the file and the problem.

Each test writes a good file (with Open3D, NumPy or by hand), breaks it (truncates it,
corrupts its header, empties it) and checks the message, exact numbers included.
"""
from __future__ import annotations

import logging
import struct
from pathlib import Path

import numpy as np
import pytest

from pointcalip.datasets import files, load_point_cloud
from pointcalip.datasets.file_checks import Declared

N = 100
XYZ = np.random.default_rng(0).normal(size=(N, 3))
BOX_STL_ASCII = """solid box
facet normal 0 0 1
 outer loop
  vertex 0 0 0
  vertex 1 0 0
  vertex 0 1 0
 endloop
endfacet
facet normal 0 0 1
 outer loop
  vertex 1 0 0
  vertex 1 1 0
  vertex 0 1 0
 endloop
endfacet
endsolid box
"""


def _cloud(path: Path, ascii: bool = False, compressed: bool = False) -> Path:
    import open3d as o3d

    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(XYZ))
    assert o3d.io.write_point_cloud(str(path), pc, write_ascii=ascii, compressed=compressed)
    return path


def _box(path: Path, ascii: bool = False) -> Path:
    """A 2 x 1 x 0.5 box: 8 vertices, 12 triangles."""
    import open3d as o3d

    if path.suffix == ".stl" and ascii:
        path.write_text(BOX_STL_ASCII)
        return path
    box = o3d.geometry.TriangleMesh.create_box(width=2.0, height=1.0, depth=0.5)
    box.compute_triangle_normals()
    assert o3d.io.write_triangle_mesh(str(path), box, write_ascii=ascii)
    return path


def _big_endian_ply(path: Path, points: np.ndarray) -> Path:
    header = (f"ply\nformat binary_big_endian 1.0\nelement vertex {len(points)}\n"
              "property float x\nproperty float y\nproperty float z\nend_header\n")
    path.write_bytes(header.encode() + points.astype(">f4").tobytes())
    return path


def _cut(path: Path, keep: int) -> Path:
    """Keep the first ``keep`` bytes of the file (negative: drop ``-keep`` from its end)."""
    path.write_bytes(path.read_bytes()[:keep])
    return path


def _data_start(path: Path, marker: bytes) -> int:
    """Offset of the first byte after ``marker`` (the end of a header)."""
    data = path.read_bytes()
    return data.index(marker) + len(marker)


def _unit(p: np.ndarray) -> np.ndarray:
    c = p - p.mean(axis=0)
    return c / np.linalg.norm(c, axis=1).max()


# ------------------------------------------------------------------------ truncation

def test_truncated_binary_ply(tmp_path):
    path = _cloud(tmp_path / "chair.ply")
    _cut(path, _data_start(path, b"end_header\n") + 1000)
    with pytest.raises(ValueError, match=r"chair\.ply: header declares 100 vertices "
                       r"\(binary_little_endian, 24 bytes each = 2400 bytes\) but the file holds "
                       r"only 1000 bytes of vertex data; the file is truncated"):
        load_point_cloud(path)


def test_big_endian_ply_reads_and_truncation_is_found(tmp_path):
    path = _big_endian_ply(tmp_path / "be.ply", XYZ)
    out = load_point_cloud(path, num_points=N).numpy()
    np.testing.assert_allclose(out, _unit(XYZ.astype(np.float32).astype(np.float64)), atol=1e-5)
    _cut(path, -5)
    with pytest.raises(ValueError, match=r"be\.ply: header declares 100 vertices "
                       r"\(binary_big_endian, 12 bytes each = 1200 bytes\) but the file holds "
                       r"only 1195 bytes"):
        load_point_cloud(path)


def test_truncated_ascii_ply_half_written_line(tmp_path):
    path = _cloud(tmp_path / "a.ply", ascii=True)
    start = _data_start(path, b"end_header\n")
    lines = path.read_bytes()[start:].splitlines(keepends=True)
    _cut(path, start + sum(len(line) for line in lines[:40]) + 5)  # 40 rows + a partial one
    with pytest.raises(ValueError, match=r"a\.ply: header declares 100 vertices \(ascii, 3 "
                       r"values each\) but the file holds only 40 complete vertices; the file is "
                       r"truncated"):
        load_point_cloud(path)


def test_truncated_ply_mesh_faces(tmp_path):
    path = _box(tmp_path / "box.ply")
    # 8 vertices of 3 doubles, then 12 faces of 1 uchar count + 3 uint32 = 13 bytes each.
    _cut(path, _data_start(path, b"end_header\n") + 8 * 24 + 5 * 13 + 6)
    with pytest.raises(ValueError, match=r"box\.ply: header declares 12 faces "
                       r"\(binary_little_endian\) but the data ends inside face 5; the file is "
                       r"truncated"):
        load_point_cloud(path)


@pytest.mark.parametrize("mode, keep, message", [
    ("binary", 700, r"declares 100 points \(binary, 12 bytes each = 1200 bytes\) but the file "
                    r"holds only 700 bytes of point data; the file is truncated"),
    ("ascii", 30, r"declares 100 points \(ascii, 3 values each\) but the file holds only "
                  r"1 complete point; the file is truncated"),     # not "1 complete points"
    ("binary_compressed", 300, r"bytes but the file holds only 292; "
                               r"the file is truncated"),
])
def test_truncated_pcd(tmp_path, mode, keep, message):
    path = _cloud(tmp_path / "scan.pcd", ascii=mode == "ascii",
                  compressed=mode == "binary_compressed")
    assert f"DATA {mode}\n".encode() in path.read_bytes()
    _cut(path, _data_start(path, f"DATA {mode}\n".encode()) + keep)
    with pytest.raises(ValueError, match=r"scan\.pcd: .*" + message):
        load_point_cloud(path)


def test_truncated_off(tmp_path):
    path = _box(tmp_path / "box.off")
    lines = path.read_text().splitlines(keepends=True)  # OFF, counts, 8 vertices, 12 faces
    path.write_text("".join(lines[:2 + 8 + 5]))  # cut at a line end: no half line to spot
    with pytest.raises(ValueError, match=r"box\.off: header declares 8 vertices and 12 faces "
                       r"but the file holds only 8 vertex lines and 5 face lines; the file is "
                       r"truncated"):
        load_point_cloud(path)
    path.write_text("".join(lines[:2 + 8 + 5]) + "3 1 ")  # a half-written face
    with pytest.raises(ValueError, match=r"box\.off line 16: expected a face 'n i1 \.\.\. in' "
                       r"with n >= 3 vertex numbers, got '3 1'"):
        load_point_cloud(path)


def test_truncated_stl(tmp_path):
    path = _cut(_box(tmp_path / "box.stl"), 400)
    with pytest.raises(ValueError, match=r"box\.stl: the binary STL declares 12 triangles "
                       r"\(80 \+ 4 \+ 50 x 12 = 684 bytes\) but the file has 400 bytes; the file "
                       r"is truncated"):
        load_point_cloud(path)
    ascii_path = _cut(_box(tmp_path / "text.stl", ascii=True), 200)
    with pytest.raises(ValueError, match=r"text\.stl: the ASCII STL does not end with "
                       r"'endsolid'; the file is truncated"):
        load_point_cloud(ascii_path)


def test_truncated_obj(tmp_path):
    path = _box(tmp_path / "box.obj")
    text = path.read_text()
    path.write_text(text[:text.rindex("\nf ") + 6])  # last face cut after its second vertex
    with pytest.raises(ValueError, match=r"box\.obj line \d+: expected a face 'f i j k' of 3 "
                       r"or more vertex numbers \(from 1\), got 'f \d+ \d+'; the file is corrupt "
                       r"or truncated"):
        load_point_cloud(path)
    path.write_text(text[:text.index("\nv ", text.index("\nv ") + 1) + 6])  # inside vertex 2
    with pytest.raises(ValueError, match=r"box\.obj line \d+: expected a vertex 'v x y z', got "
                       r"'v [^']*'; the file is corrupt or truncated"):
        load_point_cloud(path)
    # Cut before the faces, it is an OBJ point cloud (as exported by scanners): its 8 corners.
    path.write_text(text[:text.index("\nf ") + 1])
    corners = np.array([[float(w) for w in line.split()[1:]] for line in
                        path.read_text().splitlines() if line.startswith("v ")])
    assert sorted(map(tuple, corners)) == [(x, y, z) for x in (0, 2) for y in (0, 1)
                                           for z in (0, 0.5)]
    want = corners - corners.mean(axis=0)
    np.testing.assert_allclose(load_point_cloud(path, num_points=8).numpy(),
                               want / np.linalg.norm(want, axis=1).max(), atol=1e-6)


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_truncated_numpy(tmp_path, suffix):
    path = tmp_path / f"cloud{suffix}"
    (np.save if suffix == ".npy" else np.savez)(path, XYZ)
    _cut(path, -20)
    with pytest.raises(ValueError, match=rf"cloud\{suffix}: cannot read the array \(.*\); the "
                       r"file is truncated or corrupt: save it again"):
        load_point_cloud(path)


def test_truncated_text(tmp_path):
    path = tmp_path / "scan.xyz"
    path.write_text("x y z\n0 0 0\n1 2 3\n4 5")  # half-written last row
    with pytest.raises(ValueError, match=r"scan\.xyz line 4: 2 columns, but line 2 has 3; every "
                       r"row needs the same columns \(a half-written last row: the file is "
                       r"truncated\)"):
        load_point_cloud(path)
    pts = tmp_path / "scan.pts"  # the first line declares the point count
    pts.write_text("5\n" + "\n".join(f"{i} {i} {-i}" for i in range(3)) + "\n")
    with pytest.raises(ValueError, match=r"scan\.pts: line 1 declares 5 points but the file "
                       r"holds 3 rows; the file is truncated"):
        load_point_cloud(pts)
    pts.write_text("5\n")
    with pytest.raises(ValueError, match=r"scan\.pts: no points.*line 1 declares 5 points"):
        load_point_cloud(pts)


def test_ragged_text_rows(tmp_path):
    path = tmp_path / "colour.txt"
    path.write_text("0 0 0 255 0 0\n1 0 0 255 0\n")  # a colour value missing in row 2
    with pytest.raises(ValueError, match=r"colour\.txt line 2: 5 columns, but line 1 has 6"):
        load_point_cloud(path)
    path.write_text("0 0 0 255 0 0\n1 0 0 255 0 0 7\n")
    with pytest.raises(ValueError, match=r"colour\.txt line 2: 7 columns, but line 1 has 6"):
        load_point_cloud(path)
    path.write_text("x y z\n1 2.x 3\n4 5 6\n")  # a corrupt first row is not a header
    with pytest.raises(ValueError, match=r"colour\.txt line 2: cannot read x y z"):
        load_point_cloud(path)


# ------------------------------------------------------------- empty / no points

@pytest.mark.parametrize("suffix", sorted(set(files.CLOUD_SUFFIXES + files.MESH_SUFFIXES)))
def test_empty_file(tmp_path, suffix):
    path = tmp_path / f"empty{suffix}"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=rf"empty\{suffix} is empty \(0 bytes\); it holds no "
                       r"points"):
        load_point_cloud(path)


@pytest.mark.parametrize("name, content, message", [
    ("zero.ply", "ply\nformat ascii 1.0\nelement vertex 0\nproperty float x\nproperty float y\n"
     "property float z\nend_header\n", r"the PLY header declares 0 vertices"),
    ("nodata.ply", "ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y"
     "\nproperty float z\nend_header\n", r"declares 4 vertices \(ascii, 3 values each\) but "
     r"the file holds only 0 complete vertices"),
    ("zero.pcd", "VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 0\n"
     "HEIGHT 1\nPOINTS 0\nDATA ascii\n", r"the PCD header declares 0 points"),
    ("zero.off", "OFF\n0 0 0\n", r"the OFF header declares 0 vertices and 0 faces"),
    ("nofaces.off", "OFF\n3 0 0\n0 0 0\n1 0 0\n0 1 0\n", r"declares 3 vertices and 0 faces; "
     r"a mesh needs both"),
    ("nofacet.stl", "solid empty\nendsolid empty\n", r"the ASCII STL holds no facets"),
    ("header.csv", "x,y,z\n", r"no points: no line holds three numbers"),
    ("blank.txt", "\n  \n", r"no points"),
    ("comments.obj", "# just a comment\n", r"holds 0 vertices \('v' lines\) and no faces"),
])
def test_header_but_no_points(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValueError, match=name.replace(".", r"\.") + ".*" + message):
        load_point_cloud(path)


def test_binary_stl_without_triangles(tmp_path):
    path = tmp_path / "none.stl"
    path.write_bytes(b"\0" * 80 + struct.pack("<I", 0))
    with pytest.raises(ValueError, match=r"none\.stl: the binary STL declares 0 triangles"):
        load_point_cloud(path)


def test_empty_array(tmp_path):
    np.save(tmp_path / "none.npy", np.zeros((0, 3)))
    with pytest.raises(ValueError, match=r"none\.npy: the array of shape \(0, 3\) holds no "
                       r"points"):
        load_point_cloud(tmp_path / "none.npy")


# ---------------------------------------------------------- corrupt headers / data

@pytest.mark.parametrize("name, header, message", [
    ("type.ply", "ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty flaot x\n"
     "end_header\n", r"type\.ply header line 4: cannot read 'property flaot x'"),
    ("format.ply", "ply\nformat binary_middle_endian 1.0\nelement vertex 3\nend_header\n",
     r"format\.ply header line 2: cannot read 'format binary_middle_endian 1\.0'"),
    ("noend.ply", "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\n",
     r"noend\.ply: the PLY header has no 'end_header' line"),
    ("magic.ply", "PLX\nformat ascii 1.0\nend_header\n", r"magic\.ply: not a PLY file"),
    ("noxyz.ply", "ply\nformat ascii 1.0\nelement vertex 1\nproperty float u\nend_header\n1\n",
     r"noxyz\.ply: the PLY header declares no 'vertex' element with x, y, z"),
    ("fields.pcd", "FIELDS x y z\nSIZE 4 4\nTYPE F F F\nCOUNT 1 1 1\nPOINTS 1\nDATA ascii\n1 2 3\n",
     r"fields\.pcd: the PCD header's FIELDS \['x', 'y', 'z'\], SIZE \['4', '4'\].*do not fit"),
    ("wh.pcd", "FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nWIDTH 2\nHEIGHT 1\nPOINTS 3\nDATA ascii\n",
     r"wh\.pcd: the PCD header says WIDTH 2 x HEIGHT 1 = 2 points but POINTS 3"),
    ("nodata.pcd", "FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nPOINTS 3\n",
     r"nodata\.pcd: the PCD header has no DATA line"),
    ("mode.pcd", "FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nPOINTS 1\nDATA zip\n1 2 3\n",
     r"mode\.pcd: unknown PCD 'DATA zip'"),
    ("inline.off", "OFF 3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n",
     r"inline\.off line 1: Open3D cannot read counts on the 'OFF' line"),
    ("magic.off", "MESH\n3 1 0\n", r"magic\.off: not an OFF file"),
])
def test_corrupt_header(tmp_path, name, header, message):
    path = tmp_path / name
    path.write_text(header)
    with pytest.raises(ValueError, match=message):
        load_point_cloud(path)


def test_header_counts_smaller_than_data(tmp_path):
    """A header that declares fewer items than the data holds would silently drop points."""
    ply = _cloud(tmp_path / "few.ply")
    ply.write_bytes(ply.read_bytes().replace(b"element vertex 100", b"element vertex 90"))
    with pytest.raises(ValueError, match=r"few\.ply: the file holds 240 bytes more than the "
                       r"elements the header declares; the header's counts do not match the data"):
        load_point_cloud(ply)
    pcd = _cloud(tmp_path / "few.pcd", ascii=True)
    pcd.write_bytes(pcd.read_bytes().replace(b"WIDTH 100", b"WIDTH 99")
                    .replace(b"POINTS 100", b"POINTS 99"))
    with pytest.raises(ValueError,
                       match=r"few\.pcd: the file holds 3 values more than the 99 points"):
        load_point_cloud(pcd)
    off = _box(tmp_path / "few.off")
    off.write_text(off.read_text().replace("8 12 0", "8 11 0"))
    with pytest.raises(ValueError, match=r"few\.off line 22: more lines follow the 8 vertices "
                       r"and 11 faces"):
        load_point_cloud(off)
    stl = _box(tmp_path / "few.stl")
    stl.write_bytes(stl.read_bytes()[:80] + struct.pack("<I", 11) + stl.read_bytes()[84:])
    with pytest.raises(ValueError, match=r"few\.stl: the binary STL declares 11 triangles "
                       r"\(80 \+ 4 \+ 50 x 11 = 634 bytes\) but the file has 684 bytes; its "
                       r"triangle count is corrupt"):
        load_point_cloud(stl)


@pytest.mark.parametrize("name, content, message", [
    ("word.ply", "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
     "property float z\nend_header\n0 0 0\n1 abc 1\n2 2 2\n",
     r"word\.ply: vertex 1 holds 'abc', which is not a number"),
    ("word.pcd", "FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nPOINTS 2\nDATA ascii\n0 0 0\n1 1 x\n",
     r"word\.pcd: point 1 holds 'x', which is not a number"),
    ("index.off", "OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 9\n",
     r"index\.off line 6: the face refers to vertex 9, but the file has 3 vertices \(0\.\.2\)"),
    ("vertex.off", "OFF\n3 1 0\n0 0 0\n1 zero 0\n0 1 0\n3 0 1 2\n",
     r"vertex\.off line 4: expected a vertex 'x y z', got '1 zero 0'"),
    ("index.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\nf 1 2 9\n",
     r"index\.obj line 5: the face refers to vertex 9, but the file has 3 vertices"),
    ("relative.obj", "v 0 0 0\nv 1 0 0\nf -1 -2 -3\nv 0 1 0\n",
     r"relative\.obj line 3: the face refers to vertex -3, but only 2 vertices come before it"),
    ("line.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nhello world\nf 1 2 3\n",
     r"line\.obj line 4: 'hello world' is not an OBJ statement"),
    ("vertex.obj", "v 0 0 0\nv 1 0\nv 0 1 0\nf 1 2 3\n",
     r"vertex\.obj line 2: expected a vertex 'v x y z', got 'v 1 0'"),
    ("facets.stl", BOX_STL_ASCII.replace("  vertex 1 1 0\n", ""),
     r"facets\.stl: the ASCII STL has 2 facets but 5 vertex lines"),
])
def test_corrupt_data(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_point_cloud(path)


def test_ply_face_index_out_of_range(tmp_path):
    """Open3D reads a face list with a bad vertex number as is; the mesh check stops it."""
    path = tmp_path / "faces.ply"
    path.write_text("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y"
                    "\nproperty float z\nelement face 1\nproperty list uchar int vertex_indices\n"
                    "end_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n")
    with pytest.raises(ValueError, match=r"faces\.ply: triangle 0 refers to vertex 7, but the "
                       r"mesh has 3 vertices \(0\.\.2\); its face list is corrupt"):
        load_point_cloud(path)


def test_good_variants_still_read(tmp_path):
    """What the checks must not reject: polygons in OFF/PLY (Open3D splits them) and OBJ
    (split here), COFF colours, comments and blank lines, relative and slashed OBJ indices,
    ASCII STL."""
    (tmp_path / "quad.off").write_text("COFF\n# a comment\n4 1 0\n\n0 0 0 255 0 0 255\n"
                                       "1 0 0 255 0 0 255\n1 1 0 0 255 0 255\n"
                                       "0 1 0 0 0 255 255\n4 0 1 2 3\n")
    (tmp_path / "quad.ply").write_text(
        "ply\nformat ascii 1.0\ncomment quad\nelement vertex 4\nproperty float x\nproperty "
        "float y\nproperty float z\nelement face 1\nproperty list uchar int vertex_indices\n"
        "end_header\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n4 0 1 2 3\n")
    (tmp_path / "tri.obj").write_text("o square\nv 0 0 0\nv 1 0 0\nv 1 1 0\nvn 0 0 1\n"
                                      "f 1//1 2//1 3//1\nv 0 1 0\nf -4 -2 -1\n")
    (tmp_path / "tri.stl").write_text(BOX_STL_ASCII)
    (tmp_path / "quad.obj").write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nf 1 2 3 4\n")
    for name in ("quad.off", "quad.ply", "tri.obj", "tri.stl", "quad.obj"):
        out = load_point_cloud(tmp_path / name, num_points=500, seed=0).numpy()
        # The whole unit square is covered: samples reach all four quarters.
        assert np.ptp(out[:, 2]) == 0, name
        quarter = (out[:, 0] > out[:, 0].mean()) * 2 + (out[:, 1] > out[:, 1].mean())
        assert sorted(set(quarter.tolist())) == [0, 1, 2, 3], name


def test_mesh_with_nan_vertex(tmp_path):
    off = tmp_path / "nan.off"
    off.write_text("OFF\n3 1 0\n0 0 0\n1 nan 0\n0 1 0\n3 0 1 2\n")
    with pytest.raises(ValueError, match=r"nan\.off line 4: the vertex '1 nan 0' has a NaN or "
                       r"infinite coordinate; cannot sample the mesh's surface"):
        load_point_cloud(off)
    obj = tmp_path / "inf.obj"
    obj.write_text("v 0 0 0\nv 1 inf 0\nv 0 1 0\nv nan 0 0\nf 1 2 3\nf 1 3 4\n")
    with pytest.raises(ValueError, match=r"inf\.obj: 2 of the mesh's vertices have NaN or "
                       r"infinite coordinates; cannot sample its surface"):
        load_point_cloud(obj)


# --------------------------------------------------------------------- NaN / inf

def test_few_non_finite_points_are_dropped_loudly(tmp_path, caplog):
    import open3d as o3d

    pts = XYZ.copy()
    pts[[3, 50]] = [np.nan, 0, np.inf]
    ply = tmp_path / "holes.ply"
    o3d.io.write_point_cloud(str(ply), o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts)))
    with caplog.at_level(logging.WARNING, logger="pointcalip.datasets.files"):
        out = load_point_cloud(ply, num_points=N - 2).numpy()
    np.testing.assert_allclose(out, _unit(np.delete(XYZ, [3, 50], axis=0)), atol=1e-5)
    assert [r.getMessage() for r in caplog.records] == [
        f"{ply}: dropping 2 of 100 points with NaN/inf coordinates (points 3, 50, counted "
        f"from 0); the rest are used"
    ]


@pytest.mark.parametrize("suffix", [".npy", ".xyz", ".pcd"])
def test_all_non_finite_is_an_error(tmp_path, suffix):
    path = tmp_path / f"nan{suffix}"
    pts = np.full((10, 3), np.nan)
    if suffix == ".npy":
        np.save(path, pts)
    elif suffix == ".xyz":
        np.savetxt(path, pts)
    else:
        path.write_text("FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nPOINTS 10\nDATA ascii\n"
                        + "nan nan nan\n" * 10)
    with pytest.raises(ValueError, match=rf"nan\{suffix}: all 10 points have NaN or infinite "
                       r"coordinates"):
        load_point_cloud(path)


# ------------------------------------------------------------------ array layouts

@pytest.mark.parametrize("array", [
    XYZ, np.hstack([XYZ, np.ones((N, 3))]), XYZ[None], (XYZ * 100).astype(np.int32),
    XYZ.astype(np.float16),
], ids=["N3", "N6", "1N3", "int32", "float16"])
def test_array_layouts_accepted(tmp_path, array):
    np.save(tmp_path / "ok.npy", array)
    out = load_point_cloud(tmp_path / "ok.npy", num_points=N).numpy()
    xyz = array.reshape(-1, array.shape[-1])[:, :3].astype(np.float64)
    np.testing.assert_allclose(out, _unit(xyz), atol=1e-5)


@pytest.mark.parametrize("array, message", [
    (XYZ.T, r"an array of shape \(3, 100\) has no more rows than columns.*save arr\.T"),
    (np.stack([XYZ] * 4), r"an array of shape \(4, 100, 3\) holds 4 clouds; save one cloud"),
    (XYZ.reshape(-1), r"expected one cloud \[N, 3\] .*; got an array of shape \(300,\); "
                      r"reshape it with arr\.reshape\(-1, 3\)"),
    (XYZ[:, :2], r"an array of shape \(100, 2\) has 2 columns; a cloud needs x y z"),
    (np.ones((100, 20)), r"an array of shape \(100, 20\) has 20 columns; a cloud is \[N, 3\] "
                         r"plus at most 9 extra columns"),
    (np.ones((3, 3)), r"an array of shape \(3, 3\) has no more rows than columns"),
    (XYZ > 0, r"an array of dtype bool is not a cloud"),
    (XYZ + 1j, r"an array of dtype complex128 is not a cloud"),
    (np.array([["1", "2", "3"]] * 5), r"an array of dtype <U1 is not a cloud"),
], ids=["transposed", "batch", "flat", "2cols", "20cols", "square", "bool", "complex", "text"])
def test_array_layouts_rejected(tmp_path, array, message):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(ValueError, match=r"bad\.npy: " + message):
        load_point_cloud(tmp_path / "bad.npy")
    np.savez(tmp_path / "bad.npz", points=array, labels=np.zeros(3))
    with pytest.raises(ValueError, match=r"bad\.npz array 'points': " + message):
        load_point_cloud(tmp_path / "bad.npz")


def test_object_array(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([XYZ, "label"], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"obj\.npy: holds Python objects \(dtype object\)"):
        load_point_cloud(tmp_path / "obj.npy")


def test_text_with_byte_order_mark(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(",".join(map(str, r)) for r in XYZ).encode())
    out = load_point_cloud(path, num_points=N).numpy()  # the first row is a point, not a header
    np.testing.assert_allclose(out, _unit(XYZ), atol=1e-5)


# ----------------------------------------------------------------- Open3D's log

def _no_open3d_noise(capfd) -> None:
    out, err = capfd.readouterr()
    assert "\x1b[" not in out + err and "Open3D" not in out + err, out + err


def test_open3d_prints_nothing_on_good_or_broken_files(tmp_path, capfd):
    good = [_cloud(tmp_path / "c.ply"), _cloud(tmp_path / "c.pcd"), _box(tmp_path / "m.ply"),
            _box(tmp_path / "m.obj"), _box(tmp_path / "m.stl")]
    capfd.readouterr()  # writing the files may warn (OBJ/OFF cannot hold normals)
    for path in good:
        load_point_cloud(path, num_points=64)
    broken = _cut(_cloud(tmp_path / "cut.ply"), 500)
    with pytest.raises(ValueError, match=r"cut\.ply"):
        load_point_cloud(broken)
    _no_open3d_noise(capfd)


def test_open3d_is_silenced_even_without_our_checks(tmp_path, capfd, monkeypatch):
    """With the header checks bypassed, Open3D meets the truncated file itself: its coloured
    warnings stay silent and what it read is still compared with the header."""
    path = _cut(_cloud(tmp_path / "cut.pcd"), 500)
    capfd.readouterr()
    monkeypatch.setattr(files, "check_file", lambda p: Declared(vertices=N, faces=0))
    with pytest.raises(ValueError, match=r"cut\.pcd: Open3D read 0 points but the header "
                       r"declares 100; the file is corrupt"):
        load_point_cloud(path)
    _no_open3d_noise(capfd)


def test_open3d_exception_loses_its_colours(tmp_path, monkeypatch):
    import open3d as o3d

    def fail(filename):
        raise RuntimeError("\x1b[1;31m[Open3D Error] (ReadPointCloud) it broke\n\x1b[0;m")

    monkeypatch.setattr(o3d.io, "read_point_cloud", fail)
    with pytest.raises(ValueError, match=r"c\.ply: Open3D cannot read it: \[Open3D Error\] "
                       r"\(ReadPointCloud\) it broke$"):
        load_point_cloud(_cloud(tmp_path / "c.ply"))
