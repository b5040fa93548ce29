"""Load your own point clouds and meshes as normalised ``[num_points, 3]`` clouds.

Clouds: ``.ply`` (without faces), ``.pcd`` (Open3D), ``.obj`` without faces (its ``v``
lines), ``.xyz``/``.pts``/``.txt``/``.csv`` (text), ``.npy``/``.npz`` (arrays). Meshes:
``.off``, ``.obj``, ``.stl``, ``.ply`` with faces (Open3D), sampled uniformly on the surface
(area-weighted, seeded). OBJ quads and larger polygons, which Open3D drops, are split into
fans of triangles from each face's first vertex (exact for convex polygons).

Up axis: ModelNet40 is y-up. ``up="z"`` rotates z-up data by -90 degrees about the x axis,
``(x, y, z) -> (x, z, -y)`` (a proper rotation, det +1), so +z becomes +y.

Bad input is an error, never a guess. Every problem below is a ``ValueError`` that names the
file (and line, key or element) and says what is wrong:

- Empty files, files with a header but no points, and files whose points are all NaN/inf.
  A few NaN/inf points are dropped with a warning that counts them. (A folder given as a
  file is an ``IsADirectoryError`` that says so, a missing file a ``FileNotFoundError``.)
- ``.ply .pcd .off .stl .obj``: truncated or corrupt files, found by comparing the header
  with the data before Open3D reads them (`file_checks`); Open3D's own coloured log is
  silenced while it reads, and what it read is compared with the header again.
- Text: binary data in a text format (e.g. a binary ``.pts``) is named as such, with the
  formats that are read. Header lines (column names, or a lone integer, the point count)
  come before the first row; every row has the same number of columns (at least 3: x y z,
  then anything); a declared point count must match the rows. A ragged or half-written row
  is an error.
- Arrays (``.npy``; in ``.npz`` the array named one of ``points xyz data pos pc``, or the
  only one) hold real numbers (float or int; not bool, complex, object, text) in one of the
  layouts ``[N, 3]``, ``[N, C]`` (3 <= C <= 12: x y z then colours, normals, ...) or
  ``[1, N, C]``, with more points than columns (N > C). A transposed ``[3, N]`` cloud,
  several clouds ``[B, N, 3]`` (B > 1), flat ``[3N]`` arrays and truncated files are errors
  that say how to save the array instead.
"""
from __future__ import annotations

import logging
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from .file_checks import Declared, check_file, check_mesh, is_number, read_obj
from .h5utils import farthest_point_sample, normalize_unit_sphere
from ..core.words import count

log = logging.getLogger(__name__)

CLOUD_SUFFIXES = (".ply", ".pcd", ".xyz", ".pts", ".txt", ".csv", ".npy", ".npz")
MESH_SUFFIXES = (".off", ".obj", ".stl", ".ply")
TEXT_SUFFIXES = (".xyz", ".pts", ".txt", ".csv")
# z-up -> y-up: rows map (x, y, z) to (x, z, -y).
Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
_NPZ_KEYS = ("points", "xyz", "data", "pos", "pc")
MAX_COLUMNS = 12  # x y z plus up to 9 extra columns (colours, normals, intensity, labels)
_ANSI_CODE = re.compile(r"\x1b\[[0-9;]*m")
_TEXT_SPLIT = re.compile(r"[,;\s]+")


def import_open3d():
    """Import Open3D lazily (slow; needs system libraries such as libusb/libGL)."""
    try:
        import open3d

        return open3d
    except Exception as err:  # ImportError, OSError from missing shared libraries
        raise RuntimeError(
            f"reading this file needs Open3D, which failed to import ({err}). Install it with "
            f"`pip install open3d` (on Linux it may need `apt-get install libusb-1.0-0 libgl1`), "
            f"or save the cloud as .npy/.txt, which load without Open3D"
        ) from err


def _looks_binary(data: bytes) -> bool:
    """Whether a file meant to be text holds binary data: a NUL byte, or more than 1 in 20
    of its first 64 KiB are control bytes (other than tab, line ends, form feed) or bytes
    that are not UTF-8."""
    head = data[:65536]
    if b"\0" in head:
        return True
    text = head.decode("utf-8", "replace")
    odd = sum(1 for c in text if c == "\ufffd" or (ord(c) < 32 and c not in "\t\n\r\f\v")
              or ord(c) == 127)
    return odd > len(text) / 20


