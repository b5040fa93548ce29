"""The dataset a config names: its folder (downloaded if allowed) and its splits."""
from __future__ import annotations

from pathlib import Path

from .config import DataConfig
from .datasets import build_dataset, dataset_folder, ensure_dataset
from .datasets.catalog import installing_entry
from .datasets.base import H5CloudDataset
from .core.paths import data_dir


def resolve_data_root(data: DataConfig, download: bool) -> Path:
    """The dataset folder: `data.root` as given, else the installed copy under
    `<POINTCALIP_HOME>/data` (downloaded first when `download` and ModelNet40 is missing)."""
    if data.root:
        return Path(data.root).expanduser()
    archive = installing_entry(data.name).name        # e.g. ModelNet10 lives in ModelNet40's folder
    if download:
        return ensure_dataset(archive, root=data_dir())
    return dataset_folder(archive, root=data_dir())


def build_split(data: DataConfig, root: Path, split: str) -> H5CloudDataset:
    """The ``split`` ("train" or "test") of the dataset in ``data``, read from ``root``."""
    return build_dataset(data.name, root, split, **data.dataset_kwargs())
