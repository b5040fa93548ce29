"""ModelNet40-C: reading the published .npy layout, its settings, and the errors for missing or
damaged files (shape, dtype, NaN, pickled objects); `pointcalip download modelnet40c --from`."""
import numpy as np
import pytest
import torch

from pointcalip.cli import main
from pointcalip.datasets import build_dataset
from pointcalip.datasets.modelnet40c import CORRUPTIONS, ModelNet40C, expected_files, validate_folder
from synthetic_modelnet40c import write_modelnet40c

LABELS = [0, 3, 3, 7, 39, 12]


@pytest.fixture
def folder(tmp_path):
    return write_modelnet40c(tmp_path / "src", LABELS)


def test_reads_each_corruption_and_severity_as_written(folder):
    ds = build_dataset("modelnet40c", folder.parent, "test", corruption="shear", severity=4,
                       num_points=8)
    want = np.load(folder / "data_shear_4.npy")
    assert len(ds) == 6 and ds.labels.tolist() == LABELS and ds.num_classes == 40
    assert torch.equal(ds.points(), torch.from_numpy(want[:, :8]))
    assert ds[4][1] == 39 and ds.classnames[39] == "xbox"
    assert ds.settings["corruption"] == "shear" and ds.settings["severity"] == 4
    assert ds.name == "modelnet40c/shear_4" and ds.split == "test"
    original = ModelNet40C(folder, corruption="original", num_points=None)
    assert torch.equal(original.points(), torch.from_numpy(np.load(folder / "data_original.npy")))
    assert original.settings["files"] != ds.settings["files"]          # distinct store keys
    assert len(expected_files()) == 15 * 5 + 2 and len(CORRUPTIONS) == 15


def test_sets_are_read_when_served_and_let_go_when_closed(folder):
    """Opening a set checks its array but keeps no clouds (`pointcalip extract` opens all 76);
    serving reads them, `close` lets them go, and a file changed in between is refused."""
    ds = ModelNet40C(folder, corruption="shear", severity=4)
    assert ds._data is None and ds.labels.tolist() == LABELS
    want = torch.from_numpy(np.load(folder / "data_shear_4.npy"))
    assert torch.equal(ds.points([2, 0]), want[[2, 0]]) and ds._data is not None
    ds.close()
    assert ds._data is None and torch.equal(ds.points(), want)
    ds.close()
    np.save(folder / "data_shear_4.npy", want.numpy()[::-1].copy())
    with pytest.raises(ValueError, match=r"data_shear_4.npy changed \(or went\) after "
                                         r"modelnet40c/shear_4 was opened"):
        ds.points()


@pytest.mark.parametrize("kwargs, match", [
    ({"corruption": "fog", "severity": 1}, "unknown ModelNet40-C corruption 'fog'"),
    ({"corruption": "lidar", "severity": 6}, r"severity must be one of \[1, 2, 3, 4, 5\], got 6"),
    ({"corruption": "lidar", "severity": None}, "severity must be one of"),
    ({"corruption": "original", "severity": 2}, "'original' takes no severity"),
    ({"corruption": "lidar", "severity": 1, "split": "train"}, "only a test split .* clean ModelNet40"),
])
def test_bad_settings_are_named(folder, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ModelNet40C(folder, **kwargs)


def test_damaged_files_are_named(folder):
    np.save(folder / "data_gaussian_2.npy", np.zeros((6, 16, 2), np.float32))
    with pytest.raises(ValueError, match=r"data_gaussian_2.npy has shape \(6, 16, 2\) .* expected floating"):
        ModelNet40C(folder, corruption="gaussian", severity=2)
    np.save(folder / "data_gaussian_3.npy", np.zeros((6, 16, 3), np.int32))
    with pytest.raises(ValueError, match=r"data_gaussian_3.npy .* dtype int32"):
        ModelNet40C(folder, corruption="gaussian", severity=3)
    bad = np.zeros((6, 16, 3), np.float32)
    bad[5, 3, 1] = np.nan
    np.save(folder / "data_gaussian_4.npy", bad)
    with pytest.raises(ValueError, match=r"data_gaussian_4.npy cloud index 5 contains NaN"):
        ModelNet40C(folder, corruption="gaussian", severity=4)
    np.save(folder / "data_gaussian_5.npy", np.zeros((5, 16, 3), np.float32))
    with pytest.raises(ValueError, match=r"holds 5 clouds but label.npy has 6"):
        ModelNet40C(folder, corruption="gaussian", severity=5)
    np.save(folder / "data_impulse_1.npy", np.array([{"xyz": 1}, None], dtype=object))
    with pytest.raises(ValueError, match=r"data_impulse_1.npy holds Python objects .* refused"):
        ModelNet40C(folder, corruption="impulse", severity=1)
    np.save(folder / "label.npy", np.array([0, 1, 2, 3, 40, 5]))
    with pytest.raises(ValueError, match=r"label.npy label index 4 is 40, outside the 40"):
        ModelNet40C(folder, corruption="lidar", severity=1)
    np.save(folder / "label.npy", np.array(LABELS))
    (folder / "data_lidar_1.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"data_lidar_1.npy is missing"):
        ModelNet40C(folder, corruption="lidar", severity=1)


def test_validate_names_missing_files(folder):
    validate_folder(folder)
    (folder / "data_uniform_5.npy").unlink()
    (folder / "label.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"lacks 2 of its 77 files: data_uniform_5.npy, label.npy"):
        validate_folder(folder)


def test_download_from_a_folder_checks_the_layout(folder, tmp_path, capsys):
    root = tmp_path / "data"
    assert main(["download", "modelnet40c", "--from", str(folder), "--root", str(root)]) == 0
    assert capsys.readouterr().out.strip() == str(root / "modelnet40_c")
    assert sorted(p.name for p in (root / "modelnet40_c").iterdir()) == sorted(expected_files())
    broken = write_modelnet40c(tmp_path / "broken", LABELS, corruptions=CORRUPTIONS[:-1])
    assert main(["download", "modelnet40c", "--from", str(broken), "--root", str(tmp_path / "d2")]) == 2
    err = capsys.readouterr().err
    assert "lacks 5 of its 77 files: data_upsampling_1.npy" in err and "Traceback" not in err
    assert main(["download", "modelnet40c", "--root", str(tmp_path / "d3")]) == 2
    assert "pointcalip download modelnet40c --from PATH" in capsys.readouterr().err
