"""Hostile files and exhausted machines (issue 28): paths that climb out of a data folder,
pickles that declare huge arrays, a full disk or a file-size limit while writing, and the
messages of every refused input (naming the file / key / option on its first line, no line
wider than the CLI's limit, exit 2)."""
import contextlib
import errno
import json
import resource

import numpy as np
import pytest

from pointcalip.cli import main
from pointcalip.core.paths import confined
from pointcalip.datasets.objaverse_lvis import SPLIT_FILE, ObjaverseLVIS
from messages import error_block
from synthetic_objaverse import write_objaverse_lvis


def _the_error(err: str) -> str:
    """The error message that ends ``err`` (stderr; a command may print its settings line
    first), its wrapped lines joined: no traceback, and no line of it wider than the CLI's
    limit (tests/messages.py)."""
    message = error_block(err)
    assert message.endswith("(run with -v for the traceback)"), err
    return message


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
    err = _the_error(capsys.readouterr().err)
    assert f"lvis.json entry 3 (uid {split[3]['uid']})" in err
    assert not outside.exists() and not (root / "objaverse_lvis").exists()
    assert not list((tmp_path / "data").rglob("victim.npy"))
    # reading (what `benchmark` does) follows the same rule, before any object is read
    with pytest.raises(ValueError, match=r"entry 3 \(uid .*\): (path|data_path) .*(leads|lies) outside"):
        ObjaverseLVIS(folder)


class _Declares:
    """Pickles as numpy's ``_reconstruct(ndarray, shape, dtype)`` without holding the array."""

    def __init__(self, shape, dtype="f8", state=None):
        self.shape, self.dtype, self.state = shape, dtype, state

    def __reduce__(self):
        reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]
        if self.state is None:
            return reconstruct, (np.ndarray, self.shape, self.dtype)
        return reconstruct, (np.ndarray, (0,), b"b"), self.state


def write_declaring(path, value):
    """A .npy file (0-d object array header) whose pickle is ``value``."""
    import pickle

    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "|O", "fortran_order": False, "shape": ()})
        pickle.dump(value, f, protocol=3)
    return path


def test_a_pickle_declaring_a_huge_array_is_refused_before_allocation(tmp_path):
    """Before: the array was allocated (MemoryError for this size: 'truncated or corrupt';
    a (250e6 x 3) float64 one was built, over 2 GB)."""
    from pointcalip.datasets.objaverse_lvis import load_npy_dict, read_xyz

    bomb = write_declaring(tmp_path / "bomb.npy", {"xyz": _Declares((10**12, 3))})
    assert bomb.stat().st_size < 250
    with pytest.raises(ValueError, match=r"bomb.npy declares a float64 array of shape "
                                         r"\(1000000000000, 3\) \(24,000,000.0 MB\), more than "
                                         r"the 64 MiB an object file may declare"):
        read_xyz(bomb, "abc")
    many = write_declaring(tmp_path / "many.npy", {f"a{i}": _Declares((3_000_000,), "f4")
                                                   for i in range(8)})
    with pytest.raises(ValueError, match=r"many.npy declares .* \(12.0 MB; 72.0 MB with the "
                                         r"file's other arrays\)"):
        load_npy_dict(many)
    # an object array whose state lists fewer items than its shape: numpy's own __setstate__
    # crashes the process (segmentation fault); here a corrupt file
    short = write_declaring(tmp_path / "short.npy", {"xyz": _Declares(
        None, state=(1, (1000, 3), np.dtype(object), False, [1]))})
    with pytest.raises(ValueError, match=r"short.npy declares an object array of 3000 items but "
                                         r"holds 1"):
        load_npy_dict(short)
    lying = write_declaring(tmp_path / "lying.npy", {"xyz": _Declares(
        None, state=(1, (10, 3), np.dtype("f4"), False, b"\0" * 12))})
    with pytest.raises(ValueError, match=r"lying.npy declares a float32 array of shape \(10, 3\) "
                                         r"\(120 bytes\) but holds 12 bytes"):
        load_npy_dict(lying)
    direct = write_declaring(tmp_path / "direct.npy", {"xyz": _Declares(None, state=None)})
    good = {"xyz": np.arange(12, dtype=np.float32).reshape(4, 3), "rgb": np.ones((4, 3)),
            "text": ["a"], "feat": [{"f": np.float32(2.5)}], "fortran": np.asfortranarray(
                np.arange(6.0).reshape(2, 3)), "names": np.array(["x", None], dtype=object)}
    np.save(direct, good, allow_pickle=True)
    got = load_npy_dict(direct)
    for key in ("xyz", "rgb", "fortran", "names"):
        assert np.array_equal(got[key], good[key]) and got[key].dtype == good[key].dtype
    assert got["fortran"].flags.f_contiguous and got["xyz"].flags.writeable
    assert got["text"] == ["a"] and got["feat"][0]["f"] == np.float32(2.5)


