"""Shared helpers for the published h5 releases: safe opening, validation, fingerprints,
point sampling and unit-sphere normalisation.

Every error names the file (and h5 key / cloud index / value) and says how to fix it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..core.identity import files_identity
from ..core.words import count

SAMPLING_MODES = ("first", "fps")


def open_h5(path: Path, hint: str):
    """Open ``path`` read-only with h5py; a missing, truncated or corrupt file becomes a
    FileNotFoundError / ValueError naming it, with ``hint`` saying how to get a good copy."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"missing h5 file {path}. {hint}")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise ValueError(
            f"cannot read h5 file {path} (truncated or corrupt: {err}). {hint}"
        ) from err


def require_key(h5, key: str, path: Path, hint: str):
    """``h5[key]``, or a KeyError naming the file, the key and the keys that are there."""
    if key not in h5:
        raise KeyError(
            f"h5 file {path} has no key {key!r} (keys present: {sorted(h5.keys())}). {hint}"
        )
    return h5[key]


def read_dataset(ds, path: Path, key: str, hint: str, rows=None) -> np.ndarray:
    """Read ``ds[rows]`` (all rows if None), turning h5 read errors into ValueErrors."""
    try:
        return ds[()] if rows is None else ds[rows]
    except (OSError, ValueError, TypeError) as err:
        raise ValueError(
            f"cannot read key {key!r} of h5 file {path} (truncated or corrupt: {err}). {hint}"
        ) from err


def check_points_shape(shape: Sequence[int], path: Path, key: str = "data") -> None:
    """Clouds must be stored as ``[n, P, 3]``."""
    if len(shape) != 3 or shape[2] != 3:
        raise ValueError(
            f"h5 file {path} key {key!r} has shape {tuple(shape)}; expected [n, points, 3]"
        )
    if shape[0] == 0 or shape[1] == 0:
        raise ValueError(f"h5 file {path} key {key!r} holds {count(shape[0], 'cloud')} of "
                         f"{count(shape[1], 'point')} (shape {tuple(shape)}); the file is empty or "
                         f"was cut short: re-download or re-extract it")


def whole_numbers(values: np.ndarray, path: Path, key: str) -> np.ndarray:
    """``values`` (any shape) as int64, refusing what a cast would silently change: floats
    with fractions, NaN/inf, non-numeric dtypes; ValueError naming the file, key and index."""
    if values.dtype.kind == "f":
        bad = ~np.isfinite(values) | (values != np.round(values))
        if bad.any():
            at = np.unravel_index(int(np.flatnonzero(bad)[0]), values.shape)
            index = at[0] if len(at) == 1 else tuple(int(i) for i in at)
            raise ValueError(f"h5 file {path} key {key!r} index {index} is not an integer: "
                             f"{values[at]}; the file is damaged")
    elif values.dtype.kind not in "iu":
        raise ValueError(f"h5 file {path} key {key!r} has non-numeric dtype {values.dtype}")
    return values.astype(np.int64)


def check_labels(raw: np.ndarray, n: int, num_classes: int, path: Path, names_file: str) -> np.ndarray:
    """Validate a label array (``[n]`` or ``[n, 1]``, integer-valued, in ``[0, num_classes)``)
    and return it as int64 ``[n]``."""
    labels = np.asarray(raw)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(
            f"h5 file {path} key 'label' has shape {tuple(np.shape(raw))}; expected [{n}] or "
            f"[{n}, 1] to match its {count(n, 'cloud')}"
        )
    labels = whole_numbers(labels, path, "label")
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"h5 file {path} key 'label' index {i} has label {labels[i]}, outside the "
            f"{count(num_classes, 'class')} of {names_file} (0..{num_classes - 1}); the class list "
            f"does not match this file: check that {names_file} belongs to this dataset release"
        )
    return labels


def check_finite(points: np.ndarray, path: Path, rows: np.ndarray) -> None:
    """Raise a ValueError naming the file and cloud index of the first non-finite cloud.
    ``points``: ``[m, P, 3]`` read from ``path`` at file rows ``rows`` ``[m]``."""
    finite = np.isfinite(points).all(axis=tuple(range(1, points.ndim)))
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        raise ValueError(
            f"h5 file {path} key 'data' cloud index {int(rows[bad])} contains NaN/inf "
            f"coordinates; the file is corrupt: re-download or re-extract it"
        )


