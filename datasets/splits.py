"""Seeded, class-stratified few-shot and validation subsets.

Stability: each class ``c`` gets its own generator ``PCG64([seed, c, salt])`` (NumPy's
SeedSequence hashing of the integer list is specified and version-stable) and a random key
per sample from ``Generator.random`` (the core uniform-double stream); samples are taken in
ascending key order (stable argsort). Nothing depends on ``hash()``, set order, or
``Generator.choice`` internals, so indices are the same across machines and Python/NumPy
versions. Because each class uses its own stream, adding or removing other classes does not
change a class's picks, and K-shot picks are a prefix of (K+1)-shot picks for the same seed.
"""
from __future__ import annotations

import logging

import numpy as np
from ..core.words import count

log = logging.getLogger(__name__)

_FEWSHOT_SALT = 0
_VALIDATION_SALT = 1


def _labels_array(labels) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"labels must be 1-D [n]; got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers; got dtype {arr.dtype}")
    return arr.astype(np.int64)


def _class_order(indices: np.ndarray, seed: int, cls: int, salt: int) -> np.ndarray:
    """``indices`` of one class in a seeded random order."""
    if int(seed) < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed}")
    rng = np.random.Generator(np.random.PCG64([int(seed), int(cls), salt]))
    keys = rng.random(indices.size)
    return indices[np.argsort(keys, kind="stable")]


def fewshot_indices(labels, shots: int, seed: int) -> np.ndarray:
    """``shots`` samples per class, seeded; sorted int64 indices into ``labels``.

    labels: ``[n]`` int -> indices ``[<= shots * classes]``. A class with fewer than
    ``shots`` samples gives all it has (with a warning).
    """
    labels = _labels_array(labels)
    if int(shots) < 1:
        raise ValueError(f"shots must be >= 1; got {shots}")
    picked = []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        if idx.size < shots:
            msg = f"class {int(cls)} has only {count(idx.size, 'sample')} for {shots}-shot; using all of them"
            log.warning(msg)
        picked.append(_class_order(idx, seed, cls, _FEWSHOT_SALT)[: int(shots)])
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)


def validation_indices(
    labels, fraction: float | None, seed: int, exclude=None, per_class: int | None = None
) -> np.ndarray:
    """A class-stratified validation subset, seeded; sorted int64 indices into ``labels``.

    Per class, from the samples not in ``exclude`` (e.g. the few-shot indices), take
    ``round(fraction * available)`` samples (half rounds up), at least one when any are
    available; or exactly ``per_class`` samples (capped by what is available) if given.
    """
    labels = _labels_array(labels)
    if per_class is None:
        if fraction is None or not 0.0 < float(fraction) <= 1.0:
            raise ValueError(f"fraction must be in (0, 1]; got {fraction}")
    elif int(per_class) < 1:
        raise ValueError(f"per_class must be >= 1; got {per_class}")
    mask = np.ones(labels.shape[0], dtype=bool)
    if exclude is not None:
        ex = np.asarray(exclude, dtype=np.int64).reshape(-1)
        if ex.size and (ex.min() < 0 or ex.max() >= labels.shape[0]):
            raise ValueError(f"exclude holds indices outside 0..{labels.shape[0] - 1}")
        mask[ex] = False
    picked = []
    for cls in np.unique(labels):
        idx = np.flatnonzero((labels == cls) & mask)
        if idx.size == 0:
            log.warning("class %d has no samples left for validation", int(cls))
            continue
        if per_class is not None:
            k = min(int(per_class), idx.size)
        else:
            k = min(idx.size, max(1, int(np.floor(float(fraction) * idx.size + 0.5))))
        picked.append(_class_order(idx, seed, cls, _VALIDATION_SALT)[:k])
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)
