"""Whether the data a run read is the complete published release, and if not, how it differs.

Every result states this per dataset (:func:`describe`): the clouds each split held against
the release's counts (facts of the releases, below), the categories an Objaverse-LVIS split
covers against LVIS's 1,156, the ModelNet40-C arrays present against its 75 + original, and,
where the release's file checksums are recorded (ModelNet40's MD5s in ``catalog.py``), whether
the files read match them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..core.digest import file_digest
from ..core.words import count
from .catalog import DATASETS

#: clouds per split of each published release (facts of the releases: ModelNet40's h5 release;
#: ModelNet10 inside it (test; its train count is not recorded here); ScanObjectNN's main split
#: (OBJ_BG / OBJ_ONLY: 2,309 / 581; PB_T50_RS, its augmented copies: 11,416 / 2,882);
#: ShapeNetPart's h5 release; ModelNet40-C: ModelNet40's test split in every array)
RELEASE_CLOUDS: Dict[str, Dict[str, int]] = {
    "modelnet40": {"train": 9840, "test": 2468},
    "modelnet10": {"test": 908},
    "scanobjectnn/OBJ_BG": {"train": 2309, "test": 581},
    "scanobjectnn/OBJ_ONLY": {"train": 2309, "test": 581},
    "scanobjectnn/PB_T50_RS": {"train": 11416, "test": 2882},
    "shapenetpart": {"train": 12137, "val": 1870, "test": 2874},
    "modelnet40c": {"test": 2468},
}

_MD5: Dict[tuple, str] = {}            # (path, size, mtime) -> MD5, once per process


@dataclass
class DataStatement:
    """What a run read of one dataset against its published release."""

    dataset: str
    complete: bool
    counts: Dict[str, int]                 # split -> clouds (or shapes) read
    differences: List[str] = field(default_factory=list)
    checksums: str = "none recorded for this release"

    def to_dict(self) -> dict:
        return asdict(self)

    def text(self) -> str:
        """One line for results.md."""
        held = ", ".join(f"{split} {n:,}" for split, n in self.counts.items())
        if self.complete:
            return f"{self.dataset}: the complete release ({held}; checksums: {self.checksums})"
        return (f"{self.dataset}: NOT the complete release: {'; '.join(self.differences)} "
                f"(checksums: {self.checksums})")


def _md5(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _MD5:
        _MD5[key] = file_digest(path, "md5")
    return _MD5[key]


def _checksums(name: str, files: Sequence[Path]) -> str:
    """Whether ``files`` match the release's recorded MD5s (by file name)."""
    base = name.split("/")[0]
    entry = DATASETS[base] if base in DATASETS else None
    source = entry.meta.get("source") if entry is not None else None
    recorded = dict(getattr(source, "file_md5", {}) or {})
    mine = [Path(f) for f in files if Path(f).name in recorded and Path(f).is_file()]
    if not recorded or not mine:
        return "none recorded for this release"
    differ = [f.name for f in mine if _md5(f) != recorded[f.name]]
    if differ:
        return f"{len(differ)} of {count(len(mine), 'file')} differ from the release's MD5 ({', '.join(differ)})"
    return f"{count(len(mine), 'file')} match the release's MD5"


def describe(label: str, splits: Dict[str, object], release_key: Optional[str] = None,
             extra: Sequence[str] = ()) -> DataStatement:
    """The statement for the ``splits`` ({split: dataset}) a run read of one dataset.
    ``release_key``: the key of :data:`RELEASE_CLOUDS` (default: the datasets' ``name``);
    ``extra``: further differences the caller knows of."""
    first = next(iter(splits.values()))
    key = release_key or getattr(first, "name", label)
    release = RELEASE_CLOUDS.get(key, {})
    counts = {split: len(ds) for split, ds in splits.items()}
    differences = [f"{split} holds {count(n, 'cloud', spec=',')}; the release has "
                   f"{release[split]:,}"
                   for split, n in counts.items() if split in release and n != release[split]]
    differences += list(extra)
    if key == "objaverse_lvis":
        differences += _lvis_differences(first)
    files = [f for ds in splits.values() for f in getattr(ds, "files", [])]
    checksums = _checksums(key, files)
    if "differ" in checksums:
        differences.append("files differ from the release's checksums")
    known = bool(release) or key == "objaverse_lvis"
    if not known:
        differences.append("the release's size is not recorded here: not checked")
    return DataStatement(label, not differences, counts, differences, checksums)


def splits_statement(label: str, splits) -> DataStatement:
    """The statement of a zero-shot run's splits (``ZeroShotSplits``): TEST, and TRAIN when
    the tuning set is a validation part of it."""
    read = {"test": splits.test}
    if splits.tuning.split == "val":
        read["train"] = splits.tuning.dataset
    return describe(label, read)


def _lvis_differences(dataset) -> List[str]:
    """How an Objaverse-LVIS split's categories differ from the release's 1,156: how many have
    objects (accuracy is then over those classes only) and which are not LVIS categories."""
    from .objaverse_lvis import release_categories

    release = release_categories()
    present = {dataset.categories[i] for i in set(dataset.labels.tolist())}
    foreign = sorted(present - set(release))
    found = len(present) - len(foreign)
    differences = []
    if found != len(release):
        classes = count(len(present), "class", spec=",")
        differences.append(f"the objects cover {found:,} of the {len(release):,} LVIS categories "
                           f"(accuracy is over the {classes} present)")
    if foreign:
        shown = ", ".join(map(repr, foreign[:5])) + (", ..." if len(foreign) > 5 else "")
        differences.append(f"not LVIS categories ({count(len(foreign), 'category', spec=',')}): "
                           f"{shown}")
    return differences


def modelnet40c_differences(root: Path, expected: Sequence[str]) -> List[str]:
    """The ModelNet40-C arrays (of ``expected``) missing from ``root``."""
    missing = [name for name in expected if not (Path(root) / name).is_file()]
    return [f"{len(missing)} of its {count(len(expected), 'file')} are missing "
            f"({', '.join(missing[:5])}"
            f"{', ...' if len(missing) > 5 else ''})"] if missing else []


def statements_text(statements: Sequence[DataStatement]) -> List[str]:
    """``- Data: ...`` lines for results.md, one per dataset."""
    return [f"- Data: {s.text()}" for s in statements]


__all__ = ["DataStatement", "RELEASE_CLOUDS", "describe", "modelnet40c_differences",
           "splits_statement", "statements_text"]
