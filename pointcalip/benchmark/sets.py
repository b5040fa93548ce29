"""The evaluated sets of a robustness benchmark (ModelNet40-C, ModelNet-C, ScanObjectNN-C),
enumerated the same way for every one, from its catalog entry (no torch here; a set's clouds
are read only when it is opened):

    for s in robustness_sets("modelnet_c", root):              # clean first, then c x s
        data = s.open(classnames=clean_test.classnames)          # a CloudSet, every stored point
        ... s.name ("clean", "jitter_2"), s.corruption, s.severity, s.is_clean

``robustness_sets(name, root, variant=..., corruptions=..., severities=...)`` lists:

* the uncorrupted set of the release, when it has one (``original`` for ModelNet40-C,
  ``clean`` for ModelNet-C; ScanObjectNN-C's ``clean.h5`` only where the folder holds it),
  with ``corruption`` and ``severity`` None;
* then every corruption (catalog order, or ``corruptions``) x severity (as the files name
  them: 1..5 for ModelNet40-C, 0..4 for the other two, or ``severities``), named
  ``<corruption>_<severity>``.

Opening a set serves every stored point by default (``num_points=None``): the files of one
release differ in point count (ModelNet40-C's background set stores 1,046..1,075 points per
cloud, its lidar set 768) and the official evaluations feed them whole.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

from ..datasets.catalog import DATASETS

#: the catalog's robustness benchmarks
ROBUSTNESS_DATASETS = tuple(n for n in DATASETS.names()
                            if DATASETS[n].meta.get("task") == "robustness")


def robustness_entry(name: str):
    """The catalog entry of robustness benchmark ``name``; ValueError naming the known ones."""
    key = str(name).strip().lower()
    if key not in ROBUSTNESS_DATASETS:
        raise ValueError(f"unknown robustness benchmark {name!r}; use one of "
                         f"{', '.join(ROBUSTNESS_DATASETS)}")
    return DATASETS[key]


def clean_variant(name: str, variant: Optional[str]) -> Optional[str]:
    """The variant of the clean dataset (``tuned_on``) that benchmark ``name``'s ``variant``
    corrupts (scanobjectnn_c ``hardest`` -> scanobjectnn ``PB_T50_RS``); None without variants."""
    variants = robustness_entry(name).meta.get("variants")
    if variants is None:
        return None
    return variants[check_variant(name, variant)]


def check_variant(name: str, variant: Optional[str]) -> Optional[str]:
    """``variant`` of benchmark ``name`` in its folder spelling (obj_bg / hardest), accepting the
    clean dataset's spelling too (OBJ_BG, PB_T50_RS); None where the benchmark has none."""
    variants = robustness_entry(name).meta.get("variants")
    if variants is None:
        if variant is not None:
            raise ValueError(f"{name} has no variants (got variant {variant!r})")
        return None
    if variant is None:
        raise ValueError(f"{name} needs a variant: one of {', '.join(variants)}")
    key = str(variant).strip().lower().replace("-", "_")
    key = {v.lower(): k for k, v in variants.items()}.get(key, key)
    if key not in variants:
        raise ValueError(f"unknown {name} variant {variant!r}; use one of {', '.join(variants)}")
    return key


@dataclass(frozen=True)
class RobustnessSet:
    """One evaluated set: the benchmark, its folder and variant, and which corruption at which
    severity (both None for the uncorrupted set)."""

    benchmark: str
    root: Path
    name: str
    corruption: Optional[str]
    severity: Optional[int]
    variant: Optional[str] = None

    @property
    def is_clean(self) -> bool:
        return self.corruption is None

    def open(self, classnames: Optional[Sequence[str]] = None, num_points: Optional[int] = None,
             sampling: str = "first"):
        """The set's dataset (a CloudSet: ``labels``, ``points(rows)``, ``settings``...), read
        now; ``num_points=None`` serves every stored point; ``classnames``: the list the labels
        index (the clean dataset's, so that text features are shared)."""
        from ..datasets import build_dataset

        entry = DATASETS[self.benchmark]
        kwargs = {"num_points": num_points, "sampling": sampling}
        if classnames is not None:
            kwargs["classnames"] = list(classnames)
        if self.variant is not None:
            kwargs["variant"] = self.variant
        corruption = entry.clean_set if self.is_clean else self.corruption
        return build_dataset(self.benchmark, self.root, "test", corruption=corruption,
                             severity=self.severity, **kwargs)


def has_clean_set(name: str, root, variant: Optional[str] = None) -> bool:
    """Whether the release at ``root`` holds its uncorrupted set (always, except where the
    catalog says it is optional: ScanObjectNN-C's ``<variant>/clean.h5``)."""
    entry = robustness_entry(name)
    if not entry.meta.get("optional_clean"):
        return True
    from ..datasets.catalog import load_target
    module = entry.target.partition(":")[0]
    return load_target(f"{module}:has_clean")(root, variant)


def robustness_sets(name: str, root, variant: Optional[str] = None,
                    corruptions: Optional[Sequence[str]] = None,
                    severities: Optional[Sequence[int]] = None,
                    include_clean: bool = True) -> List[RobustnessSet]:
    """Every set of benchmark ``name`` under ``root`` (its folder or the folder above): the
    uncorrupted one first (when the release holds it and ``include_clean``), then each
    corruption x severity. ``corruptions`` / ``severities``: a subset (None: all), checked."""
    entry = robustness_entry(name)
    variant = check_variant(entry.name, variant)
    corruptions = list(entry.corruptions) if corruptions is None else list(corruptions)
    severities = list(entry.severities) if severities is None else list(severities)
    bad = [c for c in corruptions if c not in entry.corruptions]
    if bad:
        raise ValueError(f"unknown {entry.name} corruptions {bad}; use some of "
                         f"{', '.join(entry.corruptions)}")
    bad = [s for s in severities if s not in entry.severities]
    if bad:
        raise ValueError(f"{entry.name} severities {bad} do not exist; it has "
                         f"{list(entry.severities)}")
    root = Path(root).expanduser()
    sets = []
    if include_clean and has_clean_set(entry.name, root, variant):
        sets.append(RobustnessSet(entry.name, root, entry.clean_set, None, None, variant))
    sets += [RobustnessSet(entry.name, root, f"{c}_{s}", c, s, variant)
             for c in corruptions for s in severities]
    return sets