def fingerprint(files: Sequence[Path]) -> list[dict]:
    """Identity of data files for cache keys (JSON-serialisable): name, size and the SHA-256
    of every byte of each file, remembered across runs (:func:`pointcalip.core.identity.
    files_identity`, the one identity every command uses)."""
    return files_identity(files)


def farthest_point_sample(points: torch.Tensor, num_points: int) -> torch.Tensor:
    """Deterministic farthest-point sampling starting at point index 0.

    points: [B, P, 3] -> indices [B, num_points] (int64). Squared distances are computed in
    float32 as ``(dx^2 + dy^2) + dz^2`` (elementwise IEEE ops, so the same on every CPU) and
    ties go to the lowest index (``argmax`` returns the first maximum); each cloud's result
    is independent of the batch it is in. About 3 ms per cloud of 2048 -> 1024 on one core.
    """
    b, p, _ = points.shape
    if num_points > p:
        raise ValueError(f"cannot take {count(num_points, 'point')} by FPS from clouds of "
                         f"{count(p, 'point')}")
    pts = points.to(torch.float32)
    x, y, z = (pts[..., k].contiguous() for k in range(3))
    idx = torch.zeros(b, num_points, dtype=torch.long)
    dist = torch.full((b, p), float("inf"), dtype=torch.float32)
    last = torch.zeros(b, 1, dtype=torch.long)
    for i in range(1, num_points):
        d = (x - x.gather(1, last)) ** 2
        d += (y - y.gather(1, last)) ** 2
        d += (z - z.gather(1, last)) ** 2
        torch.minimum(dist, d, out=dist)
        last = dist.argmax(dim=1, keepdim=True)
        idx[:, i] = last[:, 0]
    return idx


def sample_points(points: torch.Tensor, num_points: int | None, sampling: str) -> torch.Tensor:
    """points: [B, P, 3] -> [B, num_points, 3]: the first ``num_points`` points (the
    published protocol) or farthest-point sampling; ``None`` keeps all points."""
    if num_points is None or num_points == points.shape[1] and sampling == "first":
        return points
    if sampling == "first":
        return points[:, :num_points]
    idx = farthest_point_sample(points, num_points)
    return torch.gather(points, 1, idx[..., None].expand(-1, -1, 3))


def normalize_unit_sphere(points: torch.Tensor) -> torch.Tensor:
    """Centre each cloud on its centroid and scale its farthest point to radius 1.

    points: [B, N, 3] -> [B, N, 3] (a cloud whose points all coincide is only centred).
    Any scale the dtype holds is normalised: a cloud whose largest coordinate is so large
    (float32: above ~1e18) or so small (below ~1e-16) that its squared distances would
    overflow or underflow is first multiplied by a power of two, which is exact and leaves the
    result as it would be in exact arithmetic; other clouds are computed as they are.
    """
    info = torch.finfo(points.dtype)
    largest = points.detach().abs().flatten(1).amax(dim=1)
    odd = (largest > info.max ** 0.5 / 4) | ((largest < info.tiny ** 0.5 * 1024) & (largest > 0))
    if bool(odd.any()):
        exponent = torch.frexp(largest[odd])[1]
        points = points.clone()
        points[odd] = torch.ldexp(points[odd], -exponent[:, None, None].to(points.dtype))
    centred = points - points.mean(dim=1, keepdim=True)
    radius = centred.norm(dim=2).amax(dim=1).clamp_min(1e-12)
    return centred / radius[:, None, None]


def check_sampling(sampling: str, num_points: int | None, stored: int, where: str) -> None:
    """Validate the sampling options against the number of points stored per cloud."""
    if sampling not in SAMPLING_MODES:
        raise ValueError(f"unknown sampling {sampling!r}; use one of {list(SAMPLING_MODES)}")
    if num_points is not None and not 1 <= int(num_points) <= stored:
        raise ValueError(
            f"num_points={num_points} but {where} stores {count(stored, 'point')} per cloud; "
            f"use 1..{stored} (or None for all)"
        )
