"""ModelNet40 and ModelNet10 from the published ``modelnet40_ply_hdf5_2048`` h5 release.

Folder layout (docs/datasets.md#folder-layouts): ``shape_names.txt`` (class names, one a line, in label
order), ``train_files.txt`` / ``test_files.txt`` (h5 files, one a line, published as
``data/modelnet40_ply_hdf5_2048/ply_data_train0.h5``: resolved by file name inside the
folder) and ``ply_data_{train,test}{i}.h5`` with ``data`` float32 ``[n, 2048, 3]`` and
``label`` ``[n, 1]``.
"""
from __future__ import annotations

import logging
import re
import unicodedata
from pathlib import Path

import numpy as np

from ..core.paths import confined
from ..core.words import count
from ..prompts import check_classnames, load_classnames
from .base import H5CloudDataset, check_split

log = logging.getLogger(__name__)

MODELNET40_CLASSES = load_classnames("modelnet40")
MODELNET10_CLASSES = load_classnames("modelnet10")
MODELNET40_FOLDER = "modelnet40_ply_hdf5_2048"
_HINT40 = "Get a good copy with `pointcalip download modelnet40 --force` (or --from ZIP)."


def _find_root(root, expected: str = MODELNET40_FOLDER) -> Path:
    """The h5 folder: ``root`` itself, or ``root/modelnet40_ply_hdf5_2048`` if that is where
    ``shape_names.txt`` lives."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"ModelNet folder {root} does not exist; pass the {expected} folder "
            f"(get it with `pointcalip download modelnet40`)"
        )
    if not (root / "shape_names.txt").is_file() and (root / expected / "shape_names.txt").is_file():
        return root / expected
    return root


def read_shape_names(root: Path) -> list[str]:
    """Class names from ``root/shape_names.txt``, one a line, order kept. A UTF-8 byte-order
    mark, Windows (CRLF) or old Mac (CR) line ends, spaces and tabs around a name and blank
    lines are ignored; a name holding a tab, another odd space (e.g. U+00A0), two spaces in
    a row or a control character is an error naming the line."""
    path = root / "shape_names.txt"
    if not path.is_file():
        raise FileNotFoundError(
            f"missing {path}: {root} is not a {MODELNET40_FOLDER} folder. {_HINT40}"
        )
    try:
        text = path.read_bytes().decode("utf-8-sig")  # -sig: drop a byte-order mark
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text ({err}); save it as UTF-8") from None
    lines: dict[str, int] = {}  # name -> line number, in file order
    # Split on line ends only: str.splitlines() would also split on form feeds, U+2028, ...
    for i, line in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), 1):
        name = line.strip(" \t")
        odd = next((c for c in name if c != " " and (c.isspace() or not c.isprintable())), None)
        if odd is not None or "  " in name:
            what = (f"U+{ord(odd):04X} ({unicodedata.name(odd, 'a control character')})"
                    if odd is not None else "two spaces in a row")
            raise ValueError(
                f"{path} line {i}: class name {name!r} contains {what}; write one class name "
                f"a line, in plain characters (e.g. night_stand)"
            )
        if name in lines:
            raise ValueError(f"{path} lists {name!r} twice (lines {lines[name]} and {i}); it "
                             f"must hold each class once")
        if name:
            lines[name] = i
    return check_classnames(list(lines), where=str(path)) if lines else []


def split_files(root: Path, split: str) -> list[Path]:
    """The h5 files of ``split`` listed in ``{split}_files.txt``, each resolved by its file
    name inside ``root`` (the published lists hold ``data/...``-prefixed paths). Without a
    list file, the sorted ``ply_data_{split}*.h5`` files in ``root`` are used."""
    check_split(split)
    listing = root / f"{split}_files.txt"
    if not listing.is_file():
        found = sorted(
            root.glob(f"ply_data_{split}*.h5"),
            key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)],
        )
        if not found:
            raise FileNotFoundError(
                f"missing {listing} (and no ply_data_{split}*.h5 files in {root}). {_HINT40}"
            )
        log.warning("%s missing; using %s", listing, [p.name for p in found])
        return found
    files = []
    for i, line in enumerate(listing.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        path = confined(root, Path(line.replace("\\", "/")).name, f"{listing} line {i}")
        if not path.is_file():
            raise FileNotFoundError(
                f"{listing} lists {line!r} but {path} does not exist. {_HINT40}"
            )
        files.append(path)
    if not files:
        raise ValueError(f"{listing} lists no h5 files. {_HINT40}")
    return files


class ModelNet40(H5CloudDataset):
    """ModelNet40 h5 release: 9,840 train / 2,468 test clouds, 40 classes.

    Args:
        root: the ``modelnet40_ply_hdf5_2048`` folder (or its parent).
        split: ``"train"`` or ``"test"``.
        num_points: points per cloud (first N, the published protocol; ``None``: all 2048).
        sampling: ``"first"`` or ``"fps"`` (farthest-point sampling from index 0).
        normalize: centre + unit-sphere scale each returned cloud (the release is already
            centred inside the unit sphere, so off by default).
        in_memory: load all clouds now (default) or read lazily from the h5 files.

    ``classnames`` come from ``shape_names.txt`` (underscores kept, e.g. ``"flower_pot"``).
    ``ds[i]`` -> (points ``[num_points, 3]`` float32 tensor, label int).
    """

    def __init__(
        self,
        root,
        split: str = "test",
        num_points: int | None = 1024,
        sampling: str = "first",
        normalize: bool = False,
        in_memory: bool = True,
    ) -> None:
        check_split(split)
        self.root = _find_root(root)
        names = read_shape_names(self.root)
        if len(names) == 10 and set(names) == set(MODELNET10_CLASSES):
            raise ValueError(
                f"{self.root / 'shape_names.txt'} lists the 10 ModelNet10 classes: "
                f"load this folder with ModelNet10"
            )
        if names != MODELNET40_CLASSES:
            log.warning(
                "%s does not hold the 40 published ModelNet40 classes in order (%s); "
                "using its names", self.root / "shape_names.txt", count(len(names), "name")
            )
        super().__init__(
            name="modelnet40",
            split=split,
            files=split_files(self.root, split),
            classnames=names,
            source_classes=len(names),
            num_points=num_points,
            sampling=sampling,
            normalize=normalize,
            in_memory=in_memory,
            names_file=str(self.root / "shape_names.txt"),
            hint=_HINT40,
        )


class ModelNet10(H5CloudDataset):
    """ModelNet10: the 10-class subset of a ModelNet40 folder, relabelled 0..9 in the order
    bathtub, bed, chair, desk, dresser, monitor, night_stand, sofa, table, toilet (908 test
    clouds on the published release), or a ModelNet10 folder laid out like ModelNet40's
    (detected by its ``shape_names.txt`` holding 10 names). Arguments as `ModelNet40`.
    """

    def __init__(
        self,
        root,
        split: str = "test",
        num_points: int | None = 1024,
        sampling: str = "first",
        normalize: bool = False,
        in_memory: bool = True,
    ) -> None:
        check_split(split)
        self.root = _find_root(root)
        names = read_shape_names(self.root)
        names_file = self.root / "shape_names.txt"
        if len(names) == 10:
            if set(names) != set(MODELNET10_CLASSES):
                log.warning("%s holds 10 names that differ from ModelNet10's; using them", names_file)
            classnames, label_map = names, None
        else:
            missing = [c for c in MODELNET10_CLASSES if c not in names]
            if missing:
                raise ValueError(
                    f"{names_file} lacks the ModelNet10 classes {missing}; pass a ModelNet40 "
                    f"folder (or a ModelNet10 folder whose shape_names.txt has 10 names)"
                )
            label_map = np.full(len(names), -1, dtype=np.int64)
            for new, cls in enumerate(MODELNET10_CLASSES):
                label_map[names.index(cls)] = new
            classnames = list(MODELNET10_CLASSES)
        super().__init__(
            name="modelnet10",
            split=split,
            files=split_files(self.root, split),
            classnames=classnames,
            source_classes=len(names),
            label_map=label_map,
            num_points=num_points,
            sampling=sampling,
            normalize=normalize,
            in_memory=in_memory,
            names_file=str(names_file),
            hint=_HINT40,
        )


def validate_folder(folder: Path) -> None:
    """Read every cloud of both splits of a ``modelnet40_ply_hdf5_2048`` folder (or a
    ModelNet10 one: 10 names in ``shape_names.txt``): catches truncation and NaNs."""
    names = read_shape_names(folder)
    cls = ModelNet10 if len(names) == 10 else ModelNet40
    for split in ("train", "test"):
        cls(folder, split=split, num_points=None, in_memory=True)
