"""Which clouds a few-shot run uses: the validation part of TRAIN, the shots, augmented copies.

Validation is carved from TRAIN first (class-stratified, seeded: `validation_indices`), and
shots are drawn from the rest (`fewshot_indices`, per seed), so validation is disjoint from
every shot of every seed and does not change when seeds or shot counts are added; K-shot
picks are a prefix of the larger K-shot picks of the same seed.

Every class of the data (with clouds in TRAIN or TEST) must have K TRAIN clouds outside
validation for K shots (`check_shots`): a run is refused, naming the short classes, rather than
reporting fewer shots as K.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import torch

from ..datasets import fewshot_indices, validation_indices


def validation_rows(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Rows of TRAIN held out for validation: a seeded, class-stratified ``fraction``."""
    return validation_indices(labels, fraction, seed)


def check_shots(labels: np.ndarray, val_rows: np.ndarray, shots: int,
                classnames: Sequence[str], test_labels: Optional[np.ndarray] = None) -> None:
    """Refuse ``shots`` per class when a class of the data has fewer TRAIN clouds (``labels``)
    outside validation (``val_rows``): a "K-shot" row then means K shots of every class. A
    class of the data is one with clouds in TRAIN or in TEST (``test_labels``); a name of
    ``classnames`` with no cloud in either is not one. The error names each short class with
    its counts and says what would fit."""
    labels = np.asarray(labels, dtype=np.int64)
    n = len(classnames)
    total = np.bincount(labels, minlength=n)
    present = total > 0
    if test_labels is not None:
        present |= np.bincount(np.asarray(test_labels, dtype=np.int64), minlength=n) > 0
    left = total - np.bincount(labels[np.asarray(val_rows, dtype=np.int64)], minlength=n)
    short = np.flatnonzero(present & (left < shots))
    if short.size == 0:
        return
    named = ", ".join(f"{classnames[c]!r} has {left[c]} (of {total[c]} in TRAIN)" for c in short[:5])
    more = f" and {short.size - 5} more" if short.size > 5 else ""
    fix = (f"ask for --shots {int(left[present].min())} or fewer" if left[present].min() > 0 else
           "no shot can be drawn for it: add TRAIN clouds or leave the class out")
    raise ValueError(f"{short.size} class(es) have fewer than {shots} TRAIN clouds outside "
                     f"validation for {shots}-shot runs: {named}{more}; {fix} (or hold out less "
                     f"for validation with --set tune.val_fraction=...)")


def shot_rows(labels: np.ndarray, val_rows: np.ndarray, shots: int, seed: int) -> np.ndarray:
    """``shots`` rows per class of TRAIN outside ``val_rows``, seeded; sorted."""
    pool = np.setdiff1d(np.arange(len(labels)), val_rows)
    return pool[fewshot_indices(np.asarray(labels)[pool], shots, seed)]


class AugmentedSplit:
    """``copies`` augmented copies of every cloud of ``base`` (a dataset split), as a dataset:
    row ``r`` is copy ``r % copies`` of cloud ``r // copies``. Each copy is scaled per axis by
    a factor in ``scale``, shifted per axis by up to +-``shift`` and has its points shuffled,
    drawn from a generator seeded by (seed, cloud, copy): the same on every run and machine,
    so the feature store encodes each copy once."""

    def __init__(self, base, copies: int, seed: int = 0,
                 scale: Sequence[float] = (2 / 3, 3 / 2), shift: float = 0.2):
        if copies < 1:
            raise ValueError(f"copies must be a positive integer, got {copies}")
        self.base, self.copies, self.seed = base, int(copies), int(seed)
        self.scale, self.shift = (float(scale[0]), float(scale[1])), float(shift)
        self.name, self.split = base.name, f"{base.split}-augmented"
        self.labels = np.repeat(np.asarray(base.labels), self.copies)

    def __len__(self) -> int:
        return len(self.base) * self.copies

    @property
    def settings(self) -> dict:
        return {**self.base.settings, "augmented": {"copies": self.copies, "seed": self.seed,
                                                    "scale": list(self.scale), "shift": self.shift}}

    def row(self, cloud: int, copy: int) -> int:
        return cloud * self.copies + copy

    def points(self, rows) -> torch.Tensor:
        """rows [m] -> clouds [m, N, 3] float32."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        clouds = self.base.points(rows // self.copies)
        out = torch.empty_like(clouds)
        for i, row in enumerate(rows):
            rng = np.random.Generator(np.random.PCG64([self.seed, int(row) // self.copies,
                                                       int(row) % self.copies]))
            scale = torch.from_numpy(rng.uniform(*self.scale, size=3)).float()
            shift = torch.from_numpy(rng.uniform(-self.shift, self.shift, size=3)).float()
            order = torch.from_numpy(rng.permutation(clouds.shape[1]))
            out[i] = clouds[i, order] * scale + shift
        return out


def stack_alternatives(original: torch.Tensor, copies: torch.Tensor | None) -> torch.Tensor:
    """original [S, ...] and copies [S, A, ...] (or None) -> [S, 1 + A, ...]."""
    if copies is None:
        return original.unsqueeze(1)
    return torch.cat([original.unsqueeze(1), copies], dim=1)


def bank_rows(bank: AugmentedSplit, clouds: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The bank's rows of every copy of ``clouds``: -> (rows [S * copies], shape (S, copies))."""
    rows = np.asarray(clouds, dtype=np.int64)[:, None] * bank.copies + np.arange(bank.copies)
    return rows.reshape(-1), rows.shape
