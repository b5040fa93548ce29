"""Data identity (issue 27 section 2): every byte a run reads, one function, remembered."""
import json
import os
import shutil
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from pointcalip.core import identity
from pointcalip.core.identity import data_identity, file_digests, files_identity, shared_files
from pointcalip.datasets.objaverse_lvis import SPLIT_FILE, ObjaverseLVIS, read_split
from pointcalip.datasets.shapenetpart import ShapeNetPart

from synthetic_objaverse import write_objaverse_lvis
from synthetic_shapenetpart import write_shapenetpart


def _edit_middle(path: Path, keep_times: bool = True) -> None:
    """Flip one byte in the middle of ``path`` in place; same size, mtime set back."""
    st = path.stat()
    with open(path, "r+b") as f:
        f.seek(st.st_size // 2)
        byte = f.read(1)
        f.seek(st.st_size // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    if keep_times:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size


def test_an_edit_in_the_middle_of_a_large_file_changes_its_identity(tmp_path):
    path = tmp_path / "big.h5"
    path.write_bytes(np.random.default_rng(0).bytes(5 << 20))     # 5 MiB: ends != middle
    before = files_identity([path])
    assert before[0]["size"] == 5 << 20 and len(before[0]["sha256"]) == 64
    _edit_middle(path)
    after = files_identity([path])
    assert after[0]["sha256"] != before[0]["sha256"]
    assert after[0]["name"] == "big.h5"


def test_digests_are_remembered_and_an_edit_is_hashed_again(tmp_path, monkeypatch):
    monkeypatch.setattr(identity, "RACY_SECONDS", 0.02)
    calls = []
    real = identity._hash
    monkeypatch.setattr(identity, "_hash", lambda p: calls.append(Path(p).name) or real(p))
    files = [tmp_path / f"f{i}.bin" for i in range(3)]
    for i, f in enumerate(files):
        f.write_bytes(bytes([i]) * 1000)
    time.sleep(0.05)
    first = file_digests(files)
    assert calls == ["f0.bin", "f1.bin", "f2.bin"]
    shards = list(identity.identity_cache_dir().glob("*.json"))
    assert len(shards) == 1 and not list(identity.identity_cache_dir().glob(".*tmp"))
    assert file_digests(files) == first and len(calls) == 3        # rerun: only stat
    time.sleep(0.05)
    _edit_middle(files[1])                    # same size and mtime: its ctime still moves
    second = file_digests(files)
    assert calls[3:] == ["f1.bin"]
    assert second[0] == first[0] and second[1] != first[1] and second[2] == first[2]
    shards[0].write_text("{not json")         # a damaged cache costs time, never the answer
    assert file_digests(files) == second and calls[4:] == ["f0.bin", "f1.bin", "f2.bin"]


def test_a_file_just_written_is_not_remembered(tmp_path, monkeypatch):
    calls = []
    real = identity._hash
    monkeypatch.setattr(identity, "_hash", lambda p: calls.append(p) or real(p))
    f = tmp_path / "fresh.bin"
    f.write_bytes(b"abc")
    file_digests([f])
    file_digests([f])
    assert len(calls) == 2       # racy: written less than RACY_SECONDS ago, hashed each time


def test_identity_does_not_depend_on_where_the_data_lies(tmp_path):
    a = tmp_path / "a" / "x.h5"
    b = tmp_path / "b" / "x.h5"
    a.parent.mkdir()
    b.parent.mkdir()
    a.write_bytes(b"same bytes")
    b.write_bytes(b"same bytes")
    assert files_identity([a]) == files_identity([b])
    assert data_identity({"test": files_identity([a])}) == data_identity({"test": files_identity([b])})
    assert shared_files(files_identity([a]), files_identity([b])) == [("x.h5", "x.h5")]


def test_many_files_become_one_summary_entry(tmp_path):
    files = []
    for i in range(identity.LIST_LIMIT + 1):
        files.append(tmp_path / f"{i}.npy")
        files[-1].write_bytes(str(i).encode())
    entry, = files_identity(files)
    assert entry["files"] == identity.LIST_LIMIT + 1 and entry["bytes"] == sum(len(str(i)) for i in range(identity.LIST_LIMIT + 1))
    files[7].write_bytes(b"x")
    assert files_identity(files)[0]["sha256"] != entry["sha256"]


# ----------------------------------------------------------------------------- datasets
def test_shapenetpart_edited_in_the_middle_gets_another_store_key(tmp_path):
    from pointcalip.segmentation.locations import locations_key
    from pointcalip.store import store_key

    folder = write_shapenetpart(tmp_path, {"val": 4, "test": 64}, num_points=4096)
    path = folder / "ply_data_test0.h5"
    assert path.stat().st_size > 2 * (1 << 20) + 1000     # larger than the first and last MiB
    before = ShapeNetPart(tmp_path, "test", num_points=1024).settings
    with h5py.File(path, "r") as h5:
        offset = h5["data"].id.get_offset()
    with open(path, "r+b") as f:                     # one coordinate of cloud 32, same size
        f.seek(offset + 32 * 4096 * 12 + 8)
        f.write(np.float32(0.5).tobytes())
    after = ShapeNetPart(tmp_path, "test", num_points=1024).settings
    assert after["files"] != before["files"]
    assert store_key(after, {}, "b", "fp32") != store_key(before, {}, "b", "fp32")
    assert locations_key(after, {}, 0.1) != locations_key(before, {}, 0.1)


def test_a_reinstalled_lvis_object_changes_the_split_identity(tmp_path):
    folder = write_objaverse_lvis(tmp_path)
    before = ObjaverseLVIS(folder, num_points=64).settings
    ds = ObjaverseLVIS(folder, num_points=64)
    victim = ds.files[3]
    other = ds.files[5]
    shutil.copyfile(other, victim)                  # lvis.json unchanged, one object replaced
    after = ObjaverseLVIS(folder, num_points=64).settings
    assert after["files"][0] == before["files"][0]              # the split file itself
    assert after["files"] != before["files"]
    assert [e["name"] for e in before["files"]][1:3] == ds.uids[:2]


def test_a_uid_listed_twice_in_lvis_json_is_refused(tmp_path):
    folder = write_objaverse_lvis(tmp_path)
    entries = json.loads((folder / SPLIT_FILE).read_text())
    entries.append(dict(entries[2], category=entries[0]["category"]))
    (folder / SPLIT_FILE).write_text(json.dumps(entries))
    with pytest.raises(ValueError, match=rf"lists uid {entries[2]['uid']} twice \(entries 2 "
                                         rf"and {len(entries) - 1}\)"):
        read_split(folder / SPLIT_FILE)
    with pytest.raises(ValueError, match="twice"):
        ObjaverseLVIS(folder, num_points=64)


def test_two_shapenetpart_parents_of_hdf5_data_get_their_own_output_folders(tmp_path):
    from pointcalip.config import load_config
    from pointcalip.segmentation.config import SegmentConfig
    from pointcalip.segmentation.run import default_output_dir

    write_shapenetpart(tmp_path / "one", {"val": 4, "test": 4}, seed=1)
    write_shapenetpart(tmp_path / "two", {"val": 4, "test": 4}, seed=2)
    write_shapenetpart(tmp_path / "copy", {"val": 4, "test": 4}, seed=1)
    out = {name: default_output_dir(load_config(SegmentConfig, ["shapenetpart"],
                                                [f"data.root={tmp_path / name}", "data.num_points=64"]))
           for name in ("one", "two", "copy")}
    assert out["one"] != out["two"]
    assert out["one"] == out["copy"]           # the same bytes elsewhere: the same data


# ----------------------------------------------------------------------------- disjoint data
def test_a_test_list_holding_the_val_data_is_refused_by_content_not_name(tmp_path):
    from pointcalip.config import load_config
    from pointcalip.segmentation.config import SegmentConfig
    from pointcalip.segmentation.run import load_segment_splits

    folder = write_shapenetpart(tmp_path, {"val": 4, "test": 4})
    shutil.copyfile(folder / "ply_data_val0.h5", folder / "ply_data_test7.h5")   # renamed copy
    (folder / "test_hdf5_file_list.txt").write_text("hdf5_data/ply_data_test0.h5\n"
                                                    "hdf5_data/ply_data_test7.h5\n")
    cfg = load_config(SegmentConfig, ["shapenetpart"], [f"data.root={tmp_path}",
                                                        "data.num_points=64"])
    with pytest.raises(ValueError, match=r"the VAL file ply_data_val0.h5 and the TEST file "
                                         r"ply_data_test7.h5 hold the same bytes"):
        load_segment_splits(cfg)
    tuned_on_test = load_config(SegmentConfig, ["shapenetpart"], [
        f"data.root={tmp_path}", "data.num_points=64", "tune.split=test"])
    load_segment_splits(tuned_on_test)          # asked for: the published protocol, warned


def test_a_train_file_listed_for_test_is_refused_by_every_command_that_loads_splits(tmp_path):
    from pointcalip.config import DataConfig
    from pointcalip.zeroshot import load_data
    from synthetic_data import write_modelnet40

    folder = write_modelnet40(tmp_path, 2, 2, num_points=32, seed=0)
    shutil.copyfile(folder / "ply_data_train0.h5", folder / "ply_data_test5.h5")
    (folder / "test_files.txt").write_text("data/modelnet40_ply_hdf5_2048/ply_data_test5.h5\n")
    data = DataConfig(name="modelnet40", root=str(folder), num_points=32)
    with pytest.raises(ValueError, match="the TRAIN file ply_data_train0.h5 and the TEST file "
                                         "ply_data_test5.h5 hold the same bytes"):
        load_data(data, download=False)
    load_data(data, download=False, train=False)      # TEST alone: nothing to compare
