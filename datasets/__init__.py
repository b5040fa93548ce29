"""Point-cloud datasets: ModelNet40/10, ScanObjectNN, user files, few-shot splits.

Installed as ``pointcalip.datasets``::

    from pointcalip.datasets import ModelNet40, ScanObjectNN, load_point_cloud
    ds = ModelNet40(root, split="test", num_points=1024)   # root: modelnet40_ply_hdf5_2048
    points, label = ds[0]                                   # [1024, 3] float32, int

Every dataset is declared in :mod:`.catalog` (its class, classes, variants, download source and
folder check); names are imported lazily, so reading the catalog does not import torch.
"""
from __future__ import annotations

from ..core.lazy import lazy_attribute

from .catalog import DATASETS as _REGISTRY, dataset_entry, load_target

_EXPORTS = {
    "H5CloudDataset": "base",
    "dataset_folder": "download", "download_file": "download", "ensure_dataset": "download",
    "validate_folder": "download",
    "load_point_cloud": "files",
    "MODELNET10_CLASSES": "modelnet", "MODELNET40_CLASSES": "modelnet", "ModelNet10": "modelnet",
    "ModelNet40": "modelnet",
    "SCANOBJECTNN_CLASSES": "scanobjectnn", "ScanObjectNN": "scanobjectnn",
    "SHAPENETPART_CATEGORIES": "shapenetpart", "ShapeNetPart": "shapenetpart",
    "fewshot_indices": "splits", "validation_indices": "splits",
}


def __getattr__(name):
    if name == "DATASETS":      # {name: dataset class}, from the catalog
        return {entry.name: load_target(entry.target) for entry in _REGISTRY.entries()}
    return lazy_attribute(__name__, _EXPORTS, name)


def build_dataset(name: str, root=None, split: str = "test", **kwargs):
    """Dataset from a config name: ``"modelnet40"``, ``"modelnet10"`` or ``"scanobjectnn"``
    (pass ``variant=``; ``"scanobjectnn/PB_T50_RS"`` also works). ``root=None`` locates the
    installed folder under `pointcalip.core.paths.data_dir()` (no download); other keyword
    arguments go to the dataset class (num_points, sampling, normalize, in_memory)."""
    key = str(name).strip().lower()
    head, _, variant = str(name).strip().partition("/")
    if variant and head.lower() in _REGISTRY and "variants" in _REGISTRY[head.lower()].meta:
        key, kwargs["variant"] = head.lower(), variant
    if key not in _REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; use one of {sorted(_REGISTRY.names())}")
    if root is None:
        from .download import dataset_folder
        root = dataset_folder(key)
    return load_target(dataset_entry(key).target)(root, split=split, **kwargs)


__all__ = ["DATASETS", "build_dataset", *sorted(_EXPORTS)]
