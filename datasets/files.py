"""Load your own point clouds and meshes as normalised ``[num_points, 3]`` clouds.

Clouds: ``.ply`` (without faces), ``.pcd`` (Open3D), ``.xyz``/``.pts``/``.txt``/``.csv``
(text, first three numeric columns are x y z; header lines are skipped), ``.npy``/``.npz``
(array ``[N, >=3]``). Meshes: ``.off``, ``.obj``, ``.stl``, ``.ply`` with faces (Open3D),
sampled uniformly on the surface (area-weighted, seeded).

Up axis: ModelNet40 is y-up. ``up="z"`` rotates z-up data by -90 degrees about the x axis,
``(x, y, z) -> (x, z, -y)`` (a proper rotation, det +1), so +z becomes +y.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import torch

from .h5utils import farthest_point_sample, normalize_unit_sphere

log = logging.getLogger(__name__)

CLOUD_SUFFIXES = (".ply", ".pcd", ".xyz", ".pts", ".txt", ".csv", ".npy", ".npz")
MESH_SUFFIXES = (".off", ".obj", ".stl", ".ply")
TEXT_SUFFIXES = (".xyz", ".pts", ".txt", ".csv")
# z-up -> y-up: rows map (x, y, z) to (x, z, -y).
Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
_NPZ_KEYS = ("points", "xyz", "data", "pos", "pc")


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


def _read_text(path: Path) -> np.ndarray:
    """x y z from a text cloud; header lines (column names, a point count) are skipped."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    split = re.compile(r"[,;\s]+")
    start = None
    for i, line in enumerate(lines):
        toks = [t for t in split.split(line.strip()) if t]
        if len(toks) >= 3:
            try:
                [float(t) for t in toks[:3]]
            except ValueError:
                continue
            start = i
            break
    if start is None:
        raise ValueError(f"{path}: no line with three numbers (x y z) found")
    rows = []
    for j, line in enumerate(lines[start:], start=start + 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        toks = [t for t in split.split(line) if t]
        if len(toks) < 3:
            raise ValueError(f"{path} line {j}: expected at least 3 columns, got {len(toks)}")
        try:
            rows.append([float(t) for t in toks[:3]])
        except ValueError:
            raise ValueError(f"{path} line {j}: cannot read x y z from {line[:60]!r}") from None
    return np.asarray(rows, dtype=np.float64)


def _read_numpy(path: Path) -> np.ndarray:
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
            arr = z[key]
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2 or arr.shape[1] < 3:
        raise ValueError(f"{path}: expected an array [N, 3] (or [N, >3]); got {arr.shape}")
    return arr[:, :3]


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


def _read_open3d(path: Path, num_points: int, seed: int) -> np.ndarray:
    o3d = import_open3d()
    suffix = path.suffix.lower()
    if suffix in MESH_SUFFIXES:
        # A .ply cloud read as a mesh makes Open3D warn; faces decide what it is.
        with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
            mesh = o3d.io.read_triangle_mesh(str(path))
        tris = np.asarray(mesh.triangles)
        if len(tris):
            log.debug("%s: mesh with %d faces; sampling %d points", path, len(tris), num_points)
            return sample_mesh_surface(np.asarray(mesh.vertices, dtype=np.float64),
                                       tris, num_points, seed)
        if suffix != ".ply":
            verts = np.asarray(mesh.vertices, dtype=np.float64)
            if len(verts):
                log.warning("%s has no faces; using its %d vertices as a cloud", path, len(verts))
                return verts
            raise ValueError(f"{path}: Open3D read no vertices or faces (empty or unreadable file)")
    cloud = o3d.io.read_point_cloud(str(path))
    return np.asarray(cloud.points, dtype=np.float64)


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


def load_point_cloud(
    path, num_points: int = 1024, up: str = "y", seed: int = 0, sampling: str = "random"
) -> torch.Tensor:
    """Read a cloud or mesh file -> float32 tensor ``[num_points, 3]``, centred on its
    centroid and scaled so its farthest point lies on the unit sphere.

    Meshes are sampled with ``num_points`` area-weighted surface points (seeded). Clouds
    with more than ``num_points`` points: a seeded random subset without replacement
    (``sampling="random"``, original order kept) or farthest-point sampling
    (``sampling="fps"``, from point 0). Clouds with fewer: every point once, plus points
    drawn with replacement (seeded) to fill up. Non-finite points are dropped (warned).
    ``up="z"``: z-up data rotated into ModelNet's y-up convention, ``(x, y, z) -> (x, z, -y)``.
    """
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
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
    if suffix in TEXT_SUFFIXES:
        pts = _read_text(path)
    elif suffix in (".npy", ".npz"):
        pts = _read_numpy(path)
    else:
        pts = _read_open3d(path, int(num_points), seed)
    finite = np.isfinite(pts).all(axis=1)
    if not finite.all():
        log.warning("%s: dropping %d points with NaN/inf coordinates", path, int((~finite).sum()))
        pts = pts[finite]
    if pts.shape[0] == 0:
        raise ValueError(f"{path} holds no points (empty or unreadable)")
    pts = resample_points(pts, int(num_points), seed, sampling)
    if up == "z":
        pts = pts @ Z_UP_TO_Y_UP.T
    if (pts == pts[0]).all():
        raise ValueError(f"{path}: all points coincide; cannot scale the cloud")
    return normalize_unit_sphere(torch.from_numpy(pts)[None])[0].to(torch.float32)
