"""ScanObjectNN (real scans, 15 classes) from the official ``h5_files`` folder.

Each h5 holds ``data`` float32 ``[n, 2048, 3]`` and ``label`` ``[n]`` (``mask`` and other
keys are ignored). The clouds are not unit-sphere normalised, so the loader centres and
scales each returned cloud by default (``normalize=True``).
"""
from __future__ import annotations

from pathlib import Path

from ..prompts import load_classnames
from .base import H5CloudDataset, check_split
from .catalog import DATASETS

SCANOBJECTNN_CLASSES = load_classnames("scanobjectnn")
SCANOBJECTNN_FOLDER = "h5_files"
# variant -> split -> file inside h5_files (declared in the catalog)
VARIANT_FILES = DATASETS["scanobjectnn"].variants
_HINT = (
    "ScanObjectNN needs its terms accepted: get h5_files.zip from "
    "https://hkust-vgd.github.io/scanobjectnn/ and run "
    "`pointcalip download scanobjectnn --from h5_files.zip`."
)


def canonical_variant(variant: str) -> str:
    """``"pb_t50_rs"``, ``"PB-T50-RS"`` ... -> ``"PB_T50_RS"``; unknown names raise."""
    key = str(variant).strip().upper().replace("-", "_")
    if key not in VARIANT_FILES:
        raise ValueError(
            f"unknown ScanObjectNN variant {variant!r}; use one of {list(VARIANT_FILES)}"
        )
    return key


def find_h5_root(root) -> Path:
    """The ``h5_files`` folder: ``root`` itself or ``root/h5_files``."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"ScanObjectNN folder {root} does not exist. {_HINT}")
    if not (root / "main_split").is_dir() and (root / SCANOBJECTNN_FOLDER).is_dir():
        return root / SCANOBJECTNN_FOLDER
    return root


class ScanObjectNN(H5CloudDataset):
    """ScanObjectNN variants OBJ_BG, OBJ_ONLY (2,309 train / 581 test) and PB_T50_RS
    (11,416 / 2,882), 15 classes.

    Args:
        root: the official ``h5_files`` folder (or its parent).
        variant: ``"OBJ_BG"``, ``"OBJ_ONLY"`` or ``"PB_T50_RS"`` (case-insensitive).
        split: ``"train"`` or ``"test"``.
        num_points: points per cloud (first N; ``None``: all 2048).
        sampling: ``"first"`` or ``"fps"``.
        normalize: centre + unit-sphere scale each returned cloud (default True: the V1
            projector assumes unit-sphere clouds).
        in_memory: load all clouds now (default) or read lazily.

    ``ds[i]`` -> (points ``[num_points, 3]`` float32 tensor, label int);
    ``ds.name`` is ``"scanobjectnn/<VARIANT>"``.
    """

    def __init__(
        self,
        root,
        variant: str = "PB_T50_RS",
        split: str = "test",
        num_points: int | None = 1024,
        sampling: str = "first",
        normalize: bool = True,
        in_memory: bool = True,
    ) -> None:
        variant = canonical_variant(variant)
        check_split(split)
        self.root = find_h5_root(root)
        path = self.root / VARIANT_FILES[variant][split]
        if not path.is_file():
            raise FileNotFoundError(
                f"ScanObjectNN {variant} {split} file {path} is missing; {self.root} must be "
                f"the official h5_files folder (with main_split/ and main_split_nobg/). {_HINT}"
            )
        super().__init__(
            name=f"scanobjectnn/{variant}",
            split=split,
            variant=variant,
            files=[path],
            classnames=SCANOBJECTNN_CLASSES,
            source_classes=len(SCANOBJECTNN_CLASSES),
            num_points=num_points,
            sampling=sampling,
            normalize=normalize,
            in_memory=in_memory,
            names_file="the 15 ScanObjectNN classes",
            hint=_HINT,
        )


def validate_folder(folder: Path) -> None:
    """Read every ScanObjectNN file present in ``folder`` (an ``h5_files`` folder); at least
    one variant must be there. ValueError / FileNotFoundError naming what is wrong."""
    found = 0
    for variant, files in VARIANT_FILES.items():
        for split, rel in files.items():
            if (folder / rel).is_file():
                ScanObjectNN(folder, variant, split, num_points=None, in_memory=True)
                found += 1
    if not found:
        raise FileNotFoundError(
            f"{folder} holds none of the ScanObjectNN files "
            f"{sorted({r for f in VARIANT_FILES.values() for r in f.values()})}"
        )
