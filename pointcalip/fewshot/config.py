"""`pointcalip fewshot` configuration: the shared sections plus one section per method.

``FewShotConfig`` is built from the method registry (fewshot/methods/): every method that
declares a ``section`` gets a field of that name and type, and ``methods`` accepts the
registered names. The defaults equal configs/fewshot_defaults.yaml (a test checks it), where
every method's recipe and budget is written out for users to read and override.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar, List, Union

from ..config import (MAX_AUGMENTED_CLOUDS, ConfigError, ProjectorConfig, RunConfig, Section,
                      check_size, non_negative)
from .methods import method_entries, method_names
from .recipe import TrainConfig
from ..core.words import count

__all__ = ["METHODS", "AugmentConfig", "FewShotConfig", "TrainConfig"]

#: every method's name, in order (the default ``methods``, and ``all``)
METHODS = tuple(method_names())


@dataclass
class AugmentConfig(Section):
    """A bank of ``copies`` augmented copies of each shot (per-axis scale in ``scale``, per-axis
    shift within +-``shift``, point shuffle), encoded once; each epoch trains on one of them
    or the original, drawn per shot. 0 copies: no augmentation."""

    copies: int = non_negative(0)
    seed: int = non_negative(0)
    scale: List[float] = field(default_factory=lambda: [2 / 3, 3 / 2])
    shift: float = non_negative(0.2)

    def validate(self) -> None:
        if len(self.scale) != 2 or not 0 < self.scale[0] <= self.scale[1]:
            raise ConfigError("scale", f"must be [low, high] with 0 < low <= high, got {self.scale}")


@dataclass
class _FewShotFields(RunConfig):
    """The keys of `pointcalip fewshot` that are not a method's section."""

    COMMAND: ClassVar[str] = "fewshot"

    projector: ProjectorConfig = field(default_factory=lambda: ProjectorConfig("pointclip", {"views": "fewshot"}))
    templates: Union[str, List[str]] = "pointclip_fewshot"
    shots: List[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    seeds: List[int] = field(default_factory=lambda: [1, 2, 3])
    methods: List[str] = field(default_factory=lambda: list(METHODS))
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def validate(self) -> None:
        super().validate()
        for key, values, low in (("shots", self.shots, 1), ("seeds", self.seeds, 0)):
            if not values or min(values) < low or len(set(values)) != len(values):
                raise ConfigError(key, f"must be a list of distinct integers >= {low}, got {values}")
        unknown = [m for m in self.methods if m not in METHODS]
        if not self.methods or unknown:
            raise ConfigError("methods", f"must list methods among {', '.join(METHODS)} (or "
                                         f"`all`), got {self.methods}")
        if self.tune.split != "val":
            raise ConfigError("tune.split", "must be 'val': few-shot selection and searches use a "
                                            "validation part of TRAIN, never the test split")
        shots, classes = max(self.shots), self.data.num_classes
        check_size("augment.copies", self.augment.copies * shots * classes, MAX_AUGMENTED_CLOUDS,
                   "augmented clouds to "
                   "encode", f"{count(self.augment.copies, 'copy')} x {count(shots, 'shot')} x "
                                                 f"{count(classes, 'class')}")


def _method_sections() -> list:
    """(name, section class, field) of every method that declares a config section."""
    return [(e.name, e.section, field(default_factory=e.section))
            for e in method_entries() if e.section is not None]


#: `pointcalip fewshot`: every method at every shot count and seed, honestly selected. The
#: keys of ``_FewShotFields``, one section per registered method (``calip_fs``, ``adapter``,
#: ``tip``, ``tip_f``: see each method's module), and ``name``.
FewShotConfig = dataclasses.make_dataclass(
    "FewShotConfig", [*_method_sections(), ("name", str, field(default="fewshot"))],
    bases=(_FewShotFields,), namespace={"__module__": __name__, "__doc__": (
        "`pointcalip fewshot`: every method at every shot count and seed, honestly selected; "
        "one section per registered few-shot method (fewshot/methods/).")})
