"""Objaverse-LVIS (OpenShape's split): the published layout, OpenShape's label order and point
handling, the up axis against the shipped projectors, the allow-list loader (a pickle that would
run code is refused unexecuted), errors naming the file / uid / key, class names as data, and
`pointcalip download objaverse_lvis --from`."""
import importlib.util
import io
import json
import os
import pickle
import shutil
from collections import OrderedDict

import numpy as np
import pytest
import torch
import yaml

from pointcalip.cli import main
from pointcalip.datasets import build_dataset, dataset_folder
from pointcalip.datasets.catalog import DATASETS
from pointcalip.datasets.objaverse_lvis import (SPLIT_FILE, ObjaverseLVIS, class_names, load_npy_dict,
                                                prompt_name, release_categories, validate_folder)
from pointcalip.projection import PointCLIPProjector, RealisticProjector
from pointcalip.prompts import configs_root
from synthetic_objaverse import write_objaverse_lvis
from messages import error_block

CODE_POINT_ORDER = ["Bible", "CD_player", "aerosol_can", "bow_(weapon)"]


@pytest.fixture
def folder(tmp_path):
    return write_objaverse_lvis(tmp_path / "src")


def entries(folder):
    return json.loads((folder / SPLIT_FILE).read_text())


def object_file(folder, i):
    entry = entries(folder)[i]
    return folder / entry["data_path"][entry["data_path"].index("objaverse-processed"):]


def stored_xyz(folder, i):
    return np.load(object_file(folder, i), allow_pickle=True).item()["xyz"]   # our own test file


def test_reads_the_published_layout_in_openshapes_label_order(folder):
    ds = build_dataset("objaverse_lvis", folder.parent, "test", num_points=None, normalize=False)
    split = entries(folder)
    openshape_order = sorted(np.unique([e["category"] for e in split]))     # src/data.py's rule
    assert ds.categories == CODE_POINT_ORDER == list(openshape_order)
    assert ds.classnames == ["Bible", "CD player", "aerosol can", "bow (weapon)"]
    assert ds.labels.tolist() == [openshape_order.index(e["category"]) for e in split] \
        == [3, 3, 1, 1, 2, 2, 0, 0]
    assert len(ds) == 8 and ds.num_classes == 4 and ds.uids == [e["uid"] for e in split]
    assert torch.equal(ds.points([2, 7]), torch.from_numpy(np.stack([stored_xyz(folder, 2),
                                                                      stored_xyz(folder, 7)])))
    cloud, label = ds[-1]
    assert torch.equal(cloud, torch.from_numpy(stored_xyz(folder, 7))) and label == 0
    first = ObjaverseLVIS(folder, num_points=16, normalize=False)
    assert torch.equal(first.points([4])[0], torch.from_numpy(stored_xyz(folder, 4)[:16]))
    batches = list(first.batches(batch_size=3))
    assert [b[1].tolist() for b in batches] == [[3, 3, 1], [1, 2, 2], [0, 0]]
    assert batches[1][0].shape == (3, 16, 3)
    assert DATASETS["objaverse_lvis"].splits == ("test",) and DATASETS["objaverse_lvis"].classes == 1156


def test_normalised_as_openshape_after_sampling(folder):
    """OpenShape's normalize_pc: minus the mean, divided by the largest norm."""
    pts = ObjaverseLVIS(folder, num_points=16).points([0, 5])
    for got, i in zip(pts, (0, 5)):
        raw = stored_xyz(folder, i)[:16].astype(np.float64)
        raw -= raw.mean(axis=0)
        np.testing.assert_allclose(got.numpy(), raw / np.linalg.norm(raw, axis=1).max(), atol=1e-6)


def side_view_shapes(points, projector, side_views):
    """(rows, cols) extent of the occupied pixels of each side view of one cloud [N, 3]."""
    maps = projector.project(points[None])[0]
    out = []
    for v in side_views:
        occupied = maps[v] != maps[v][0, 0]
        rows, cols = occupied.any(1).nonzero(), occupied.any(0).nonzero()
        out.append((int(rows.max() - rows.min()), int(cols.max() - cols.min())))
    return out


