"""ModelNet-C (jiawei-ren/ModelNet-C): ModelNet40's 2,468 test clouds under 7 corruptions x 5
levels, one h5 file per set, in the folder ``modelnet_c`` (``modelnet_c.zip``; Point-PRC and
Point-Cache distribute the same folder with a ``shape_names.txt``):

* ``clean.h5``: the uncorrupted clouds (the first 1,024 points of ModelNet40 TEST);
* ``{corruption}_{level}.h5``, level 0..4 (as the files are named), for ``scale``, ``jitter``,
  ``rotate``, ``dropout_global``, ``dropout_local``, ``add_global``, ``add_local``.

Each file: ``data`` ``[2468, P, 3]`` (float32, or float64 where the generator's arithmetic left
it so), ``label`` int64 ``[2468, 1]`` in ModelNet40's class order. ``P`` differs per file (the
generator's ``build_modelnetc/corrupt_utils.py``): 1,024 for clean / scale / jitter / rotate,
768..256 for dropout_global, 924..524 for dropout_local, 1,034..1,074 for add_global and
1,124..1,524 for add_local; every stored point is served by default.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from ..prompts import load_classnames
from .catalog import DATASETS
from .corrupted_h5 import CorruptedH5Set, check_setting, folder_classnames
from ..core.words import count

ENTRY = DATASETS["modelnet_c"]
CORRUPTIONS = ENTRY.corruptions            # the 7 names, declared in the catalog
SEVERITIES = ENTRY.severities              # 0..4, as the files are named
CLEAN = ENTRY.clean_set                    # "clean"
FOLDER = "modelnet_c"
_HINT = ("get ModelNet-C (modelnet_c.zip: clean.h5 and <corruption>_<level>.h5, see "
         "github.com/jiawei-ren/ModelNet-C) and run `pointcalip download modelnet_c --from PATH`")


def data_file(corruption: str, severity: Optional[int]) -> str:
    """``clean.h5`` or ``{corruption}_{severity}.h5``."""
    return f"{CLEAN}.h5" if corruption == CLEAN else f"{corruption}_{severity}.h5"


def expected_files() -> list[str]:
    """The 36 files of a complete release: clean.h5 and 7 corruptions x 5 levels."""
    return [data_file(CLEAN, None)] + [data_file(c, s) for c in CORRUPTIONS for s in SEVERITIES]


def find_root(root) -> Path:
    """The ``modelnet_c`` folder: ``root`` itself or ``root/modelnet_c``."""
    root = Path(root).expanduser()
    if not (root / data_file(CLEAN, None)).is_file() and (root / FOLDER).is_dir():
        root = root / FOLDER
    if not root.is_dir():
        raise FileNotFoundError(f"ModelNet-C folder {root} does not exist; {_HINT}")
    return root


class ModelNetC(CorruptedH5Set):
    """One ModelNet-C set: ``corruption`` in :data:`CORRUPTIONS` at ``severity`` 0..4, or
    ``"clean"`` (no severity); 2,468 clouds, ModelNet40's 40 classes.

    Args:
        root: the ``modelnet_c`` folder (or its parent).
        split: ``"test"`` only.
        num_points: ``None`` (default): every stored point; an int: first N (or ``sampling``).
        normalize: centre + unit-sphere scale each cloud (default False: as published).
        classnames: the class list the labels index (default: the folder's shape_names.txt,
            else ModelNet40's 40 names).
    """

    def __init__(self, root, split: str = "test", corruption: str = CLEAN,
                 severity: Optional[int] = None, num_points: Optional[int] = None,
                 sampling: str = "first", normalize: bool = False, in_memory: bool = True,
                 classnames: Optional[Sequence[str]] = None) -> None:
        if split != "test":
            raise ValueError(f"ModelNet-C has only a test split (got {split!r}); tune on clean "
                             f"ModelNet40 validation (TRAIN) instead")
        self.corruption, self.severity = check_setting("ModelNet-C", corruption, severity,
                                                       CORRUPTIONS, SEVERITIES, CLEAN)
        self.root = find_root(root)
        self.variant = CLEAN if self.severity is None else f"{self.corruption}_{self.severity}"
        self.name = f"modelnet_c/{self.variant}"
        path = self.root / data_file(self.corruption, self.severity)
        if not path.is_file():
            raise FileNotFoundError(f"ModelNet-C file {path} is missing; {_HINT}")
        names = classnames if classnames is not None else \
            folder_classnames(self.root, load_classnames("modelnet40"))
        self._read(path, names, num_points, sampling, normalize, _HINT, "ModelNet40's 40 classes")


def validate_folder(folder: Path) -> None:
    """A complete ModelNet-C folder: all 36 files, each read and checked (keys, shape, dtype,
    finite values, labels in range) with as many clouds as clean.h5."""
    folder = Path(folder)
    missing = [name for name in expected_files() if not (folder / name).is_file()]
    if missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise FileNotFoundError(f"ModelNet-C folder {folder} lacks {len(missing)} of its "
                                f"{count(len(expected_files()), 'file')}: {shown}")
    clean = ModelNetC(folder, corruption=CLEAN)
    for c in CORRUPTIONS:
        for s in SEVERITIES:
            ds = ModelNetC(folder, corruption=c, severity=s)
            if len(ds) != len(clean):
                raise ValueError(f"{folder / data_file(c, s)} holds {count(len(ds), 'cloud')} but "
                                 f"{data_file(CLEAN, None)} holds {len(clean)}")
