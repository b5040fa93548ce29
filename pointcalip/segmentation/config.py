"""The config of `pointcalip segment` (torch-free: checked before any work starts).

    command: segment
    data: {name: shapenetpart, root: null, num_points: 2048, categories: null, parts: null}
    projector: {name: realistic}
    backbone: ViT-B/16
    templates: ["a depth map of the {part} of a {category}.", ...]   # {part}, optional {category}
    tune: {split: val, per_category: true, view_weights: true, points: 512, seed: 0,
           prompts: []}   # more part-text candidates than `templates`, chosen on tune.split
    rotation: {mode: none, seed: 0, up_axis: y}   # so3 / up: also the rotated protocol
"""
from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import ClassVar, List, Optional, Union

from ..config import ProjectorConfig, check_batch_size, check_model_keys, check_views
from ..core.config_loader import ConfigError, Section, non_negative, positive

DEFAULT_PART_TEMPLATES = [
    "a depth map of the {part} of a {category}.",
    "the {part} of a {category} seen as a depth image.",
    "a grey rendering of the {part} of a {category}.",
]


def read_part_sentences(path) -> dict:
    """A per-part sentence file (YAML or JSON): ``{category: {part: [sentences]}}``, checked;
    ValueError / OSError naming the file and the key."""
    from pathlib import Path

    from ..prompts import read_yaml

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"part sentence file {path} not found")
    data = read_yaml(path)
    if not isinstance(data, dict) or not data:
        raise ValueError(f"part sentence file {path} must map categories to {{part: [sentences]}}")
    for cat, parts in data.items():
        if not isinstance(parts, dict) or not parts:
            raise ValueError(f"part sentence file {path} key {cat!r}: expected a mapping "
                             f"{{part: [sentences]}}")
        for part, sentences in parts.items():
            if (isinstance(sentences, str) or not sentences
                    or not all(isinstance(x, str) and x.strip() for x in sentences)):
                raise ValueError(f"part sentence file {path} key {cat}.{part}: expected a "
                                 f"non-empty list of sentences")
    return data


def check_part_templates(templates) -> List[str]:
    """Part templates: non-empty strings each holding ``{part}`` (``{category}`` optional);
    or a per-part sentence file (its path as a string, see :func:`read_part_sentences`),
    returned as a one-entry list."""
    if isinstance(templates, str) and "{part}" not in templates:
        read_part_sentences(templates)
        return [templates]
    if isinstance(templates, str) or not templates:
        raise ValueError("must be a non-empty list of templates, each with {part}, e.g. "
                         "[\"a depth map of the {part} of a {category}.\"]")
    out = []
    for t in templates:
        if not isinstance(t, str) or "{part}" not in t:
            raise ValueError(f"every part template needs '{{part}}' (and may use "
                             f"'{{category}}'); got {t!r}")
        try:
            t.format(part="x", category="y")
        except (IndexError, KeyError, ValueError) as err:
            raise ValueError(f"part template {t!r} cannot be formatted ({err}); use only "
                             f"{{part}} and {{category}}, literal braces as '{{{{' '}}}}'"
                             ) from None
        out.append(t)
    return out


@dataclass
class SegDataConfig(Section):
    """Which shapes: ShapeNetPart, its folder, points per shape, categories, part names."""

    name: typing.Literal["shapenetpart"] = "shapenetpart"
    root: Optional[str] = None
    num_points: int = positive(2048)
    categories: Optional[List[str]] = None
    parts: Optional[str] = None     # part-name YAML; null: configs/shapenetpart_parts.yaml

    def validate(self) -> None:
        from ..datasets.shapenetpart import SHAPENETPART_CATEGORIES  # numpy only

        if self.categories is not None and not self.categories:
            raise ConfigError("categories", f"is empty: no shape to segment; use null (all 16) "
                                            f"or some of {', '.join(SHAPENETPART_CATEGORIES)}")
        for c in self.categories or []:
            if c not in SHAPENETPART_CATEGORIES:
                raise ConfigError("categories", f"holds {c!r}, not a ShapeNetPart category "
                                                f"({', '.join(SHAPENETPART_CATEGORIES)})")
        if self.parts is not None:
            from ..datasets.shapenetpart import load_part_names
            try:
                load_part_names(self.parts)
            except (OSError, ValueError) as err:
                raise ConfigError("parts", f"is not usable: {err}") from None


