"""Hostile files and exhausted machines (issue 28): paths that climb out of a data folder,
pickles that declare huge arrays, a full disk or a file-size limit while writing, and the
messages of every refused input (one line, naming the file / key / option, exit 2)."""
import json
import os

import numpy as np
import pytest

from pointcalip.cli import main
from pointcalip.core.paths import confined
from pointcalip.datasets.objaverse_lvis import SPLIT_FILE, ObjaverseLVIS
from synthetic_objaverse import write_objaverse_lvis


def _one_line(err: str) -> str:
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err


def test_confined_keeps_paths_inside_their_root(tmp_path):
    assert confined(tmp_path, "a/./b/../c.npy", "x") == tmp_path / "a/c.npy"
    for bad in ("../x", "a/../../x", "/etc/passwd", "", "..\\..\\x", "."):
        with pytest.raises(ValueError, match=r"^list line 3: path .* leads outside"):
            confined(tmp_path, bad, "list line 3")


@pytest.mark.parametrize("data_path", [
    "/mnt/data/objaverse-processed/../../../../victim.npy",
    "objaverse-processed/x/../../../victim.npy",
    "../victim.npy",
    "/tmp/victim.npy",
])
def test_download_refuses_an_entry_that_climbs_out(tmp_path, capsys, data_path):
    """Before: `download --from` copied the object to ``root/../victim.npy`` (exit 0)."""
    folder = write_objaverse_lvis(tmp_path / "src")
    split = json.loads((folder / SPLIT_FILE).read_text())
    outside = tmp_path / "victim.npy"
    (folder / "objaverse-processed").joinpath("x").mkdir()
    np.save(folder / "victim.npy", {"xyz": np.zeros((64, 3), np.float32)}, allow_pickle=True)
    split[3]["data_path"] = data_path
    (folder / SPLIT_FILE).write_text(json.dumps(split))
    root = tmp_path / "data" / "deep" / "er"
    assert main(["download", "objaverse_lvis", "--from", str(folder), "--root", str(root)]) == 2
    err = _one_line(capsys.readouterr().err)
    assert f"lvis.json entry 3 (uid {split[3]['uid']})" in err
    assert not outside.exists() and not (root / "objaverse_lvis").exists()
    assert not list((tmp_path / "data").rglob("victim.npy"))
    # reading (what `benchmark` does) follows the same rule, before any object is read
    with pytest.raises(ValueError, match=r"entry 3 \(uid .*\): (path|data_path) .*(leads|lies) outside"):
        ObjaverseLVIS(folder)