def _read_text(path: Path) -> np.ndarray:
    """x y z from a text cloud -> ``[N, 3]``; rules in the module docstring."""
    data = path.read_bytes()
    if _looks_binary(data):
        raise ValueError(
            f"{path}: holds binary data, but {path.suffix} files are read as text (one point "
            f"a line: 'x y z ...'); read formats: text {' '.join(TEXT_SUFFIXES)}; binary or "
            f"text .ply .pcd .stl; arrays .npy .npz; meshes .off .obj .ply .stl. Convert the "
            f"file to one of them (e.g. save the points with np.save as .npy)"
        )
    text = data.decode("utf-8-sig", errors="replace")  # -sig: drop a BOM
    rows, first, declared = [], 0, None
    for i, line in enumerate(text.splitlines(), start=1):
        words = [w for w in _TEXT_SPLIT.split(line.split("#", 1)[0]) if w]
        if not words:
            continue
        if not rows:  # header lines come before the first row
            if not is_number(words[0]):
                continue  # column names such as "x,y,z"
            if len(words) == 1 and words[0].isdigit() and declared is None:
                declared = (int(words[0]), i)  # a point count, as in .pts files
                continue
            if len(words) < 3:
                raise ValueError(f"{path} line {i}: expected at least 3 columns (x y z), got "
                                 f"{len(words)}: {line.strip()[:60]!r}")
            first, columns = i, len(words)
        if len(words) != columns:
            raise ValueError(
                f"{path} line {i}: {count(len(words), 'column')}, but line {first} has {columns}; "
                f"every row needs the same columns (a half-written last row: the file is truncated)"
            )
        try:
            rows.append([float(w) for w in words[:3]])
        except ValueError:
            raise ValueError(f"{path} line {i}: cannot read x y z from "
                             f"{line.strip()[:60]!r}") from None
    if not rows:
        raise ValueError(f"{path}: no points: no line holds three numbers (x y z)"
                         + (f"; line {declared[1]} declares {count(declared[0], 'point')}, so the "
                            f"file is truncated" if declared else ""))
    if declared and declared[0] != len(rows):
        raise ValueError(
            f"{path}: line {declared[1]} declares {count(declared[0], 'point')} but the file "
            f"holds {count(len(rows), 'row')}; "
            + ("the file is truncated" if len(rows) < declared[0]
               else "the count or the data is wrong")
        )
    return np.asarray(rows, dtype=np.float64)


def read_numpy_cloud(path: Path) -> np.ndarray:
    """x y z from a .npy/.npz array -> ``[N, 3]`` float64, as stored (not normalised);
    layout rules in the module docstring."""
    where = str(path)
    try:
        if path.suffix.lower() == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.keys())
                key = next((k for k in _NPZ_KEYS if k in keys), keys[0] if len(keys) == 1 else None)
                if key is None:
                    raise KeyError(
                        f"{path} holds arrays {keys}; name the cloud one of {list(_NPZ_KEYS)} "
                        f"or save a single array"
                    )
                where = f"{path} array {key!r}"
                arr = z[key]
    except ValueError as err:
        if "allow_pickle" in str(err):  # NumPy's refusal to unpickle an object array
            raise ValueError(f"{where}: holds Python objects (dtype object), not numbers; save "
                             f"the cloud as a float array [N, 3]") from None
        raise ValueError(f"{where}: cannot read the array ({err}); the file is truncated or "
                         f"corrupt: save it again with np.save / np.savez") from None
    except (EOFError, OSError, zipfile.BadZipFile, zlib.error) as err:
        raise ValueError(f"{where}: cannot read the array ({err}); the file is truncated or "
                         f"corrupt: save it again with np.save / np.savez") from None
    return cloud_columns(arr, where)


def cloud_columns(arr: np.ndarray, where: str) -> np.ndarray:
    """The x y z columns ``[N, 3]`` (float64) of an array holding one cloud: ``[N, C]``
    (3 <= C <= MAX_COLUMNS, N > C) or ``[1, N, C]``. ``where`` names it in errors."""
    shape = arr.shape
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{where}: an array of dtype {arr.dtype} is not a cloud; save real "
                         f"numbers (float32/float64 or integers) of shape [N, 3]")
    if arr.ndim == 3 and shape[0] > 1:
        raise ValueError(f"{where}: an array of shape {shape} holds {count(shape[0], 'cloud')}; "
                         f"save one cloud [N, 3] per file (e.g. np.save(path, arr[0]))")
    if arr.ndim == 3:
        arr = arr[0]
    if arr.ndim != 2:
        hint = "; reshape it with arr.reshape(-1, 3)" if arr.ndim == 1 and arr.size % 3 == 0 else ""
        raise ValueError(f"{where}: expected one cloud [N, 3] (or [N, C] with extra columns, "
                         f"or [1, N, 3]); got an array of shape {shape}{hint}")
    n, c = arr.shape
    if n == 0:
        raise ValueError(f"{where}: the array of shape {shape} holds no points")
    if n <= c:
        raise ValueError(
            f"{where}: an array of shape {shape} has no more rows than columns, so it is not "
            f"clear which axis holds the points; a cloud is [N, 3] with N > 3. If it holds "
            f"{count(c, 'point')} as columns (transposed, [3, N]), save arr.T instead"
        )
    if c < 3:
        raise ValueError(f"{where}: an array of shape {shape} has {count(c, 'column')}; a cloud "
                         f"needs x y z: [N, 3]")
    if c > MAX_COLUMNS:
        raise ValueError(f"{where}: an array of shape {shape} has {count(c, 'column')}; a cloud is "
                         f"[N, 3] plus at most {MAX_COLUMNS - 3} extra columns (colours, "
                         f"normals). If its first three columns are x y z, save arr[:, :3]")
    return arr[:, :3].astype(np.float64)