def test_nearest_visible_in_blocks_equals_the_whole_matrix(monkeypatch):
    """The fallback in blocks (memory independent of N^2) gives the same source as the full
    (unseen x seen) matrix it replaced, ties (grid points) to the lower index included."""
    import torch

    from pointcalip.segmentation import points as seg_points

    gen = torch.Generator().manual_seed(0)
    pts = torch.randint(0, 4, (2, 300, 3), generator=gen).float()
    seen = torch.rand(2, 300, generator=gen) < 0.4
    whole = []
    for i in range(2):
        lost, have = torch.nonzero(~seen[i]).flatten(), torch.nonzero(seen[i]).flatten()
        a, b = pts[i, lost].double(), pts[i, have].double()
        d = torch.addmm((b * b).sum(1).unsqueeze(0), a, b.T, alpha=-2)
        src = torch.arange(300)
        src[lost] = have[d.argmin(dim=1)]
        whole.append(src)
    monkeypatch.setattr(seg_points, "NEAREST_BLOCK", 7 * 16)
    monkeypatch.setattr(seg_points, "_SEEN_CHUNK", 16)
    assert torch.equal(seg_points.nearest_visible(pts, seen), torch.stack(whole))


@contextlib.contextmanager
def file_size_limit(nbytes):
    """Files this process writes may not grow past ``nbytes`` (EFBIG), as under `ulimit -f`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def _segment_args(cloud, ckpt, *extra):
    return ["segment", str(cloud), "--category", "chair", "--backbone", str(ckpt),
            "--projector", "pointclip", "--num-points", "256", "--device", "cpu", *extra]


@pytest.fixture
def no_clip(monkeypatch):
    """CLIP must not be loaded: the command is refused before."""
    import pointcalip.backbones

    def refuse(*args, **kwargs):
        raise AssertionError("CLIP was loaded before the bad option was refused")
    monkeypatch.setattr(pointcalip.backbones, "load_clip", refuse)


def test_segment_file_options_are_checked_before_clip(tmp_path, tiny_checkpoints, capsys, no_clip):
    cloud = tmp_path / "chair.npy"
    np.save(cloud, np.random.default_rng(0).normal(size=(300, 3)).astype(np.float32))
    ckpt = tiny_checkpoints["vit"]
    assert main(_segment_args(cloud, ckpt, "--parts", "seat", "seat")) == 2
    assert "--parts: part names must be distinct; repeated: ['seat']" in _the_error(
        capsys.readouterr().err)
    assert main(_segment_args(cloud, ckpt, "--parts", "seat", "leg",
                              "-o", str(tmp_path / "no" / "such" / "out.ply"))) == 2
    err = _the_error(capsys.readouterr().err)
    assert f"-o/--output {tmp_path}/no/such/out.ply: the folder {tmp_path}/no/such does not exist" in err
    assert main(_segment_args(cloud, ckpt, "--parts", "seat", "leg", "--png", str(tmp_path))) == 2
    assert f"--png {tmp_path} is a folder" in _the_error(capsys.readouterr().err)
    with pytest.raises(SystemExit) as exit_:
        main(_segment_args(cloud, ckpt, "--parts", "seat", "leg", "--num-points", "200001"))
    assert exit_.value.code == 2
    assert ("argument --num-points: must be an integer from 1 to 200,000 (the memory of a "
            "segmentation grows with it), got '200001'") in error_block(capsys.readouterr().err)


def test_a_failed_rerun_leaves_the_earlier_outputs_whole(tmp_path, tiny_checkpoints, capsys):
    """Before: a rerun under a file-size limit cut the earlier file short (and [Errno 27]
    named no path)."""
    cloud = tmp_path / "chair.npy"
    np.save(cloud, np.random.default_rng(0).normal(size=(300, 3)).astype(np.float32))
    ply, png = tmp_path / "parts.ply", tmp_path / "parts.png"
    args = _segment_args(cloud, tiny_checkpoints["vit"], "--parts", "seat", "leg", "-o", str(ply),
                         "--png", str(png))
    assert main(args) == 0
    before = ply.read_bytes(), png.read_bytes()
    capsys.readouterr()
    with file_size_limit(2000):
        code = main(args)
    assert code == 2
    err = _the_error(capsys.readouterr().err)
    assert f"cannot write {ply}: the file reached the largest size this process may write" in err
    assert "ulimit -f" in err
    assert (ply.read_bytes(), png.read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chair.npy", "parts.ply", "parts.png"]
    with file_size_limit(100):
        with pytest.raises(OSError, match=rf"cannot write {png}: the file reached"):
            from matplotlib.figure import Figure

            from pointcalip.core.atomic import save_figure
            save_figure(Figure(figsize=(4, 4)), png)
    assert png.read_bytes() == before[1]


def test_checkpoints_and_stores_name_the_path_on_efbig(tmp_path):
    """torch.save said `[enforce fail at inline_container.cc:672] unexpected pos`; the store
    `[Errno 27] File too large`."""
    import torch

    from pointcalip.fewshot.train import _save

    with file_size_limit(4096):
        with pytest.raises(OSError, match=rf"cannot write {tmp_path}/best.pt: the file reached"):
            _save({"model": torch.zeros(10_000)}, tmp_path / "best.pt")
    assert list(tmp_path.iterdir()) == []


def test_nearest_visible_by_kd_tree_agrees_where_the_nearest_is_unique(monkeypatch):
    import torch

    from pointcalip.segmentation import points as seg_points

    gen = torch.Generator().manual_seed(1)
    pts, seen = torch.randn(2, 500, 3, generator=gen), torch.rand(2, 500, generator=gen) < 0.5
    exact = seg_points.nearest_visible(pts, seen)
    monkeypatch.setattr(seg_points, "KD_TREE_PAIRS", 100)
    assert torch.equal(seg_points.nearest_visible(pts, seen), exact)


@pytest.mark.parametrize("results, says", [
    ({"command": "zeroshot", "tuning": "val"}, r"tuning is a str \('val'\), not a mapping"),
    ({"command": "benchmark", "datasets": {"modelnet40": [1, 2]}},
     r"datasets.modelnet40 is a list \('\[1, 2\]'\), not a mapping"),
    ({"command": "benchmark", "datasets": {"modelnet40": {"tuning": "x"}}},
     r"datasets.modelnet40.tuning is a str \('x'\), not a mapping"),
])
def test_tune_from_files_of_the_wrong_shape_name_the_key(tmp_path, results, says):
    """Before: AttributeError: 'str' object has no attribute 'get' (a traceback)."""
    from pointcalip.benchmark.table import source_test_rows

    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    with pytest.raises(ValueError, match=rf"^tune.from {path}: {says}"):
        source_test_rows(path, "modelnet40", None)


def test_a_deeply_nested_results_file_is_named(tmp_path):
    from pointcalip.report.results import read_results

    path = tmp_path / "results.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match=rf"cannot read results file {path}: its JSON is nested "
                                         r"too deeply"):
        read_results(path)


def test_config_messages_name_keys_users_can_set():
    from pointcalip.config import config_class, load_config
    from pointcalip.core.config_loader import ConfigError

    with pytest.raises(ConfigError) as err:
        load_config(config_class("benchmark"), ["openshape"], ["datasets.modelnet40.tune.from=5"])
    assert str(err.value) == ("config key datasets.modelnet40.tune.from must be a string or null, "
                              "got 5 (set it in the YAML file or with --set "
                              "datasets.modelnet40.tune.from=...)")
    with pytest.raises(ConfigError, match=r"tune.prompts must be a list of strings or lists of "
                                          r"strings, got 5"):
        load_config(config_class("segment"), ["shapenetpart"], ["tune.prompts=5"])


@pytest.mark.parametrize("value", [1e300, np.nan])
def test_objaverse_coordinates_that_break_float32_name_the_object(tmp_path, value):
    """Before: 'cloud 0 of the batch ... has non-finite coordinates' from the projector."""
    folder = write_objaverse_lvis(tmp_path)
    split = json.loads((folder / SPLIT_FILE).read_text())
    path = folder / "objaverse-processed" / split[3]["data_path"].split("/objaverse-processed/")[1]
    data = np.load(path, allow_pickle=True).item()
    data["xyz"] = data["xyz"].astype(np.float64)
    data["xyz"][5, 0] = value
    np.save(path, data, allow_pickle=True)
    ds = ObjaverseLVIS(folder, num_points=None)
    with pytest.raises(ValueError, match=rf"Objaverse-LVIS object {split[3]['uid']} \(.*"
                                         rf"{split[3]['uid']}.npy\) 'xyz' point 5 is NaN/inf "
                                         r"\(as float32\)"):
        ds.points([0, 1, 2, 3, 4])


def test_a_checkpoint_with_nan_weights_names_the_backbone(tmp_path, capsys):
    import torch

    from tiny_clip import tiny_vit_state_dict

    state = tiny_vit_state_dict()
    state["visual.transformer.resblocks.1.mlp.c_fc.weight"][3, :5] = float("nan")
    ckpt = tmp_path / "diverged.pt"
    torch.save(state, ckpt)
    cloud = tmp_path / "c.npy"
    np.save(cloud, np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32))
    assert main(["classify", str(cloud), "--classes", "chair", "lamp", "--backbone", str(ckpt),
                 "--device", "cpu"]) == 2
    err = _the_error(capsys.readouterr().err)
    assert (f"backbone {ckpt}: weight 'visual.transformer.resblocks.1.mlp.c_fc.weight' holds 5 "
            f"NaN/inf values of 16384; the checkpoint is damaged") in err


def test_empty_lists_and_unknown_home_folders_name_the_key(capsys):
    from pointcalip.config import config_class, load_config
    from pointcalip.core.config_loader import ConfigError

    with pytest.raises(ConfigError, match=r"^config key data.categories is empty: no shape to "
                                          r"segment; use null \(all 16\)"):
        load_config(config_class("segment"), ["shapenetpart"], ["data.categories=[]"])
    with pytest.raises(ConfigError, match=r"^config key benchmark.corruptions is empty: nothing "
                                          r"to evaluate; use null \(all 15\)"):
        load_config(config_class("benchmark"), ["modelnet40c"], ["benchmark.corruptions=[]"])
    with pytest.raises(ConfigError, match=r"^config key data.root '~nouser_i28/x': there is no "
                                          r"user 'nouser_i28' on this machine"):
        load_config(config_class("zeroshot"), ["modelnet40"], ["data.root=~nouser_i28/x"])
    with pytest.raises(SystemExit):
        main(["download", "modelnet40", "--root", "~nouser_i28/x"])
    assert ("argument --root: '~nouser_i28/x': there is no user 'nouser_i28' on this machine, "
            "so '~nouser_i28' names no home folder; write the full path") in error_block(capsys.readouterr().err)


@pytest.mark.parametrize("rows, says", [
    ("abc", r"'abc'"), ([[1, 2], [3]], r"'\[\[1, 2\], \[3\]\]'"), ([1, 2.5], r"'\[1, 2.5\]'"),
])
def test_tune_from_test_rows_that_are_not_rows(tmp_path, rows, says):
    """Before: `invalid literal for int()` and numpy's 'inhomogeneous shape'."""
    from types import SimpleNamespace

    from pointcalip.benchmark.table import source_test_rows

    path = tmp_path / "results.json"
    path.write_text(json.dumps({"command": "benchmark", "datasets": {"modelnet40": {
        "test_clouds": 10, "tuning": {"rule": "test_slice", "test_rows": rows,
                                      "test_ids": ["u1", "u2"]}}}}))
    test = SimpleNamespace(uids=[f"u{i}" for i in range(10)])
    with pytest.raises(ValueError, match=rf"^tune.from {path}: datasets.modelnet40.tuning."
                                         rf"test_rows must be a list of row numbers, got {says}"):
        source_test_rows(path, "modelnet40", test)


