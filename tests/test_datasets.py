"""ModelNet40 / ModelNet10 / ScanObjectNN loaders on synthetic files in the published layouts."""
from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from pointcalip.datasets import (
    ModelNet10,
    ModelNet40,
    ScanObjectNN,
    build_dataset,
)
from synthetic_data import (  # class lists written from the spec, independently of configs/
    MODELNET10_CLASSES,
    MODELNET40_CLASSES,
    SCANOBJECTNN_CLASSES,
    SCANOBJECTNN_FILES,
    write_modelnet10,
    write_modelnet40,
    write_modelnet_folder,
    write_scanobjectnn,
)

P = 64  # points stored per synthetic cloud


@pytest.fixture(scope="module")
def mn40(tmp_path_factory) -> Path:
    return write_modelnet40(tmp_path_factory.mktemp("mn40"), 2, 1, num_points=P, seed=1)


@pytest.fixture(scope="module")
def sonn(tmp_path_factory) -> Path:
    return write_scanobjectnn(tmp_path_factory.mktemp("sonn"), 2, 1, num_points=P, seed=2)


def _raw(folder: Path, split: str):
    """Independent read: concatenate the h5 files named in {split}_files.txt."""
    names = [Path(l).name for l in (folder / f"{split}_files.txt").read_text().split()]
    data, labels = [], []
    for n in names:
        with h5py.File(folder / n, "r") as f:
            data.append(f["data"][:])
            labels.append(f["label"][:].reshape(-1))
    return np.concatenate(data), np.concatenate(labels).astype(np.int64)


def _slow_fps(cloud: np.ndarray, m: int) -> np.ndarray:
    """Readable farthest-point sampling from index 0 (ties -> lowest index)."""
    chosen = [0]
    dist = np.full(cloud.shape[0], np.inf)
    for _ in range(m - 1):
        last = cloud[chosen[-1]].astype(np.float64)
        for j in range(cloud.shape[0]):
            dist[j] = min(dist[j], float(((cloud[j].astype(np.float64) - last) ** 2).sum()))
        chosen.append(int(np.argmax(dist)))
    return cloud[chosen]


def _unit(points: np.ndarray) -> np.ndarray:
    c = points - points.mean(axis=-2, keepdims=True)
    return c / np.linalg.norm(c, axis=-1).max(axis=-1)[..., None, None]


