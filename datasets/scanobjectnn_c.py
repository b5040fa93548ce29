"""ScanObjectNN-C as Point-Cache / Point-PRC distribute it (folder ``sonn_c``): the test split
of each ScanObjectNN variant under ModelNet-C's 7 corruptions x 5 levels, one h5 per set:

* ``{obj_bg,obj_only,hardest}/{corruption}_{level}.h5``, level 0..4 (``hardest`` is
  PB_T50_RS); ``clean.h5`` beside them is read when present (the clean row of a benchmark
  otherwise comes from clean ScanObjectNN TEST);
* ``shape_names.txt`` (the 15 ScanObjectNN classes, label order) when present.

Each file: ``data`` ``[n, P, 3]`` floating (581 clouds for obj_bg / obj_only, 2,882 for
hardest), ``label`` ``[n]`` or ``[n, 1]`` integers; ``P`` differs per file and every stored
point is served. Clouds are centred and unit-sphere scaled by default, as the clean
ScanObjectNN loader does (the scans are not normalised; the V1 projector assumes it).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from ..prompts import load_classnames
from .catalog import DATASETS
from .corrupted_h5 import CorruptedH5Set, check_setting, folder_classnames
from ..core.words import count

ENTRY = DATASETS["scanobjectnn_c"]
CORRUPTIONS = ENTRY.corruptions
SEVERITIES = ENTRY.severities              # 0..4, as the files are named
CLEAN = ENTRY.clean_set                    # "clean" (optional in this release)
VARIANTS = ENTRY.variants                  # folder -> clean ScanObjectNN variant
FOLDER = "sonn_c"
_HINT = ("get ScanObjectNN-C (Point-PRC's new-3ddg-benchmarks/xset/corruption sonn_c folder: "
         "obj_bg/, obj_only/, hardest/ with <corruption>_<level>.h5) and run "
         "`pointcalip download scanobjectnn_c --from PATH`")


def data_file(variant: str, corruption: str, severity: Optional[int]) -> str:
    """``{variant}/clean.h5`` or ``{variant}/{corruption}_{severity}.h5``."""
    name = f"{CLEAN}.h5" if corruption == CLEAN else f"{corruption}_{severity}.h5"
    return f"{variant}/{name}"


def canonical_variant(variant) -> str:
    """``"OBJ_BG"``, ``"obj-bg"``, ``"PB_T50_RS"`` ... -> the folder name (obj_bg / hardest)."""
    key = str(variant).strip().lower().replace("-", "_")
    by_clean = {v.lower(): k for k, v in VARIANTS.items()}
    key = by_clean.get(key, key)
    if key not in VARIANTS:
        raise ValueError(f"unknown ScanObjectNN-C variant {variant!r}; use one of {list(VARIANTS)}")
    return key


def find_root(root) -> Path:
    """The ``sonn_c`` folder: ``root`` itself or ``root/sonn_c``."""
    root = Path(root).expanduser()
    if not any((root / v).is_dir() for v in VARIANTS) and (root / FOLDER).is_dir():
        root = root / FOLDER
    if not root.is_dir():
        raise FileNotFoundError(f"ScanObjectNN-C folder {root} does not exist; {_HINT}")
    return root


def has_clean(root, variant) -> bool:
    """Whether the release at ``root`` holds ``{variant}/clean.h5``."""
    return (find_root(root) / data_file(canonical_variant(variant), CLEAN, None)).is_file()


class ScanObjectNNC(CorruptedH5Set):
    """One ScanObjectNN-C set of one variant: ``corruption`` at ``severity`` 0..4, or
    ``"clean"`` where the release holds it; the 15 ScanObjectNN classes.

    Args:
        root: the ``sonn_c`` folder (or its parent).
        variant: ``obj_bg``, ``obj_only`` or ``hardest`` (or OBJ_BG / OBJ_ONLY / PB_T50_RS).
        num_points: ``None`` (default): every stored point; an int: first N (or ``sampling``).
        normalize: centre + unit-sphere scale each cloud (default True, as ScanObjectNN).
        classnames: the class list the labels index (default: shape_names.txt, else the 15).
    """

    def __init__(self, root, variant: str = "hardest", split: str = "test",
                 corruption: str = CLEAN, severity: Optional[int] = None,
                 num_points: Optional[int] = None, sampling: str = "first",
                 normalize: bool = True, in_memory: bool = True,
                 classnames: Optional[Sequence[str]] = None) -> None:
        if split != "test":
            raise ValueError(f"ScanObjectNN-C has only a test split (got {split!r}); tune on "
                             f"clean ScanObjectNN validation (TRAIN) instead")
        self.variant = canonical_variant(variant)
        self.corruption, self.severity = check_setting("ScanObjectNN-C", corruption, severity,
                                                       CORRUPTIONS, SEVERITIES, CLEAN)
        self.root = find_root(root)
        tag = CLEAN if self.severity is None else f"{self.corruption}_{self.severity}"
        self.name = f"scanobjectnn_c/{self.variant}/{tag}"
        path = self.root / data_file(self.variant, self.corruption, self.severity)
        if not path.is_file():
            raise FileNotFoundError(f"ScanObjectNN-C file {path} is missing; {_HINT}")
        names = classnames if classnames is not None else \
            folder_classnames(self.root, load_classnames("scanobjectnn"))
        self._read(path, names, num_points, sampling, normalize, _HINT,
                   "the 15 ScanObjectNN classes")


def validate_folder(folder: Path) -> None:
    """A ScanObjectNN-C folder: at least one variant folder, each present variant complete
    (every corruption x level; clean.h5 optional), every file read and checked, the files of a
    variant holding as many clouds as each other."""
    folder = Path(folder)
    present = [v for v in VARIANTS if (folder / v).is_dir()]
    if not present:
        raise FileNotFoundError(f"{folder} holds none of the ScanObjectNN-C folders {list(VARIANTS)}")
    for variant in present:
        names = [data_file(variant, c, s) for c in CORRUPTIONS for s in SEVERITIES]
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
            raise FileNotFoundError(f"ScanObjectNN-C folder {folder / variant} lacks "
                                    f"{len(missing)} of its {count(len(names), 'file')}: {shown}")
        sizes = {}
        settings = [(c, s) for c in CORRUPTIONS for s in SEVERITIES]
        if has_clean(folder, variant):
            settings.insert(0, (CLEAN, None))
        for c, s in settings:
            sizes[data_file(variant, c, s)] = len(ScanObjectNNC(folder, variant, corruption=c, severity=s))
        first = next(iter(sizes))
        for name, n in sizes.items():
            if n != sizes[first]:
                raise ValueError(f"{folder / name} holds {count(n, 'cloud')} but {folder / first} "
                                 f"holds {sizes[first]}; the files come from different releases")