def test_an_h5_file_holding_no_clouds_is_named(tmp_path):
    """Before: `cannot reshape array of size 0 into shape (0,newaxis)`."""
    from pointcalip.datasets import build_dataset
    from synthetic_data import _write_h5, write_modelnet40

    folder = write_modelnet40(tmp_path, 1, 1, num_points=32, classes=["chair", "lamp"])
    empty = folder / "ply_data_test1.h5"
    _write_h5(empty, np.zeros((0, 32, 3), np.float32), np.zeros((0, 1), np.uint8), {})
    with pytest.raises(ValueError, match=rf"h5 file {empty} key 'data' holds 0 clouds of 32 points "
                                         r"\(shape \(0, 32, 3\)\); the file is empty or was cut short"):
        build_dataset("modelnet40", tmp_path, split="test", num_points=32)


def test_shapenetpart_part_ids_with_fractions_are_refused(tmp_path):
    """Before: pid 1.7 was silently read as part 1."""
    import h5py

    from pointcalip.datasets.shapenetpart import ShapeNetPart
    from synthetic_shapenetpart import write_shapenetpart

    root = write_shapenetpart(tmp_path, {"train": 2, "val": 2, "test": 4}, num_points=64,
                              categories=["chair"])
    path = root / "ply_data_test0.h5"
    with h5py.File(path, "r+") as h5:
        pid = h5["pid"][...].astype(np.float32)
        pid[2, 7] += 0.5
        del h5["pid"]
        h5["pid"] = pid
    with pytest.raises(ValueError, match=rf"h5 file {path} key 'pid' index \(2, 7\) is not an "
                                         r"integer: \d+\.5; the file is damaged"):
        ShapeNetPart(root, "test")
    with h5py.File(path, "r+") as h5:
        pid[2, 7] -= 0.5
        h5["pid"][...] = pid
    assert ShapeNetPart(root, "test").pid.dtype == np.int64


