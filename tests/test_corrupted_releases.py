"""ModelNet-C and ScanObjectNN-C read as published (one h5 per set, point counts differing per
file, float64 sets), enumerated with ModelNet40-C's sets through one interface
(`pointcalip.benchmark.sets.robustness_sets`), their damage named, and installed with
`pointcalip download NAME --from FOLDER`."""
import h5py
import numpy as np
import pytest
import torch

from pointcalip.benchmark.sets import clean_variant, robustness_sets
from pointcalip.cli import main
from pointcalip.datasets.modelnet_c import ModelNetC, validate_folder as validate_modelnet_c
from pointcalip.datasets.scanobjectnn_c import ScanObjectNNC
from synthetic_corrupted_h5 import write_modelnet_c, write_scanobjectnn_c
from synthetic_modelnet40c import write_modelnet40c

LABELS = [0, 3, 3, 7, 39, 12]
SONN_LABELS = [0, 1, 8, 14, 14]

# points per cloud of each ModelNet-C file (jiawei-ren/ModelNet-C corrupt_utils.py, levels 0..4)
MODELNET_C_POINTS = {"scale": [1024] * 5, "jitter": [1024] * 5, "rotate": [1024] * 5,
                     "dropout_global": [768, 640, 512, 384, 256],
                     "dropout_local": [924, 824, 724, 624, 524],
                     "add_global": [1034, 1044, 1054, 1064, 1074],
                     "add_local": [1124, 1224, 1324, 1424, 1524]}
# ModelNet40-C (jiachens/ModelNet40-C generate_c.py, severities 1..5; measured by
# scripts/measure_modelnet40c_points.py): the sets whose count is not 1,024
MODELNET40C_POINTS = {"background": [1046, 1049, 1053, 1058, 1075],
                      "upsampling": [1228, 1280, 1365, 1536, 2048],
                      "cutout": [964, 934, 874, 814, 724], "density": [949, 874, 799, 724, 649],
                      "lidar": [768] * 5}


@pytest.fixture(scope="module")
def mnc(tmp_path_factory):
    return write_modelnet_c(tmp_path_factory.mktemp("mnc"), LABELS)


@pytest.fixture(scope="module")
def sonn(tmp_path_factory):
    return write_scanobjectnn_c(tmp_path_factory.mktemp("sonn"), SONN_LABELS)


def test_modelnet40c_sets_serve_every_stored_point(tmp_path):
    folder = write_modelnet40c(tmp_path, LABELS)
    sets = robustness_sets("modelnet40c", folder)
    assert [s.name for s in sets[:3]] == ["original", "background_1", "background_2"] and len(sets) == 76
    assert sets[0].is_clean and sets[0].corruption is None and sets[0].severity is None
    for s in sets:
        data = s.open()
        want = MODELNET40C_POINTS.get(s.corruption, [1024] * 5)[s.severity - 1] if s.severity else 1024
        stored = np.load(folder / f"data_{s.name}.npy")
        assert stored.shape[1] == data.stored_points == want, s.name
        assert torch.equal(data.points(), torch.from_numpy(stored)), s.name
    background = robustness_sets("modelnet40c", folder, corruptions=["background"], severities=[5])
    assert [s.name for s in background] == ["original", "background_5"]
    clouds = background[1].open().points()
    assert not torch.allclose(clouds[:, 1024:], clouds[:, :51])       # the appended noise is there


def test_modelnet_c_sets_and_point_counts(mnc):
    sets = robustness_sets("modelnet_c", mnc)
    assert len(sets) == 36 and sets[0].name == "clean" and sets[1].name == "scale_0"
    assert sets[-1].name == "add_local_4" and sets[-1].severity == 4
    for s in sets[1:]:
        data = s.open()
        assert data.stored_points == MODELNET_C_POINTS[s.corruption][s.severity], s.name
        with h5py.File(mnc / f"{s.name}.h5", "r") as f:
            want = torch.from_numpy(np.asarray(f["data"], dtype=np.float32))
        assert torch.equal(data.points(), want) and data.points().dtype == torch.float32
        assert data.labels.tolist() == LABELS and data.classnames[39] == "xbox"
    data = ModelNetC(mnc.parent, corruption="jitter", severity=2, num_points=16)
    assert data.points().shape == (6, 16, 3) and data.name == "modelnet_c/jitter_2"
    assert data.settings["stored_points"] == 1024 and data.settings["severity"] == 2
    assert ModelNetC(mnc, "test", "add_local", 1).settings["files"] != \
        ModelNetC(mnc, "test", "add_local", 2).settings["files"]


def test_scanobjectnn_c_variants_and_optional_clean(sonn, tmp_path):
    sets = robustness_sets("scanobjectnn_c", sonn, variant="PB_T50_RS")
    assert len(sets) == 35 and sets[0].name == "scale_0" and {s.variant for s in sets} == {"hardest"}
    data = [s for s in sets if s.name == "dropout_local_3"][0].open()
    assert data.stored_points == 624 and data.name == "scanobjectnn_c/hardest/dropout_local_3"
    radius = data.points().norm(dim=2).amax(dim=1)
    assert torch.allclose(radius, torch.ones(5)) and data.labels.tolist() == SONN_LABELS
    raw = ScanObjectNNC(sonn, "obj_bg", corruption="scale", severity=0, normalize=False)
    assert raw.points().norm(dim=2).amax() > 2            # the scans as stored (scaled by 3)
    assert clean_variant("scanobjectnn_c", "obj_bg") == "OBJ_BG"
    with_clean = write_scanobjectnn_c(tmp_path, SONN_LABELS, variants=("obj_only",), with_clean=True)
    sets = robustness_sets("scanobjectnn_c", with_clean, variant="obj_only")
    assert len(sets) == 36 and sets[0].is_clean and sets[0].open().stored_points == 1024
    with pytest.raises(ValueError, match="scanobjectnn_c needs a variant: one of obj_bg, obj_only, hardest"):
        robustness_sets("scanobjectnn_c", sonn)
    with pytest.raises(ValueError, match="unknown scanobjectnn_c variant 'nobg'"):
        robustness_sets("scanobjectnn_c", sonn, variant="nobg")
    with pytest.raises(ValueError, match=r"modelnet_c severities \[5\] do not exist; it has \[0, 1, 2, 3, 4\]"):
        robustness_sets("modelnet_c", sonn, severities=[5])


