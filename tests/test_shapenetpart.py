"""ShapeNetPart reader on synthetic folders in the published layout."""
import logging

import h5py
import numpy as np
import pytest

from pointcalip.datasets import ShapeNetPart, build_dataset
from pointcalip.datasets.shapenetpart import (NUM_PARTS, PART_OFFSETS, load_part_names, part_ids)
from synthetic_shapenetpart import write_shapenetpart

SIZES = {"train": 20, "val": 18, "test": 17}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_shapenetpart(tmp_path_factory.mktemp("snp"), SIZES, num_points=64,
                              files={"train": 3})


def test_reads_every_split_with_parts(folder):
    with h5py.File(folder / "ply_data_train1.h5") as h5:
        raw_points, raw_label, raw_pid = h5["data"][0], int(h5["label"][0, 0]), h5["pid"][0]
    train = ShapeNetPart(folder.parent, "train")          # parent folder also accepted
    assert len(train) == 20 and len(train.files) == 3
    row = len(h5py.File(folder / "ply_data_train0.h5")["label"])
    pts, cat, pid = train[row]
    assert np.array_equal(pts.numpy(), raw_points) and cat == raw_label
    assert np.array_equal(pid.numpy(), raw_pid.astype(np.int64))
    assert train.classnames[4] == "chair" and train.parts["chair"] == ["back", "seat", "leg", "armrest"]
    assert part_ids(4) == [12, 13, 14, 15] and PART_OFFSETS[-1] == 47 and NUM_PARTS == 50
    assert len(ShapeNetPart(folder, "val")) == 18 and len(ShapeNetPart(folder, "trainval")) == 38
    test = build_dataset("shapenetpart", root=folder, split="test", num_points=32)
    assert test.pid.shape == (17, 32) and test.points().shape == (17, 32, 3)
    assert all(set(np.unique(test.pid[i])) <= set(part_ids(test.labels[i])) for i in range(17))


def test_split_size_check_reports_a_differing_folder(folder, caplog):
    ds = ShapeNetPart(folder, "test")
    assert ds.size_note == f"ShapeNetPart test in {folder} holds 17 shapes; the release has 2874"


def test_category_subset_keeps_dataset_indices(folder):
    full = ShapeNetPart(folder, "test")
    chairs = ShapeNetPart(folder, "test", categories=["chair"])
    assert (chairs.labels == 4).all() and len(chairs) == int((full.labels == 4).sum())
    assert np.array_equal(chairs.pid, full.pid[chairs.index])
    with pytest.raises(ValueError, match="unknown ShapeNetPart category 'chiar'"):
        ShapeNetPart(folder, "test", categories=["chiar"])


def test_clear_errors(tmp_path, folder):
    bad = write_shapenetpart(tmp_path / "bad", {"val": 4}, num_points=16)
    with h5py.File(bad / "ply_data_val0.h5", "r+") as h5:
        lab = int(h5["label"][1, 0])
        pid = h5["pid"][...]
        pid[1, 3] = (PART_OFFSETS[lab] + 10) % NUM_PARTS
        h5["pid"][...] = pid
    with pytest.raises(ValueError, match=r"ply_data_val0.h5 key 'pid' row 1 point 3"):
        ShapeNetPart(bad, "val")
    with pytest.raises(FileNotFoundError, match="holds no test files"):
        ShapeNetPart(bad, "test")
    with pytest.raises(ValueError, match="unknown ShapeNetPart split 'dev'"):
        ShapeNetPart(folder, "dev")
    names = tmp_path / "parts.yaml"
    names.write_text("\n".join(f"{c}: [a]" for c in load_part_names()))
    with pytest.raises(ValueError, match=r"parts.yaml key 'airplane': expected a list of 4"):
        load_part_names(names)
    (bad / "ply_data_val0.h5").unlink()
    with pytest.raises(FileNotFoundError, match="lists files that are missing"):
        ShapeNetPart(bad, "val")