@dataclass
class SegTuneConfig(Section):
    """How dense CALIP's betas and view weights are tuned (docs/segmentation.md#protocol)."""

    split: typing.Literal["val", "test"] = "val"
    per_category: bool = True
    view_weights: bool = True
    points: int = positive(512)     # points per shape the search scores (seeded subsample)
    seed: int = non_negative(0)
    # which of dense CALIP's terms the search may turn on: s1 (beta2), s2 (beta3); the other
    # beta stays 0 (the terms study runs each alone)
    terms: List[str] = field(default_factory=lambda: ["s1", "s2"])
    surface: bool = False           # also record the beta2 x beta3 mIoU surface on tune.split
    # prompt search: more candidates besides `templates` (each a template list or a per-part
    # sentence file); each category (or all, per_category: false) takes the candidate whose
    # tuned betas and view weights score best on the tuning split; ties keep the earlier
    prompts: List[Union[str, List[str]]] = field(default_factory=list)

    def validate(self) -> None:
        bad = [t for t in self.terms if t not in ("s1", "s2")]
        if bad or len(set(self.terms)) != len(self.terms):
            raise ConfigError("terms", f"must list distinct terms among s1 (beta2) and s2 "
                                       f"(beta3), or be empty (dense CLIP); got {self.terms!r}")
        for i, candidate in enumerate(self.prompts):
            try:
                check_part_templates(candidate)
            except (ValueError, OSError) as err:
                raise ConfigError(f"prompts[{i}]", f"is not usable: {err}") from None


@dataclass
class SegRotationConfig(Section):
    """The rotated protocol: besides the upright run, the same protocol on every shape turned
    by a seeded random rotation (:mod:`.rotation`): ``so3`` (any rotation) or ``up`` (about
    ``up_axis`` only); TEST and the tuning split are turned alike, results side by side."""

    mode: typing.Literal["none", "so3", "up"] = "none"
    seed: int = non_negative(0)
    up_axis: typing.Literal["x", "y", "z"] = "y"     # ShapeNetPart's clouds stand on y


@dataclass
class SegmentConfig(Section):
    """`pointcalip segment --config`: dense CLIP and dense CALIP part segmentation."""

    COMMAND: ClassVar[str] = "segment"

    data: SegDataConfig = field(default_factory=SegDataConfig)
    projector: ProjectorConfig = field(default_factory=lambda: ProjectorConfig("realistic"))
    backbone: str = "ViT-B/16"
    # templates with {part} / {category}, or the path of a per-part sentence file
    templates: Union[str, List[str]] = field(default_factory=lambda: list(DEFAULT_PART_TEMPLATES))
    smooth: bool = True
    # a subset of the projector's views (indices), read from the store of all its views (no
    # re-encoding; the same pixels per view as a projector of only those views); null: all
    views: Optional[List[int]] = None
    visible_tolerance: Optional[float] = None   # null: the projector's default
    batch_size: int = positive(16)
    device: Optional[str] = None
    engine: str = "auto"
    cache_dir: Optional[str] = None
    output_dir: Optional[str] = None
    download: bool = True
    pictures: int = non_negative(2)             # shapes per category drawn (0: none)
    tune: SegTuneConfig = field(default_factory=SegTuneConfig)
    rotation: SegRotationConfig = field(default_factory=SegRotationConfig)
    name: str = "segment"

    def validate(self) -> None:
        check_model_keys(self, check_part_templates)
        check_batch_size(self.batch_size, self.projector.build())
        if self.views is not None:
            check_views(self.views, self.projector.build().num_views)
        if self.visible_tolerance is not None and not self.visible_tolerance > 0:
            raise ConfigError("visible_tolerance", f"must be a positive number or null, got "
                                                   f"{self.visible_tolerance!r}")
