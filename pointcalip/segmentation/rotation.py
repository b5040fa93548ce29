"""The rotated protocol (issue 30): every shape turned by a seeded random rotation.

A shape's rotation depends only on the seed, the mode, its split and its index in the
split's files (``dataset.index``), so every method, every run and both splits (TEST and the
tuning split) see the same rotations, and a category filter does not change them:

- ``so3``: uniform on SO(3) (a unit quaternion from four standard normals);
- ``up``: about the up axis only (ShapeNetPart: y), by an angle uniform in [0, 2 pi).

Clouds are turned about the origin (ShapeNetPart's are centred in the unit sphere):
``p' = R p``, i.e. ``points @ R^T``.
"""
from __future__ import annotations

import zlib
from typing import Sequence

import numpy as np
import torch

AXES = {"x": 0, "y": 1, "z": 2}


def shape_rotation(mode: str, seed: int, split: str, index: int, up_axis: str = "y"
                   ) -> np.ndarray:
    """[3, 3] float64 rotation of shape ``index`` of ``split`` (see the module doc)."""
    rng = np.random.default_rng([int(seed), zlib.crc32(split.encode()), int(index),
                                 0 if mode == "so3" else 1])
    if mode == "so3":
        q = rng.standard_normal(4)
        w, x, y, z = q / np.linalg.norm(q)
        return np.array([
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    if mode == "up":
        a = rng.uniform(0.0, 2 * np.pi)
        c, s = np.cos(a), np.sin(a)
        i, j = [k for k in range(3) if k != AXES[up_axis]]     # the plane it turns
        r = np.eye(3)
        r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
        return r
    raise ValueError(f"rotation mode must be 'so3' or 'up'; got {mode!r}")


def split_rotations(mode: str, seed: int, split: str, indices: Sequence[int],
                    up_axis: str = "y") -> np.ndarray:
    """[M, 3, 3] float32: the rotations of the shapes ``indices`` of ``split``."""
    return np.stack([shape_rotation(mode, seed, split, int(i), up_axis) for i in indices]
                    ).astype(np.float32).reshape(-1, 3, 3)


class RotatedSplit:
    """A ShapeNetPart split whose clouds are turned by their seeded rotations (everything
    else, labels and part ids included, is the split's). ``rotations`` [M, 3, 3] by row;
    ``settings`` add the rotation, so feature stores and location caches keep the rotated
    clouds apart from the upright ones."""

    def __init__(self, dataset, mode: str, seed: int = 0, up_axis: str = "y"):
        self.dataset = dataset
        self.rotation = {"mode": mode, "seed": int(seed), "up_axis": up_axis}
        self.rotations = split_rotations(mode, seed, dataset.split, dataset.index, up_axis)
        self.settings = {**dataset.settings, "rotation": dict(self.rotation)}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name):
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def points(self, indices=None) -> torch.Tensor:
        """Rotated clouds at ``indices`` (default all): [m, N, 3] float32."""
        pts = self.dataset.points(indices)
        idx = np.arange(len(self)) if indices is None else np.asarray(indices, np.int64)
        rot = torch.from_numpy(self.rotations[idx.reshape(-1)])
        return torch.matmul(pts, rot.transpose(1, 2)).contiguous()