def test_up_axis_y_is_where_modelnet40_and_the_projectors_have_it(folder):
    """The objects are y-up boxes three times taller than wide. Served with up_axis y (the
    default) they stand along y, ModelNet40's up axis, and every side view of both shipped
    projectors shows them upright (taller than wide); OpenShape's swap lays them along z."""
    y_up = ObjaverseLVIS(folder, num_points=None)
    z_up = ObjaverseLVIS(folder, num_points=None, up_axis="Z")
    assert y_up.up_axis == "y" and z_up.up_axis == "z"
    a, b = y_up.points([1]), z_up.points([1])
    assert torch.equal(b, a[..., [0, 2, 1]])                                # OpenShape's swap
    extent = lambda p: (p.amax(dim=1) - p.amin(dim=1))[0]
    assert int(extent(a).argmax()) == 1 and int(extent(b).argmax()) == 2
    for projector, sides in ((PointCLIPProjector(), range(4)), (RealisticProjector(), range(8))):
        assert all(r > 1.8 * c for r, c in side_view_shapes(a[0], projector, sides))
        assert not any(r > 1.8 * c for r, c in side_view_shapes(b[0], projector, sides))
    assert y_up.settings["up_axis"] == "y" and y_up.settings != z_up.settings  # distinct store keys
    with pytest.raises(ValueError, match=r"up_axis must be one of \['y', 'z'\], got 'x'"):
        ObjaverseLVIS(folder, up_axis="x")



def test_up_axis_is_a_data_setting_of_the_config(folder):
    """``data.up_axis`` reaches the dataset class (the store key follows); a dataset without
    up axes to choose from refuses it, naming the key and the datasets that have one."""
    from pointcalip.config import ConfigError, DataConfig
    from pointcalip.data import build_split
    for axis in ("y", "z"):
        data = DataConfig(name="objaverse_lvis", root=str(folder), num_points=64, up_axis=axis)
        data.validate()
        assert build_split(data, folder, "test").settings["up_axis"] == axis
    with pytest.raises(ConfigError, match=r"up_axis.*must be one of y, z for objaverse_lvis, got 'x'"):
        DataConfig(name="objaverse_lvis", up_axis="x").validate()
    with pytest.raises(ConfigError, match=r"up_axis.*applies to objaverse_lvis only; modelnet40"):
        DataConfig(name="modelnet40", up_axis="z").validate()

