"""Every dataset PointCALIP reads, declared once: the registry that the config's dataset names,
``build_dataset``, ``pointcalip download`` (its choices, sources and folder checks) and the
data path all derive from.

This module imports neither torch nor h5py, so names, variants and class counts are known
before any work starts (``--help``, config errors). An entry declares:

* ``target``: the dataset class, as ``"module:Class"`` (imported on use);
* ``classes``: its number of classes (what a run's size checks multiply by);
* ``variants``: ``{variant: {split: file}}`` when the config must name one (``data.variant``);
* ``up_axes``: the up axes the dataset class can serve (``data.up_axis``), when it can turn;
* ``source``: where its files come from (:class:`DatasetSource`), or ``installed_with``: the
  dataset whose folder holds it (ModelNet10 is read from the ModelNet40 folder);
* ``marker``: names inside an installed folder that recognise it (cheap, no h5 reading);
* ``validate``: ``"module:function(folder)"`` that reads a whole folder and raises on damage;
* ``splits``: the splits it has when not train and test (Objaverse-LVIS: ``("test",)``);
* ``install_files``: ``"module:function(folder)"`` giving ``(path, source file)`` pairs when
  ``download --from FOLDER`` must copy only part of a folder (default: all of it).

A robustness benchmark (``task="robustness"``: corrupted test sets, read by `pointcalip
benchmark` and `pointcalip adapt` through :func:`pointcalip.benchmark.sets.robustness_sets`)
also declares ``corruptions`` and ``severities`` (as its files name them), ``clean_set`` (the
name of its uncorrupted set, which takes no severity), ``tuned_on`` (the clean dataset whose
validation split tunes it) and, when it has variants, ``variants`` as ``{variant: the clean
dataset's variant}``. Its dataset class takes ``corruption=`` and ``severity=`` (and
``variant=``), and serves every stored point by default.

Adding a dataset: its module (the class and its ``validate_folder``), one ``DATASETS.register``
call here, and its YAML (``configs/data/<name>.yaml``).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from ..core.registry import Entry, Registry

DATASETS = Registry("dataset")


@dataclass(frozen=True)
class DatasetSource:
    """Where a dataset comes from and how its installed folder is recognised."""

    name: str
    folder: str  # folder name under the data root
    archive: str  # archive file name
    urls: tuple[str, ...] = ()  # tried in order
    sha256: str | None = None  # archive digest, when one is recorded
    file_md5: dict = field(default_factory=dict)  # published digests of extracted files
    terms_url: str | None = None  # the user must accept terms there first
    marker: tuple[str, ...] = ()  # any of these inside a folder recognises it
    marker_text: str = ""  # what a recognised folder holds, for messages
    fetch_text: str = ""  # what to fetch, for messages, when it is not the one archive


def load_target(spec: str) -> Any:
    """``"package.module:name"`` -> that object (its module imported now)."""
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def dataset_entry(name: str) -> Entry:
    """The registry entry of ``name`` (case-insensitive); KeyError with the known names."""
    return DATASETS[str(name).strip().lower()]


def installing_entry(name: str) -> Entry:
    """The entry whose source installs ``name`` (modelnet10 -> modelnet40)."""
    entry = dataset_entry(name)
    return DATASETS[entry.meta.get("installed_with", entry.name)]


MODELNET40_SOURCE = DatasetSource(
    name="modelnet40",
    folder="modelnet40_ply_hdf5_2048",
    archive="modelnet40_ply_hdf5_2048.zip",
    urls=(
        "https://shapenet.cs.stanford.edu/media/modelnet40_ply_hdf5_2048.zip",
        # Widely used mirror (e.g. by PyTorch Geometric) while the Stanford host is down.
        "https://huggingface.co/datasets/Msun/modelnet40/resolve/main/modelnet40_ply_hdf5_2048.zip",
    ),
    sha256=None,
    # Per-file MD5s of the published release, as recorded by torchvision-style loaders.
    file_md5={
        "ply_data_train0.h5": "3176385ffc31a7b6b5af22191fd920d1",
        "ply_data_train1.h5": "e3f613fb500559403b34925112754dc4",
        "ply_data_train2.h5": "0c56e233a090ff87c3049d4ce08e7d8b",
        "ply_data_train3.h5": "9d2af465adfa33a3285c369f3ca66c45",
        "ply_data_train4.h5": "dff38de489b2c41bfaeded86c2208984",
        "ply_data_test0.h5": "e9732e6d83b09e79e9a7617df058adee",
        "ply_data_test1.h5": "aba4b12a67c34391cc3c015a6f08ed4b",
    },
    marker=("shape_names.txt",),
    marker_text="shape_names.txt",
)

SCANOBJECTNN_SOURCE = DatasetSource(
    name="scanobjectnn",
    folder="h5_files",
    archive="h5_files.zip",
    terms_url="https://hkust-vgd.github.io/scanobjectnn/",
    marker=("main_split", "main_split_nobg"),
    marker_text="main_split/",
)

SHAPENETPART_SOURCE = DatasetSource(
    name="shapenetpart",
    folder="hdf5_data",
    archive="shapenet_part_seg_hdf5_data.zip",
    # the historical host, often down: `pointcalip download shapenetpart --from ZIP` then
    urls=("https://shapenet.cs.stanford.edu/media/shapenet_part_seg_hdf5_data.zip",),
    marker=("all_object_categories.txt", "val_hdf5_file_list.txt"),
    marker_text="all_object_categories.txt",
)

DATASETS.register("modelnet40", "pointcalip.datasets.modelnet:ModelNet40", classes=40,
                  source=MODELNET40_SOURCE,
                  validate="pointcalip.datasets.modelnet:validate_folder")
DATASETS.register("modelnet10", "pointcalip.datasets.modelnet:ModelNet10", classes=10,
                  installed_with="modelnet40")
DATASETS.register("scanobjectnn", "pointcalip.datasets.scanobjectnn:ScanObjectNN", classes=15,
                  source=SCANOBJECTNN_SOURCE,
                  validate="pointcalip.datasets.scanobjectnn:validate_folder",
                  # variant -> split -> file inside h5_files
                  variants={
                      "OBJ_BG": {
                          "train": "main_split/training_objectdataset.h5",
                          "test": "main_split/test_objectdataset.h5",
                      },
                      "OBJ_ONLY": {
                          "train": "main_split_nobg/training_objectdataset.h5",
                          "test": "main_split_nobg/test_objectdataset.h5",
                      },
                      "PB_T50_RS": {
                          "train": "main_split/training_objectdataset_augmentedrot_scale75.h5",
                          "test": "main_split/test_objectdataset_augmentedrot_scale75.h5",
                      },
                  })
MODELNET40C_SOURCE = DatasetSource(
    name="modelnet40c",
    folder="modelnet40_c",
    archive="modelnet40_c.zip",
    # no download address is recorded: `pointcalip download modelnet40c --from PATH`
    marker=("data_original.npy",),
    marker_text="data_original.npy, label.npy and data_<corruption>_<severity>.npy",
)

DATASETS.register("shapenetpart", "pointcalip.datasets.shapenetpart:ShapeNetPart", classes=16,
                  source=SHAPENETPART_SOURCE, task="segmentation",
                  validate="pointcalip.datasets.shapenetpart:validate_folder")
# ModelNet40's test split under 15 corruptions x 5 severities; test only (task "robustness":
# kept out of classification configs, read by `pointcalip benchmark`, which tunes on clean
# ModelNet40 validation); ``settings``: the corruption and severity the dataset class takes
DATASETS.register("modelnet40c", "pointcalip.datasets.modelnet40c:ModelNet40C", classes=40,
                  source=MODELNET40C_SOURCE, task="robustness", tuned_on="modelnet40",
                  settings=("corruption", "severity"),
                  corruptions=("background", "cutout", "density", "density_inc", "distortion",
                               "distortion_rbf", "distortion_rbf_inv", "gaussian", "impulse",
                               "lidar", "occlusion", "rotation", "shear", "uniform",
                               "upsampling"),
                  severities=(1, 2, 3, 4, 5), clean_set="original",
                  validate="pointcalip.datasets.modelnet40c:validate_folder")

#: ModelNet-C's and ScanObjectNN-C's 7 corruptions (jiawei-ren/ModelNet-C, in its order)
MODELNET_C_CORRUPTIONS = ("scale", "jitter", "rotate", "dropout_global", "dropout_local",
                          "add_global", "add_local")

MODELNET_C_SOURCE = DatasetSource(
    name="modelnet_c",
    folder="modelnet_c",
    archive="modelnet_c.zip",
    # published on Google Drive (id 1KE6MmXMtfu_mgxg4qLPdEwVD5As8B0rm, linked from
    # github.com/jiawei-ren/ModelNet-C) and in Point-PRC's Hugging Face dataset; neither is a
    # plain archive address urllib can fetch: `pointcalip download modelnet_c --from PATH`
    marker=("clean.h5",),
    marker_text="clean.h5 and <corruption>_<level>.h5",
    fetch_text=("get modelnet_c.zip from https://drive.google.com/file/d/"
                "1KE6MmXMtfu_mgxg4qLPdEwVD5As8B0rm (linked from github.com/jiawei-ren/ModelNet-C) "
                "or the modelnet_c folder of https://huggingface.co/datasets/auniquesun/Point-PRC/"
                "tree/main/new-3ddg-benchmarks/xset/corruption"),
)

SCANOBJECTNN_C_SOURCE = DatasetSource(
    name="scanobjectnn_c",
    folder="sonn_c",
    archive="sonn_c.zip",
    marker=("obj_bg", "obj_only", "hardest"),
    marker_text="obj_bg/, obj_only/ or hardest/ holding <corruption>_<level>.h5",
    fetch_text=("get the sonn_c folder of https://huggingface.co/datasets/auniquesun/Point-PRC/"
                "tree/main/new-3ddg-benchmarks/xset/corruption (as Point-Cache uses it)"),
)

# ModelNet-C: ModelNet40 TEST under 7 corruptions x levels 0..4, one h5 per set, clean.h5
DATASETS.register("modelnet_c", "pointcalip.datasets.modelnet_c:ModelNetC", classes=40,
                  source=MODELNET_C_SOURCE, task="robustness", tuned_on="modelnet40",
                  settings=("corruption", "severity"), corruptions=MODELNET_C_CORRUPTIONS,
                  severities=(0, 1, 2, 3, 4), clean_set="clean",
                  validate="pointcalip.datasets.modelnet_c:validate_folder")
# ScanObjectNN-C (Point-Cache / Point-PRC): each variant's TEST split under the same 7 x 5
DATASETS.register("scanobjectnn_c", "pointcalip.datasets.scanobjectnn_c:ScanObjectNNC",
                  classes=15, source=SCANOBJECTNN_C_SOURCE, task="robustness",
                  tuned_on="scanobjectnn", settings=("corruption", "severity"),
                  corruptions=MODELNET_C_CORRUPTIONS, severities=(0, 1, 2, 3, 4),
                  clean_set="clean", optional_clean=True,
                  variants={"obj_bg": "OBJ_BG", "obj_only": "OBJ_ONLY", "hardest": "PB_T50_RS"},
                  validate="pointcalip.datasets.scanobjectnn_c:validate_folder")

OBJAVERSE_LVIS_SOURCE = DatasetSource(
    name="objaverse_lvis",
    folder="objaverse_lvis",
    archive="objaverse_lvis.zip",
    # no one archive holds it: OpenShape's meta_data.zip and Objaverse/000-*.tar.gz from
    # huggingface.co/datasets/OpenShape/openshape-training-data, extracted into one folder, then
    # `pointcalip download objaverse_lvis --from FOLDER` copies the split and its objects only
    marker=("meta_data/split/lvis.json",),
    marker_text="meta_data/split/lvis.json and the objaverse-processed/ objects it lists",
    fetch_text=("get OpenShape's meta_data.zip and Objaverse/000-*.tar.gz from "
                "https://huggingface.co/datasets/OpenShape/openshape-training-data, extract them "
                "into one folder"),
)

# OpenShape's Objaverse-LVIS evaluation split: test only (``splits``: no TRAIN split, so
# `pointcalip benchmark` tunes on a slice of it or takes another run's settings);
# ``install_files``: what `download --from` copies out of a folder of OpenShape's data
DATASETS.register("objaverse_lvis", "pointcalip.datasets.objaverse_lvis:ObjaverseLVIS",
                  classes=1156, source=OBJAVERSE_LVIS_SOURCE, splits=("test",),
                  up_axes=("y", "z"),   # y: as stored, as the projectors expect; z: OpenShape's swap
                  validate="pointcalip.datasets.objaverse_lvis:validate_folder",
                  install_files="pointcalip.datasets.objaverse_lvis:install_files")