def _rewrite(path, **keys):
    with h5py.File(path, "w") as f:
        for k, v in keys.items():
            f.create_dataset(k, data=v)


def test_damaged_files_are_named(tmp_path):
    folder = write_modelnet_c(tmp_path, LABELS)
    good = np.zeros((6, 10, 3), np.float32)
    lab = np.array(LABELS)[:, None]
    cases = [
        ("jitter_1.h5", {"data": good}, r"jitter_1.h5 has no key 'label'"),
        ("jitter_2.h5", {"data": np.zeros((6, 10, 2), np.float32), "label": lab},
         r"jitter_2.h5 key 'data' has shape \(6, 10, 2\)"),
        ("jitter_3.h5", {"data": np.zeros((6, 10, 3), np.int16), "label": lab},
         r"jitter_3.h5 key 'data' has dtype int16; expected floating"),
        ("jitter_4.h5", {"data": good, "label": np.array([0, 1, 2, 3, 40, 5])},
         r"jitter_4.h5 key 'label' index 4 has label 40, outside the 40 classes"),
        ("rotate_0.h5", {"data": good, "label": lab[:5]}, r"rotate_0.h5 key 'label' has shape \(5, 1\)"),
    ]
    for name, keys, match in cases:
        _rewrite(folder / name, **keys)
        c, s = name[:-3].rsplit("_", 1)
        with pytest.raises((ValueError, KeyError), match=match):
            ModelNetC(folder, corruption=c, severity=int(s))
    bad = good.copy()
    bad[3, 2, 0] = np.inf
    _rewrite(folder / "rotate_1.h5", data=bad, label=lab)
    with pytest.raises(ValueError, match=r"rotate_1.h5 key 'data' cloud index 3 contains NaN/inf"):
        ModelNetC(folder, corruption="rotate", severity=1)
    (folder / "rotate_2.h5").unlink()
    with pytest.raises(FileNotFoundError, match=r"rotate_2.h5 is missing"):
        ModelNetC(folder, corruption="rotate", severity=2)
    with pytest.raises(FileNotFoundError, match=r"lacks 1 of its 36 files: rotate_2.h5"):
        validate_modelnet_c(folder)
    (folder / "shape_names.txt").write_text("a\nb\n")
    with pytest.raises(ValueError, match=r"shape_names.txt names 2 classes; this release has 40"):
        ModelNetC(folder, corruption="clean")
    with pytest.raises(ValueError, match=r"unknown ModelNet-C corruption 'fog'"):
        ModelNetC(folder, corruption="fog", severity=1)
    with pytest.raises(ValueError, match=r"severity must be one of \[0, 1, 2, 3, 4\], got 5"):
        ModelNetC(folder, corruption="jitter", severity=5)


def test_download_from_folders_checks_the_layout(mnc, sonn, tmp_path, capsys):
    root = tmp_path / "data"
    assert main(["download", "modelnet_c", "--from", str(mnc.parent), "--root", str(root)]) == 0
    assert capsys.readouterr().out.strip() == str(root / "modelnet_c")
    assert len(list((root / "modelnet_c").glob("*.h5"))) == 36
    assert main(["download", "scanobjectnn_c", "--from", str(sonn), "--root", str(root)]) == 0
    assert capsys.readouterr().out.strip() == str(root / "sonn_c")
    assert len(robustness_sets("scanobjectnn_c", root, variant="obj_bg")) == 35
    broken = write_modelnet_c(tmp_path / "broken", LABELS)
    (broken / "add_local_3.h5").unlink()
    assert main(["download", "modelnet_c", "--from", str(broken), "--root", str(tmp_path / "d2")]) == 2
    err = capsys.readouterr().err
    assert "lacks 1 of its 36 files: add_local_3.h5" in err and "Traceback" not in err
    assert main(["download", "scanobjectnn_c", "--root", str(tmp_path / "d3")]) == 2
    err = capsys.readouterr().err
    assert "pointcalip download scanobjectnn_c --from PATH" in err and "Point-PRC" in err


def test_benchmark_configs_of_the_three_releases():
    from pointcalip.benchmark.config import BenchmarkConfig
    from pointcalip.config import ConfigError, load_config

    cfg = load_config(BenchmarkConfig, ["modelnet_c"], [])
    assert cfg.benchmark.severity_list == [0, 1, 2, 3, 4] and len(cfg.benchmark.corruption_list) == 7
    cfg = load_config(BenchmarkConfig, ["scanobjectnn_c"], ["benchmark.variant=OBJ_BG",
                                                             "data.variant=OBJ_BG"])
    assert cfg.benchmark.variant == "obj_bg"
    with pytest.raises(ConfigError, match="data.variant.*must be OBJ_ONLY"):
        load_config(BenchmarkConfig, ["scanobjectnn_c"], ["benchmark.variant=obj_only"])
    with pytest.raises(ConfigError, match="severities"):
        load_config(BenchmarkConfig, ["modelnet_c"], ["benchmark.severities=[1,5]"])
