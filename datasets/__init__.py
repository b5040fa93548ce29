"""Point-cloud datasets: ModelNet40/10, ScanObjectNN, user files, few-shot splits.

Installed as ``pointcalip.datasets``::

    from pointcalip.datasets import ModelNet40, ScanObjectNN, load_point_cloud
    ds = ModelNet40(root, split="test", num_points=1024)   # root: modelnet40_ply_hdf5_2048
    points, label = ds[0]                                   # [1024, 3] float32, int
"""
from __future__ import annotations

from .base import H5CloudDataset
from .download import dataset_folder, download_file, ensure_dataset, validate_folder
from .files import load_point_cloud
from .modelnet import MODELNET10_CLASSES, MODELNET40_CLASSES, ModelNet10, ModelNet40
from .scanobjectnn import SCANOBJECTNN_CLASSES, ScanObjectNN
from .splits import fewshot_indices, validation_indices

DATASETS = {"modelnet40": ModelNet40, "modelnet10": ModelNet10, "scanobjectnn": ScanObjectNN}


def build_dataset(name: str, root=None, split: str = "test", **kwargs) -> H5CloudDataset:
    """Dataset from a config name: ``"modelnet40"``, ``"modelnet10"`` or ``"scanobjectnn"``
    (pass ``variant=``; ``"scanobjectnn/PB_T50_RS"`` also works). ``root=None`` locates the
    installed folder under `pointcalip.core.paths.data_dir()` (no download); other keyword
    arguments go to the dataset class (num_points, sampling, normalize, in_memory)."""
    key = str(name).strip().lower()
    if key.startswith("scanobjectnn/"):
        key, kwargs["variant"] = "scanobjectnn", name.split("/", 1)[1]
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; use one of {sorted(DATASETS)}")
    if root is None:
        root = dataset_folder(key)
    return DATASETS[key](root, split=split, **kwargs)


__all__ = [
    "DATASETS", "H5CloudDataset", "MODELNET10_CLASSES", "MODELNET40_CLASSES", "ModelNet10",
    "ModelNet40", "SCANOBJECTNN_CLASSES", "ScanObjectNN", "build_dataset", "dataset_folder",
    "download_file", "ensure_dataset", "fewshot_indices", "load_point_cloud",
    "validate_folder", "validation_indices",
]