class RunsCode:
    """Pickles as a call of os.system: the attack an object file could carry."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _Global:
    """Pickles as the global ``module.name`` called with ``args``."""

    def __init__(self, target, args):
        self.target, self.args = target, args

    def __reduce__(self):
        return self.target, self.args


def test_the_allow_list_is_exactly_numpys_array_names_and_refuses_eval_getattr_popen(tmp_path):
    """The allow-list is pinned: widening it (e.g. adding ``builtins.eval``) fails here."""
    import builtins
    import subprocess

    from pointcalip.datasets import npy_pickle

    assert set(npy_pickle.ALLOWED_GLOBALS) == {
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")}
    marker = tmp_path / "ran"
    for target, args in ((builtins.eval, (f"open({str(marker)!r}, 'w')",)),
                         (builtins.getattr, ("text", "upper")),
                         (subprocess.Popen, (["touch", str(marker)],))):
        path = tmp_path / f"{target.__name__}.npy"
        np.save(path, {"xyz": np.zeros((4, 3), np.float32), "x": _Global(target, args)},
                allow_pickle=True)
        with pytest.raises(ValueError, match=rf"asks to build {target.__module__}\.{target.__name__}; refused"):
            load_npy_dict(path)
    assert not marker.exists()


def test_the_loader_refuses_any_global_but_numpys_without_running_it(folder, tmp_path):
    marker = tmp_path / "ran"
    bad = object_file(folder, 3)
    np.save(bad, {"xyz": np.zeros((64, 3), np.float32), "x": RunsCode(marker)}, allow_pickle=True)
    with pytest.raises(ValueError, match=rf"{bad.name} asks to build {os.system.__module__}.system; refused"):
        load_npy_dict(bad)
    ds = ObjaverseLVIS(folder, num_points=None)
    uid = ds.uids[3]
    with pytest.raises(ValueError, match=rf"object {uid}.*{bad.name}.* asks to build .*system; refused"):
        ds.points([3])
    np.save(bad, {"xyz": np.zeros((64, 3), np.float32), "meta": OrderedDict(a=np.zeros(2))},
            allow_pickle=True)
    with pytest.raises(ValueError, match=r"asks to build collections.OrderedDict; refused"):
        load_npy_dict(bad)
    assert not marker.exists()                      # nothing of either file was executed
    np.save(bad, {"xyz": np.zeros((64, 3), np.float32)}, allow_pickle=True)
    assert ds.points([3]).shape == (1, 64, 3)       # a plain dict of arrays is read


def test_numpy1_files_read_as_numpy2_ones(folder):
    """OpenShape wrote its files with numpy 1 (pickle protocol 3, ``numpy.core.multiarray``)."""
    path = object_file(folder, 0)
    want = np.load(path, allow_pickle=True).item()
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False, "shape": ()})
    body = pickle.dumps(np.array(want, dtype=object), protocol=3)
    assert b"cnumpy._core.multiarray\n" in body
    path.write_bytes(buf.getvalue() + body.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n"))
    got = load_npy_dict(path)
    assert got.keys() == want.keys() and got["text"] == want["text"] and got["id"] == want["id"]
    np.testing.assert_array_equal(got["xyz"], want["xyz"])
    np.testing.assert_array_equal(got["text_feat"][0]["original"], want["text_feat"][0]["original"])


def test_damaged_objects_are_named_with_their_uid(folder):
    ds = ObjaverseLVIS(folder, num_points=None)
    uid, path = ds.uids[5], object_file(folder, 5)
    cases = [
        ({"xyz": np.full((64, 3), np.nan, np.float32)}, r"'xyz' point 0 is NaN/inf"),
        ({"xyz": np.zeros((64, 2), np.float32)}, r"'xyz' is a float32 array of shape \(64, 2\)"),
        ({"xyz": ["a", "b"]}, r"'xyz' is a list; expected numbers"),
        ({"rgb": np.zeros((64, 3))}, r"has no 'xyz' key \(keys: \['rgb'\]\)"),
    ]
    for content, match in cases:
        np.save(path, content, allow_pickle=True)
        with pytest.raises(ValueError, match=rf"object {uid}.*{path.name}.*{match}"):
            ds.points([5])
    np.save(path, np.zeros((64, 3), np.float32))
    with pytest.raises(ValueError, match=r"holds a float32 array of shape \(64, 3\), not a pickled dict"):
        ds.points([5])
    np.save(path, {"xyz": np.zeros((64, 3), np.float32)}, allow_pickle=True)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(ValueError, match=rf"object {uid}.*{path.name}.* truncated or corrupt"):
        ds.points([5])
    path.write_bytes(b"not a numpy file at all")
    with pytest.raises(ValueError, match=rf"{path.name} is not a readable .npy file"):
        ds.points([5])
    with pytest.raises(ValueError, match=rf"object {ds.uids[0]}.* has 64 points, fewer than num_points=100"):
        ObjaverseLVIS(folder, num_points=100).points([0])
    path.unlink()
    with pytest.raises(FileNotFoundError, match=rf"1 of the 8 Objaverse-LVIS objects .* missing: {uid} \("):
        ObjaverseLVIS(folder)


def test_bad_splits_and_options_are_named(folder, tmp_path):
    split = folder / SPLIT_FILE
    good = entries(folder)
    with pytest.raises(ValueError, match=r"has only a test split \(got 'train'\)"):
        ObjaverseLVIS(folder, split="train")
    with pytest.raises(ValueError, match=r"category 'aerosol_can', which is not among the 2 classes"):
        ObjaverseLVIS(folder, categories=["bow_(weapon)", "CD_player"])
    broken = [dict(good[0]), *good[1:]]
    del broken[0]["data_path"]
    split.write_text(json.dumps(broken))
    with pytest.raises(ValueError, match=rf"lvis.json entry 0 \(uid '{good[0]['uid']}'\) lacks data_path"):
        ObjaverseLVIS(folder)
    split.write_text(json.dumps({"uid": "x"}))
    with pytest.raises(ValueError, match=r"must hold a non-empty list of objects"):
        ObjaverseLVIS(folder)
    split.write_text("[{")
    with pytest.raises(ValueError, match=r"lvis.json is not valid JSON"):
        ObjaverseLVIS(folder)
    split.unlink()
    with pytest.raises(FileNotFoundError, match=r"split .*meta_data/split/lvis.json is missing; .*--from"):
        ObjaverseLVIS(folder)


def test_objects_kept_apart_from_meta_data_are_read_where_written(folder, tmp_path):
    """OpenShape's own setup: meta_data in one place, objects under an absolute data path."""
    elsewhere = tmp_path / "mnt"
    shutil.move(str(folder / "objaverse-processed"), str(elsewhere / "objaverse-processed"))
    split = [{**e, "data_path": str(elsewhere) + e["data_path"][len("/mnt/data"):]} for e in entries(folder)]
    (folder / SPLIT_FILE).write_text(json.dumps(split))
    ds = ObjaverseLVIS(folder, num_points=None, normalize=False)
    assert torch.equal(ds.points([0])[0], torch.from_numpy(
        np.load(split[0]["data_path"], allow_pickle=True).item()["xyz"]))


