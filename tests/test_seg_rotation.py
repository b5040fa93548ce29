"""The rotated protocol's rotations: seeded per shape, proper, about the up axis for ``up``."""
import numpy as np
import pytest
import torch

from pointcalip.segmentation.rotation import RotatedSplit, shape_rotation, split_rotations


class Split:
    """The dataset surface RotatedSplit reads."""

    def __init__(self, index, split="test"):
        self.index, self.split, self.name = np.asarray(index), split, "toy"
        g = torch.Generator().manual_seed(0)
        self._points = torch.randn(len(index), 50, 3, generator=g)
        self.settings = {"split": split, "n": len(index)}
        self.labels = np.zeros(len(index), np.int64)

    def __len__(self):
        return len(self.index)

    def points(self, rows=None):
        return self._points if rows is None else self._points[np.asarray(rows)]


@pytest.mark.parametrize("mode", ["so3", "up"])
def test_rotations_are_proper_seeded_and_per_shape(mode):
    r = split_rotations(mode, 5, "test", range(20)).astype(np.float64)
    assert np.allclose(r @ r.transpose(0, 2, 1), np.eye(3), atol=1e-6)
    assert np.allclose(np.linalg.det(r), 1.0, atol=1e-6)
    assert len({m.round(6).tobytes() for m in r}) == 20                   # one per shape
    assert np.array_equal(r, split_rotations(mode, 5, "test", range(20)))  # seeded
    assert not np.allclose(r, split_rotations(mode, 6, "test", range(20)))
    assert not np.allclose(r, split_rotations(mode, 5, "val", range(20)))  # splits differ
    if mode == "up":                                  # about y: y stays, x-z turns
        assert np.allclose(r[:, 1], [0, 1, 0]) and np.allclose(r[:, :, 1], [0, 1, 0])
    else:                                             # SO(3): tilts the up axis too
        assert np.abs(r[:, 1, 1]).mean() < 0.9


def test_rotated_split_turns_points_by_file_index_and_keys_settings():
    full, some = Split(range(6)), Split([1, 4])       # a category filter keeps files 1, 4
    a, b = RotatedSplit(full, "so3", 2), RotatedSplit(some, "so3", 2)
    assert np.array_equal(a.rotations[[1, 4]], b.rotations)              # same shape, same R
    r = shape_rotation("so3", 2, "test", 4)
    assert np.allclose(a.points([4])[0].numpy(), full.points([4])[0].numpy() @ r.T, atol=1e-5)
    assert a.settings["rotation"] == {"mode": "so3", "seed": 2, "up_axis": "y"}
    assert a.settings != full.settings and len(a) == 6 and a.labels is full.labels
    with pytest.raises(ValueError, match="so3' or 'up'"):
        shape_rotation("xyz", 0, "test", 0)