def sample_mesh_surface(
    vertices: np.ndarray, triangles: np.ndarray, num_points: int, seed: int = 0
) -> np.ndarray:
    """Uniform (area-weighted) samples on a triangle mesh, seeded.

    vertices: [V, 3], triangles: [T, 3] int -> points [num_points, 3].
    """
    tri = vertices[triangles]  # [T, 3, 3]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    total = area.sum()
    if not np.isfinite(total) or total <= 0:
        raise ValueError("the mesh has zero surface area; cannot sample points on it")
    rng = np.random.Generator(np.random.PCG64(seed))
    face = np.searchsorted(np.cumsum(area) / total, rng.random(num_points), side="right")
    face = np.minimum(face, len(area) - 1)
    u, v = rng.random(num_points), rng.random(num_points)
    su = np.sqrt(u)
    a, b, c = tri[face, 0], tri[face, 1], tri[face, 2]
    return (1 - su)[:, None] * a + (su * (1 - v))[:, None] * b + (su * v)[:, None] * c


def _open3d_read(o3d, read, path: Path):
    """Call Open3D's ``read`` with Open3D's own (coloured) log silenced: our checks report
    problems instead. Its exceptions become a ValueError naming the file, without colours."""
    try:
        with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
            return read(str(path))
    except RuntimeError as err:
        message = _ANSI_CODE.sub("", str(err)).strip()
        raise ValueError(f"{path}: Open3D cannot read it: {message}") from None


def _read_open3d(path: Path, num_points: int, seed: int) -> np.ndarray:
    """A .ply/.pcd cloud -> its points ``[N, 3]``; a mesh (.off/.stl, .ply with faces)
    -> ``num_points`` surface samples ``[num_points, 3]``."""
    declared = check_file(path)  # raises on truncated / corrupt / empty files
    o3d = import_open3d()
    if declared.faces == 0:
        cloud = _open3d_read(o3d, o3d.io.read_point_cloud, path)
        points = np.asarray(cloud.points, dtype=np.float64)
        if len(points) != declared.vertices:
            raise ValueError(f"{path}: Open3D read {count(len(points), 'point')} but the header "
                             f"declares {declared.vertices}; the file is corrupt")
        return points
    mesh = _open3d_read(o3d, o3d.io.read_triangle_mesh, path)
    return _sample_mesh(path, declared, np.asarray(mesh.vertices, dtype=np.float64),
                        np.asarray(mesh.triangles), num_points, seed)


def _read_obj(path: Path, num_points: int, seed: int) -> np.ndarray:
    """An OBJ file (checked by `read_obj`): without faces, a point cloud -> its vertices
    ``[V, 3]``; with triangles only, Open3D's mesh (as before); with quads or larger
    polygons, each split into a fan of triangles (`ObjContents.triangles`) -> ``num_points``
    surface samples ``[num_points, 3]``."""
    obj = read_obj(path, path.read_bytes())
    declared = Declared(vertices=None, faces=len(obj.faces))
    if not obj.faces:
        log.info("%s: no faces ('f' lines): read its %d vertices as a point cloud", path,
                 len(obj.vertices))
        return obj.vertices
    if not obj.polygons:
        o3d = import_open3d()
        mesh = _open3d_read(o3d, o3d.io.read_triangle_mesh, path)
        vertices, triangles = np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.triangles)
    else:
        vertices, triangles = obj.vertices, obj.triangles()
        log.info("%s: %d of its %d faces have more than 3 vertices; split into triangles "
                 "(fans from each face's first vertex)", path, len(obj.polygons), len(obj.faces))
    return _sample_mesh(path, declared, vertices, triangles, num_points, seed)