def test_class_names_are_data_with_a_rule_for_the_rest(tmp_path, capsys):
    assert prompt_name("bow_(weapon)") == "bow (weapon)" and prompt_name("CD_player") == "CD player"
    assert prompt_name("table-tennis_table") == "table-tennis table"
    assert class_names(["bow_(weapon)", "Bible"], {"Bible": "holy bible"}) == ["bow (weapon)", "holy bible"]
    with pytest.raises(ValueError, match=r"'tv set' and 'TV set' are the same class to CLIP"):
        class_names(["tv set", "TV_set"], {})
    shipped = yaml.safe_load((configs_root() / "data/objaverse_lvis_names.yaml").read_text())
    assert isinstance(shipped["names"], dict)

    spec = importlib.util.spec_from_file_location(
        "make_lvis_names", configs_root().parent / "scripts" / "make_lvis_names.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    folder = write_objaverse_lvis(tmp_path, per_class=1)
    out = tmp_path / "names.yaml"
    out.write_text("# my header\nnames: {Bible: holy bible}\n")
    assert script.main([str(folder / SPLIT_FILE), "-o", str(out)]) == 0
    assert out.read_text().startswith("# my header\n")
    assert yaml.safe_load(out.read_text())["names"] == {
        "Bible": "holy bible", "CD_player": "CD player", "aerosol_can": "aerosol can",
        "bow_(weapon)": "bow (weapon)"}
    assert ObjaverseLVIS(folder, names=yaml.safe_load(out.read_text())["names"]).classnames[0] == "holy bible"
    assert script.main([str(tmp_path / "none.json"), "-o", str(out)]) == 2
    assert "none.json" in capsys.readouterr().err


def test_the_shipped_names_table_is_the_releases_1156_categories_in_label_order():
    categories = release_categories()
    assert len(categories) == DATASETS["objaverse_lvis"].classes == 1156
    assert categories == sorted(set(categories))                  # OpenShape's label order
    assert categories[:3] == ["Band_Aid", "Bible", "CD_player"] and categories[-1] == "zucchini"
    names = class_names(categories)                               # distinct prompts (checked)
    assert names[categories.index("bow_(weapon)")] == "bow (weapon)"
    assert names[categories.index("monitor_(computer_equipment) computer_monitor")] == "computer monitor"
    edited = [c for c, n in zip(categories, names) if n != prompt_name(c)]
    assert edited == ["monitor_(computer_equipment) computer_monitor"]


def test_the_data_statement_names_how_the_categories_differ_from_the_release(tmp_path):
    from pointcalip.datasets.release import describe

    folder = write_objaverse_lvis(tmp_path, per_class=1)
    statement = describe("objaverse_lvis", {"test": ObjaverseLVIS(folder)})
    assert not statement.complete
    assert statement.differences == [
        "the objects cover 4 of the 1,156 LVIS categories (accuracy is over the 4 classes present)"]
    foreign = write_objaverse_lvis(tmp_path / "b", categories=("Bible", "spaceship", "warp_core"),
                                   per_class=1)
    assert describe("objaverse_lvis", {"test": ObjaverseLVIS(foreign)}).differences == [
        "the objects cover 1 of the 1,156 LVIS categories (accuracy is over the 3 classes present)",
        "not LVIS categories (2 categories): 'spaceship', 'warp_core'"]


def test_download_from_a_folder_copies_the_split_and_its_objects_only(folder, tmp_path, capsys):
    extra = folder / "objaverse-processed/merged_for_training_final/Objaverse/000-009/not_lvis.npy"
    extra.parent.mkdir(parents=True)
    np.save(extra, {"xyz": np.zeros((4, 3), np.float32)}, allow_pickle=True)
    root = tmp_path / "data"
    assert main(["download", "objaverse_lvis", "--from", str(tmp_path / "src"), "--root", str(root)]) == 0
    installed = root / "objaverse_lvis"
    assert capsys.readouterr().out.strip() == str(installed) == str(dataset_folder("objaverse_lvis", root))
    copied = sorted(p.relative_to(installed).as_posix() for p in installed.rglob("*.npy"))
    assert len(copied) == 8 and not any("not_lvis" in p for p in copied)
    validate_folder(installed)
    ds = build_dataset("objaverse_lvis", root, num_points=None, normalize=False)
    assert torch.equal(ds.points([6])[0], torch.from_numpy(stored_xyz(folder, 6)))

    archive = shutil.make_archive(str(tmp_path / "lvis"), "zip", root_dir=folder.parent, base_dir=folder.name)
    assert main(["download", "objaverse_lvis", "--from", archive, "--root", str(tmp_path / "z")]) == 0
    assert len(ObjaverseLVIS(tmp_path / "z")) == 8
    capsys.readouterr()

    object_file(folder, 2).unlink()
    assert main(["download", "objaverse_lvis", "--from", str(folder), "--root", str(tmp_path / "d2")]) == 2
    err = error_block(capsys.readouterr().err)
    assert f"1 of the 8 objects listed in {SPLIT_FILE} are missing: {entries(folder)[2]['uid']}" in err
    assert "Traceback" not in err and not (tmp_path / "d2" / "objaverse_lvis").exists()
    assert main(["download", "objaverse_lvis", "--root", str(tmp_path / "d3")]) == 2
    err = error_block(capsys.readouterr().err)
    assert "get OpenShape's meta_data.zip and Objaverse/000-*.tar.gz from https://huggingface.co/datasets/OpenShape/" in err
    assert "pointcalip download objaverse_lvis --from PATH" in err