# ----------------------------------------------------------------------------- ModelNet40
def test_modelnet40_reads_published_layout(mn40, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # the data/... prefixed lists must not resolve against cwd
    raw, raw_labels = _raw(mn40, "test")
    ds = ModelNet40(mn40, split="test", num_points=32)
    assert len(ds) == 40 == raw.shape[0]
    assert ds.classnames == MODELNET40_CLASSES and "flower_pot" in ds.classnames
    assert ds.name == "modelnet40" and ds.split == "test"
    pts, label = ds[5]
    assert pts.dtype == torch.float32 and pts.shape == (32, 3)
    assert label == raw_labels[5] and isinstance(label, int)
    np.testing.assert_array_equal(pts.numpy(), raw[5, :32])
    np.testing.assert_array_equal(ds.labels, raw_labels)
    assert ds.labels.dtype == np.int64
    np.testing.assert_array_equal(ds.points().numpy(), raw[:, :32])
    assert sorted(np.bincount(ds.labels)) == [1] * 40
    train = ModelNet40(mn40.parent, split="train", num_points=None)  # parent folder also works
    assert len(train) == 80 and train[0][0].shape == (P, 3)


def test_lazy_equals_in_memory_and_batched_access(mn40):
    mem = ModelNet40(mn40, split="train", num_points=16)
    lazy = ModelNet40(mn40, split="train", num_points=16, in_memory=False)
    idx = [79, 3, 3, 41, 0, -1]
    expect = torch.stack([mem[i][0] for i in idx])
    torch.testing.assert_close(mem.points(idx), expect, rtol=0, atol=0)
    torch.testing.assert_close(lazy.points(idx), expect, rtol=0, atol=0)
    seen, labels = [], []
    for pts, lab in lazy.batches(batch_size=32):
        assert pts.shape[1:] == (16, 3) and pts.shape[0] <= 32
        seen.append(pts)
        labels.append(lab)
    torch.testing.assert_close(torch.cat(seen), mem.points(), rtol=0, atol=0)
    np.testing.assert_array_equal(torch.cat(labels).numpy(), mem.labels)
    clone = pickle.loads(pickle.dumps(lazy))  # picklable for DataLoader workers
    torch.testing.assert_close(clone[7][0], mem[7][0])
    lazy.close()
    with pytest.raises(IndexError, match="80"):
        mem.points([80])


def test_fps_and_normalisation(mn40):
    raw, _ = _raw(mn40, "test")
    ds = ModelNet40(mn40, split="test", num_points=12, sampling="fps")
    for i in (0, 17):
        np.testing.assert_allclose(ds[i][0].numpy(), _slow_fps(raw[i], 12), atol=0)
    again = ModelNet40(mn40, split="test", num_points=12, sampling="fps", in_memory=False)
    torch.testing.assert_close(again.points([17, 0]), ds.points([17, 0]))
    norm = ModelNet40(mn40, split="test", num_points=32, normalize=True)
    pts = norm.points().numpy()
    np.testing.assert_allclose(pts, _unit(raw[:, :32].astype(np.float64)), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(pts, axis=2).max(axis=1), 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="sampling"):
        ModelNet40(mn40, split="test", sampling="random")
    with pytest.raises(ValueError, match="num_points=100"):
        ModelNet40(mn40, split="test", num_points=100)


def test_normalisation_holds_at_any_scale_float32_can_store():
    """A cloud 2^127 or 2^-125 times another normalises to exactly the same points (before,
    squared distances overflowed to inf or underflowed: NaNs, zeros or unscaled clouds)."""
    from pointcalip.datasets.h5utils import normalize_unit_sphere

    base = torch.rand(2, 40, 3, generator=torch.Generator().manual_seed(0)) - 0.3
    want = normalize_unit_sphere(base)
    np.testing.assert_allclose(want.norm(dim=2).amax(dim=1).numpy(), 1.0, rtol=1e-6)
    for factor in (2.0 ** 127, 2.0 ** 66, 2.0 ** -70, 2.0 ** -125):
        scaled = base * factor
        assert torch.isfinite(scaled).all() and torch.equal(scaled / factor, base)
        assert torch.equal(normalize_unit_sphere(scaled), want), factor
    mixed = torch.stack([base[0] * 3e38, base[1]])          # only the odd cloud is rescaled
    assert torch.equal(normalize_unit_sphere(mixed)[1], want[1])
    np.testing.assert_allclose(normalize_unit_sphere(mixed)[0].numpy(), want[0].numpy(), atol=1e-6)


def test_settings_identify_the_clouds(mn40, tmp_path):
    a = ModelNet40(mn40, split="test", num_points=32).settings
    json.dumps(a)
    assert a["dataset"] == "modelnet40" and a["split"] == "test" and a["num_points"] == 32
    assert a["sampling"] == "first" and a["normalize"] is False
    assert [f["name"] for f in a["files"]] == ["ply_data_test0.h5", "ply_data_test1.h5"]
    assert ModelNet40(mn40, split="test", num_points=32).settings == a
    assert ModelNet40(mn40, split="test", num_points=16).settings != a
    assert ModelNet40(mn40, split="test", num_points=32, sampling="fps").settings != a
    copy = shutil.copytree(mn40, tmp_path / "modelnet40_ply_hdf5_2048")
    with h5py.File(copy / "ply_data_test1.h5", "r+") as f:  # same size, other content
        f["data"][0, 0, 0] = 0.123
    assert ModelNet40(copy, split="test", num_points=32).settings["files"] != a["files"]


# ----------------------------------------------------------------------------- ModelNet10
def test_modelnet10_subset_relabelled(tmp_path):
    classes = ["airplane", "toilet", "bathtub", "sofa", "xbox", "night_stand"]
    folder = write_modelnet40(tmp_path, 2, 3, num_points=P, seed=3, classes=classes)
    raw, raw_labels = _raw(folder, "test")
    ds = ModelNet10(folder, split="test", num_points=P)
    assert ds.name == "modelnet10" and ds.classnames == MODELNET10_CLASSES
    keep = np.flatnonzero(np.isin(raw_labels, [MODELNET40_CLASSES.index(c) for c in MODELNET10_CLASSES]))
    assert len(ds) == keep.size == 4 * 3
    np.testing.assert_array_equal(ds.points().numpy(), raw[keep])
    for new, old in zip(ds.labels, raw_labels[keep]):
        assert ds.classnames[new] == MODELNET40_CLASSES[old]
    assert set(ds.labels.tolist()) == {0, 6, 7, 9}  # bathtub, night_stand, sofa, toilet


def test_modelnet10_folder_and_factory(tmp_path, mn40):
    folder = write_modelnet10(tmp_path, 1, 2, num_points=P, seed=4)
    ds = ModelNet10(folder, split="test", num_points=8)
    assert len(ds) == 20 and ds.classnames == MODELNET10_CLASSES
    _, raw_labels = _raw(folder, "test")
    np.testing.assert_array_equal(ds.labels, raw_labels)
    with pytest.raises(ValueError, match="ModelNet10"):
        ModelNet40(folder, split="test")
    assert isinstance(build_dataset("modelnet10", folder, "train", num_points=8), ModelNet10)
    assert len(build_dataset("modelnet40", mn40, "test", num_points=8)) == 40
    with pytest.raises(ValueError, match="unknown dataset"):
        build_dataset("shapenet", mn40, "test")


# ----------------------------------------------------------------------------- ScanObjectNN
@pytest.mark.parametrize("variant", ["OBJ_BG", "OBJ_ONLY", "PB_T50_RS"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_scanobjectnn_variants(sonn, variant, split):
    rel = SCANOBJECTNN_FILES[variant][0 if split == "train" else 1]
    with h5py.File(sonn / rel, "r") as f:
        raw, raw_labels = f["data"][:], f["label"][:]
    assert np.linalg.norm(raw, axis=2).max() > 1.5  # the synthetic scans are not normalised
    ds = ScanObjectNN(sonn, variant=variant.lower(), split=split, num_points=32)
    assert ds.name == f"scanobjectnn/{variant}" and ds.settings["variant"] == variant
    assert ds.classnames == SCANOBJECTNN_CLASSES
    assert len(ds) == 15 * (2 if split == "train" else 1)
    np.testing.assert_array_equal(ds.labels, raw_labels)
    np.testing.assert_allclose(ds.points().numpy(), _unit(raw[:, :32].astype(np.float64)), atol=1e-5)
    off = ScanObjectNN(sonn.parent, variant=variant, split=split, num_points=32, normalize=False)
    np.testing.assert_array_equal(off.points().numpy(), raw[:, :32])
    assert ds.settings != off.settings


def test_scanobjectnn_factory_and_bad_variant(sonn, tmp_path):
    ds = build_dataset("scanobjectnn", sonn, "test", variant="PB_T50_RS", num_points=8)
    assert ds.classnames[0] == "bag" and len(ds.classnames) == 15
    assert build_dataset("scanobjectnn/obj_bg", sonn, "test", num_points=8).name == "scanobjectnn/OBJ_BG"
    with pytest.raises(ValueError, match="PB_T25"):
        ScanObjectNN(sonn, variant="PB_T25", split="test")
    only_bg = write_scanobjectnn(tmp_path, 1, 1, num_points=8, variants=("OBJ_BG",))
    with pytest.raises(FileNotFoundError, match="main_split_nobg/test_objectdataset.h5"):
        ScanObjectNN(only_bg, variant="OBJ_ONLY", split="test")


# ----------------------------------------------------------------------------- bad input
@pytest.fixture()
def small(tmp_path) -> Path:
    return write_modelnet40(tmp_path, 1, 1, num_points=8, seed=5, classes=MODELNET40_CLASSES[:4])


def test_missing_folder_and_files(tmp_path, small):
    with pytest.raises(FileNotFoundError, match="pointcalip download modelnet40"):
        ModelNet40(tmp_path / "nowhere", split="test")
    (small / "ply_data_test1.h5").unlink()
    with pytest.raises(FileNotFoundError, match="ply_data_test1.h5"):
        ModelNet40(small, split="test")
    (small / "shape_names.txt").unlink()
    with pytest.raises(FileNotFoundError, match="shape_names.txt"):
        ModelNet40(small, split="train")
    with pytest.raises(ValueError, match="split"):
        ModelNet40(small, split="val")


def test_missing_key_and_bad_labels(small):
    with h5py.File(small / "ply_data_test0.h5", "r+") as f:
        del f["label"]
    with pytest.raises(KeyError, match="'label'.*ply_data_test0.h5|ply_data_test0.h5.*'label'"):
        ModelNet40(small, split="test")
    with h5py.File(small / "ply_data_train1.h5", "r+") as f:
        lab = f["label"][:]
        lab[0, 0] = 40
        f["label"][...] = lab
    with pytest.raises(ValueError, match=r"ply_data_train1.h5.*index 0 has label 40"):
        ModelNet40(small, split="train")


def test_shape_names_shorter_than_labels(small):
    names = (small / "shape_names.txt").read_text().split()
    (small / "shape_names.txt").write_text("\n".join(names[:3]) + "\n")  # labels use 0..3
    with pytest.raises(ValueError, match="shape_names.txt"):
        ModelNet40(small, split="test")


def test_truncated_h5(small):
    path = small / "ply_data_test0.h5"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match="ply_data_test0.h5.*(truncated|corrupt)"):
        ModelNet40(small, split="test")


@pytest.mark.parametrize("in_memory", [True, False])
def test_nan_cloud_reported_with_file_and_index(small, in_memory):
    with h5py.File(small / "ply_data_test1.h5", "r+") as f:
        d = f["data"][:]
        d[1, 3, 2] = np.nan
        f["data"][...] = d
    if in_memory:
        with pytest.raises(ValueError, match=r"ply_data_test1.h5.*cloud index 1"):
            ModelNet40(small, split="test", num_points=8)
    else:
        ds = ModelNet40(small, split="test", num_points=8, in_memory=False)
        ds[0]
        with pytest.raises(ValueError, match=r"ply_data_test1.h5.*cloud index 1"):
            ds.points()


def test_bad_shape(tmp_path):
    folder = write_modelnet_folder(tmp_path / "m", MODELNET40_CLASSES, 1, 1, num_points=8)
    with h5py.File(folder / "ply_data_test0.h5", "r+") as f:
        del f["data"]
        f["data"] = np.zeros((20, 8, 2), np.float32)
    with pytest.raises(ValueError, match=r"ply_data_test0.h5.*\[n, points, 3\]"):
        ModelNet40(folder, split="test")


# ------------------------------------------------------------------------- catalogs (issue 16)
def test_the_dataset_catalog_declares_what_every_list_derives_from():
    from pointcalip.config import DataConfig
    from pointcalip.datasets import DATASETS, MODELNET10_CLASSES, MODELNET40_CLASSES, SCANOBJECTNN_CLASSES
    from pointcalip.datasets.catalog import DATASETS as CATALOG
    from pointcalip.datasets.scanobjectnn import VARIANT_FILES

    assert CATALOG.names() == list(DATASETS)             # every catalog entry has its loader
    assert {"modelnet40", "modelnet10", "scanobjectnn", "shapenetpart", "modelnet40c",
            "objaverse_lvis"} <= set(CATALOG.names())    # the shipped ones (a new one may follow)
    assert (DATASETS["modelnet40"], DATASETS["modelnet10"], DATASETS["scanobjectnn"]) == (
        ModelNet40, ModelNet10, ScanObjectNN)
    shipped = {"modelnet40": 40, "modelnet10": 10, "scanobjectnn": 15, "shapenetpart": 16,
               "modelnet40c": 40, "objaverse_lvis": 1156}
    assert {n: CATALOG[n].classes for n in shipped} == shipped
    assert (len(MODELNET40_CLASSES), len(MODELNET10_CLASSES), len(SCANOBJECTNN_CLASSES)) == (40, 10, 15)
    assert all(isinstance(CATALOG[n].classes, int) and CATALOG[n].classes > 1 for n in CATALOG)
    assert VARIANT_FILES is CATALOG["scanobjectnn"].variants
    assert DataConfig(name="modelnet10").num_classes == 10
    # the config's dataset names are the catalog's
    import typing
    classification = tuple(n for n in CATALOG.names()
                           if CATALOG[n].meta.get("task") not in ("segmentation", "robustness"))
    assert typing.get_args(typing.get_type_hints(DataConfig)["name"]) == classification
    assert {"modelnet40", "modelnet10", "scanobjectnn", "objaverse_lvis"} <= set(classification)


def test_catalog_names_import_no_torch():
    """Names of datasets, projectors and studies are listed (CLI --help, config errors)
    without importing torch."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from pointcalip.datasets.catalog import DATASETS\n"
            "from pointcalip.projection.catalog import PROJECTORS\n"
            "from pointcalip.ablation.config import STUDIES\n"
            "import pointcalip.datasets, pointcalip.projection, pointcalip.config\n"
            "print({'modelnet40', 'shapenetpart', 'objaverse_lvis'} <= set(DATASETS.names()), "
            "PROJECTORS.names(), STUDIES.names(), 'modelnet40' in DATASETS)\n"
            "print(sorted(m for m in ('torch', 'open_clip', 'h5py') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    names, heavy = out.stdout.strip().splitlines()
    assert names == ("True ['pointclip', 'realistic'] "
                     "['views', 'terms', 'prompts', 'projectors', 'backbones', 'weights'] True")
    assert heavy == "[]"


def test_build_dataset_and_projector_come_from_their_catalogs(mn40):
    from pointcalip.projection import PROJECTORS, PointCLIPProjector, RealisticProjector, build_projector
    from pointcalip.projection.catalog import projector_options

    assert PROJECTORS == {"pointclip": PointCLIPProjector, "realistic": RealisticProjector}
    assert build_projector("PointCLIP", views="fewshot").num_views == 10
    assert projector_options("pointclip")[:2] == ["views", "preset"]
    with pytest.raises(ValueError, match=r"unknown projector 'sparse'; choose one of \['pointclip', 'realistic'\]"):
        build_projector("sparse")
    with pytest.raises(ValueError, match=r"unknown dataset 'shapenet'; use one of"):
        build_dataset("shapenet", mn40)