def _sample_mesh(path: Path, declared: Declared, vertices: np.ndarray, triangles: np.ndarray,
                 num_points: int, seed: int) -> np.ndarray:
    """vertices [V, 3], triangles [T, 3], checked against the file -> [num_points, 3]."""
    check_mesh(path, declared, vertices, triangles)
    log.debug("%s: mesh with %s; sampling %s", path, count(len(triangles), "triangle"),
              count(num_points, "point"))
    try:
        return sample_mesh_surface(vertices, triangles, num_points, seed)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def resample_points(
    points: np.ndarray, num_points: int, seed: int = 0, sampling: str = "random"
) -> np.ndarray:
    """points: [N, 3] -> [num_points, 3]. N >= num_points: a seeded random subset without
    replacement in original order (``"random"``) or farthest-point sampling from point 0
    (``"fps"``). N < num_points: all N points in order, then ``num_points - N`` points
    drawn with replacement (seeded)."""
    n = points.shape[0]
    if sampling == "fps" and n >= num_points:
        idx = farthest_point_sample(torch.from_numpy(points)[None], num_points)[0].numpy()
        return points[idx]
    rng = np.random.Generator(np.random.PCG64(seed))
    if n >= num_points:
        return points[np.sort(np.argsort(rng.random(n), kind="stable")[:num_points])]
    extra = rng.integers(0, n, size=num_points - n)
    return np.concatenate([points, points[extra]])


def _drop_non_finite(path: Path, points: np.ndarray) -> np.ndarray:
    """points: [N, 3] -> [M, 3] without rows holding NaN/inf (warned); none left: an error."""
    if len(points) == 0:
        raise ValueError(f"{path} holds no points")
    bad = np.flatnonzero(~np.isfinite(points).all(axis=1))
    if len(bad) == len(points):
        raise ValueError(f"{path}: all {count(len(points), 'point')} have NaN or infinite "
                         f"coordinates; the file holds no usable point")
    if len(bad):
        shown = ", ".join(str(i) for i in bad[:5]) + (", ..." if len(bad) > 5 else "")
        log.warning("%s: dropping %d of %s with NaN/inf coordinates (points %s, counted "
                    "from 0); the rest are "
                    "used", path, len(bad), count(len(points), "point"), shown)
    return np.delete(points, bad, axis=0)


def load_point_cloud(
    path, num_points: int = 1024, up: str = "y", seed: int = 0, sampling: str = "random"
) -> torch.Tensor:
    """Read a cloud or mesh file -> float32 tensor ``[num_points, 3]``, centred on its
    centroid and scaled so its farthest point lies on the unit sphere.

    Meshes are sampled with ``num_points`` area-weighted surface points (seeded). Clouds
    with more than ``num_points`` points: a seeded random subset without replacement
    (``sampling="random"``, original order kept) or farthest-point sampling
    (``sampling="fps"``, from point 0). Clouds with fewer: every point once, plus points
    drawn with replacement (seeded) to fill up. A few NaN/inf points are dropped (with a
    warning); broken files are a ValueError naming the file (see the module docstring).
    ``up="z"``: z-up data rotated into ModelNet's y-up convention, ``(x, y, z) -> (x, z, -y)``.
    """
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not a point-cloud file; give the path "
                                f"of a file inside it")
    if suffix not in CLOUD_SUFFIXES + MESH_SUFFIXES:
        raise ValueError(
            f"{path}: unsupported file type {suffix!r}; use one of "
            f"{sorted(set(CLOUD_SUFFIXES + MESH_SUFFIXES))}"
        )
    if not path.is_file():
        raise FileNotFoundError(f"point-cloud file {path} does not exist")
    if up not in ("y", "z"):
        raise ValueError(f"up must be 'y' or 'z'; got {up!r}")
    if sampling not in ("random", "fps"):
        raise ValueError(f"sampling must be 'random' or 'fps'; got {sampling!r}")
    if int(num_points) < 1:
        raise ValueError(f"num_points must be >= 1; got {num_points}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes); it holds no points")
    if suffix in TEXT_SUFFIXES:
        pts = _read_text(path)
    elif suffix in (".npy", ".npz"):
        pts = read_numpy_cloud(path)
    elif suffix == ".obj":
        pts = _read_obj(path, int(num_points), seed)
    else:
        pts = _read_open3d(path, int(num_points), seed)
    pts = _drop_non_finite(path, pts)
    pts = resample_points(pts, int(num_points), seed, sampling)
    if up == "z":
        pts = pts @ Z_UP_TO_Y_UP.T
    if (pts == pts[0]).all():
        raise ValueError(f"{path}: all points coincide; cannot scale the cloud")
    return normalize_unit_sphere(torch.from_numpy(pts)[None])[0].to(torch.float32)