def test_outputs_are_checked_before_clip_runs(tmp_path, capsys, no_clip):
    from synthetic_shapenetpart import write_shapenetpart

    blocker = tmp_path / "a_file"
    blocker.write_text("")
    cloud = tmp_path / "c.npy"
    np.save(cloud, np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32))
    assert main(["explain", str(cloud), "--classes", "chair", "lamp", "--device", "cpu",
                 "-o", str(blocker / "x.png")]) == 2
    assert f"cannot write in {blocker}" in _the_error(capsys.readouterr().err)
    root = write_shapenetpart(tmp_path, {"train": 2, "val": 2, "test": 2}, num_points=64,
                              categories=["chair"])
    assert main(["segment", "--config", "shapenetpart", "--set", f"data.root={root}",
                 "--set", "data.categories=[chair]", "--set", f"cache_dir={tmp_path / 'cache'}",
                 "--set", f"output_dir={blocker / 'out'}", "--set", "device=cpu",
                 "--set", "data.num_points=64"]) == 2
    err = _the_error(capsys.readouterr().err)
    assert f"cannot write in {blocker / 'out'}" in err and "--set output_dir=DIR" in err


def test_extract_under_a_file_size_limit_names_the_file(tmp_path):
    """Before: `[Errno 27] File too large`, no path."""
    from fakes import FakeBackbone, FakeDataset, FakeProjector

    from pointcalip.extract import extract
    from pointcalip.store import FeatureStore

    ds = FakeDataset()
    store = FeatureStore(tmp_path).open(ds, FakeProjector(), FakeBackbone())
    with file_size_limit(200):
        with pytest.raises(OSError, match=r"cannot write .*/writing/.*\.npy: the file reached the "
                                          r"largest size this process may write") as err:
            extract(store, ds, None, FakeProjector(), FakeBackbone(), batch_size=4)
    assert err.value.errno == errno.EFBIG
    assert not list((store.path / "writing").iterdir())


def test_a_deeply_nested_split_file_is_named(tmp_path):
    folder = write_objaverse_lvis(tmp_path)
    (folder / SPLIT_FILE).write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match=r"lvis.json is nested too deeply"):
        ObjaverseLVIS(folder)
