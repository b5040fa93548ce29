"""`pointcalip ablate` configuration: the settings of the run being ablated plus the studies.

Classification: an ablation config is a zero-shot config (dataset, projector, backbone,
templates, views, tuning, store; the same keys, checks and defaults) with ``studies:``, the
list of studies to run, and one section of options per study (``views_study:``,
``terms_study:``, ...). The shipped ``configs/ablation_<study>.yaml`` files each run one study;
``studies: [views, terms]`` runs several, and so does ``--config ablation_views
ablation_terms`` (loading joins the ``studies:`` lists of the files; see
:func:`studies_of_files`).

Part segmentation: a :class:`SegAblationConfig` is a segment config (``configs/
shapenetpart.yaml``: the same keys, checks and defaults) with ``studies:`` and the sections of
the studies that apply to segmentation; ``pointcalip ablate --config shapenetpart --set
studies=[terms]`` loads one (:func:`ablation_config_class` picks the class from the files'
``command:``). Each study's registry entry says whether it applies to segmentation.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, List, Optional, Sequence, Union

from ..config import (ConfigError, ProjectorConfig, Section, ZeroShotConfig, check_backbone,
                      check_views, load_yaml_tree, resolve_config_path)
from ..core.config_loader import load_config, merged_config
from ..core.registry import Registry
from ..prompts import load_templates
from ..segmentation.config import SegmentConfig, check_part_templates

#: every study, in the order a config that lists several runs them: each study's section
#: class below declares its name, its runner (``"module:function(ctx)"``, imported when the
#: study runs, so listing studies imports no torch), its section key (``<name>_study``), and
#: for part segmentation either its runner (``segmentation``, taking a
#: :class:`~pointcalip.ablation.segment.SegContext`) and options class (``seg_config``; None:
#: no options) or why it does not apply (``not_for_segmentation``)
STUDIES = Registry("ablation study")


#: ``seg_config`` value: segmentation reads the same options class as classification
SAME = "same"


def study(name: str, runner: str, segmentation: Optional[str] = None,
          seg_config: Union[type, str, None] = None, not_for_segmentation: Optional[str] = None):
    """Register the decorated section class as the options of study ``name`` (see STUDIES)."""
    if (segmentation is None) == (not_for_segmentation is None):
        raise ValueError(f"study {name!r}: give its segmentation runner or why it has none")

    def add(section: type) -> type:
        STUDIES.register(name, runner, section=f"{name}_study", config=section,
                         segmentation=segmentation,
                         seg_config=section if seg_config == SAME else seg_config,
                         not_for_segmentation=not_for_segmentation)
        return section
    return add


def segmentation_studies() -> List[str]:
    """The studies that apply to part segmentation, in registry order."""
    return [e.name for e in STUDIES.entries() if e.segmentation is not None]


@dataclass
class SegViewsStudyConfig(Section):
    """Part segmentation: mIoU of the first k views of ``order`` (null: all views in the
    projector's own order), of each view alone and of all views but one. Each point is a
    whole `segment` run (its betas and view weights tuned as the config says)."""

    order: Optional[List[int]] = None


@dataclass
class SegPromptsStudyConfig(Section):
    """Part segmentation: part-prompt sources compared, each a list of part templates (with
    ``{part}``, optionally ``{category}``) or a per-part sentence file (null: only the config's
    ``templates``); ``each_template``: also every template of a list alone."""

    candidates: Optional[List[Union[str, List[str]]]] = None
    each_template: bool = True

    def validate(self) -> None:
        if self.candidates is not None and not self.candidates:
            raise ConfigError("candidates", "must list at least one template list or per-part "
                                            "sentence file (or be null: the config's templates)")
        for i, spec in enumerate(self.candidates or []):
            try:
                check_part_templates(spec)
            except (ValueError, OSError) as err:
                raise ConfigError(f"candidates[{i}]", f"is not usable: {err}") from None


@study("views", "pointcalip.ablation.views:run_views",
       segmentation="pointcalip.ablation.segment:run_seg_views", seg_config=SegViewsStudyConfig)
@dataclass
class ViewsStudyConfig(Section):
    """Accuracy against the number of views, from every subset of the projector's views.

    ``search_betas``: search beta2 x beta3 on the tuning set for every subset (false: the
    betas found with all views are used for every subset). ``order``: the order in which the
    "first k views" line adds views (null: the projector's own order, i.e. the published view
    list)."""

    search_betas: bool = True
    order: Optional[List[int]] = None


@study("terms", "pointcalip.ablation.terms:run_terms",
       segmentation="pointcalip.ablation.segment:run_seg_terms")
@dataclass
class TermsStudyConfig(Section):
    """CLIP alone (l0), + l1 (beta2), + l2 (beta3), full CALIP; ``surface``: also the
    beta2 x beta3 accuracy surface (a heatmap)."""

    surface: bool = True


@study("prompts", "pointcalip.ablation.prompts:run_prompts",
       segmentation="pointcalip.ablation.segment:run_seg_prompts", seg_config=SegPromptsStudyConfig)
@dataclass
class PromptsStudyConfig(Section):
    """Prompt sources compared: template set names (configs/prompts.yaml), inline template
    lists, or per-class prompt files; ``each_template``: also every template of a set alone."""

    candidates: List[Union[str, List[str]]] = field(
        default_factory=lambda: ["pointclip", "depth_ensemble"])
    each_template: bool = True

    def validate(self) -> None:
        if not self.candidates:
            raise ConfigError("candidates", "must list at least one template set, template "
                                            "list or per-class prompt file")
        for i, spec in enumerate(self.candidates):
            try:
                load_templates(spec)
            except (ValueError, OSError) as err:
                raise ConfigError(f"candidates[{i}]", f"is not usable: {err}") from None


@study("projectors", "pointcalip.ablation.projectors:run_projectors",
       segmentation="pointcalip.ablation.segment:run_seg_projectors", seg_config=SAME)
@dataclass
class ProjectorsStudyConfig(Section):
    """Projectors compared on the same backbone and data, each with all its views."""

    projectors: List[ProjectorConfig] = field(default_factory=lambda: [
        ProjectorConfig("pointclip", {"views": "zeroshot"}), ProjectorConfig("realistic")])

    def validate(self) -> None:
        if not self.projectors:
            raise ConfigError("projectors", "must list at least one projector")
        settings = [repr(sorted(p.build().settings.items())) for p in self.projectors]
        for i, s in enumerate(settings):
            if s in settings[:i]:
                raise ConfigError(f"projectors[{i}]", f"repeats projectors[{settings.index(s)}] "
                                                      "(same pixels)")


@study("backbones", "pointcalip.ablation.backbones:run_backbones",
       segmentation="pointcalip.ablation.segment:run_seg_backbones", seg_config=SAME)
@dataclass
class BackbonesStudyConfig(Section):
    """Backbones compared (CLIP names or checkpoint files): those whose features are in the
    store are evaluated; the others are listed with the command that encodes them."""

    backbones: List[str] = field(default_factory=lambda: ["RN50", "RN101", "ViT-B/32", "ViT-B/16"])

    def validate(self) -> None:
        if not self.backbones:
            raise ConfigError("backbones", "must list at least one backbone")
        if len(set(self.backbones)) != len(self.backbones):
            raise ConfigError("backbones", f"lists a backbone twice: {self.backbones}")
        for i, spec in enumerate(self.backbones):
            try:
                check_backbone(spec)
            except ValueError as err:
                raise ConfigError(f"backbones[{i}]", str(err)) from None


@study("weights", "pointcalip.ablation.weights:run_weights",
       not_for_segmentation="a segment run searches its view weights itself (tune.view_weights); "
                            "the terms study reports equal against searched weights, and "
                            "`pointcalip segment --tune-on test` is the weights tuned on TEST")
@dataclass
class WeightsStudyConfig(Section):
    """Uniform view weights vs weights searched on validation vs searched on test
    (optimistic); ``choices``: the values each view's weight is chosen from."""

    choices: List[float] = field(default_factory=lambda: [0.25, 0.5, 0.75, 1.0])

    def validate(self) -> None:
        if not self.choices or any(not math.isfinite(c) or c <= 0 for c in self.choices):
            raise ConfigError("choices", f"must be a non-empty list of positive numbers, got "
                                         f"{self.choices}")


@dataclass
class AblationConfig(ZeroShotConfig):
    """`pointcalip ablate`: the zero-shot settings, the studies to run and their options.

    The top-level ``views`` (a subset of the projector's views) applies to the terms,
    prompts, backbones and weights studies; the views study always starts from all the
    projector's views, and the projectors study uses every view of each projector."""

    COMMAND: ClassVar[str] = "ablate"

    studies: List[str] = field(default_factory=lambda: ["views"])
    views_study: ViewsStudyConfig = field(default_factory=ViewsStudyConfig)
    terms_study: TermsStudyConfig = field(default_factory=TermsStudyConfig)
    prompts_study: PromptsStudyConfig = field(default_factory=PromptsStudyConfig)
    projectors_study: ProjectorsStudyConfig = field(default_factory=ProjectorsStudyConfig)
    backbones_study: BackbonesStudyConfig = field(default_factory=BackbonesStudyConfig)
    weights_study: WeightsStudyConfig = field(default_factory=WeightsStudyConfig)
    name: str = "ablation"

    def validate(self) -> None:
        super().validate()
        check_studies(self.studies)
        if self.views_study.order is not None:
            check_views(self.views_study.order, self.projector.build().num_views,
                        "views_study.order")

    @classmethod
    def file_overrides(cls, paths: Sequence[Union[str, Path]]) -> List[str]:
        """The ``studies:`` lists of all the files joined (:func:`studies_of_files`), so that
        ``--config ablation_views ablation_terms`` runs both studies."""
        studies = studies_of_files(paths)
        return [f"studies={json.dumps(studies)}"] if studies else []

    def zeroshot(self, **changes) -> ZeroShotConfig:
        """The zero-shot config with the same shared settings (``changes`` replace some)."""
        shared = {f.name: getattr(self, f.name) for f in dataclasses.fields(ZeroShotConfig)}
        shared.update(changes)
        shared["name"] = "zeroshot"
        return ZeroShotConfig(**shared)


def feature_pairs(cfg: AblationConfig) -> List[tuple]:
    """(projector, backbone) pairs an ablation reads besides its own (the task's ``pairs``,
    :mod:`pointcalip.plan`): every projector of the projectors study and every backbone of
    the backbones study, when those studies are listed."""
    pairs = []
    if "projectors" in cfg.studies:
        pairs += [(p, cfg.backbone) for p in cfg.projectors_study.projectors]
    if "backbones" in cfg.studies:
        pairs += [(cfg.projector, b) for b in cfg.backbones_study.backbones]
    return pairs


def check_studies(studies: List[str]) -> None:
    """Known study names, none twice, at least one (ConfigError naming ``studies``)."""
    unknown = [s for s in studies if s not in STUDIES]
    if not studies or unknown:
        raise ConfigError("studies", f"must list studies among {', '.join(STUDIES)}, got "
                                     f"{studies}")
    if len(set(studies)) != len(studies):
        raise ConfigError("studies", f"lists a study twice: {studies}")


@dataclass
class SegAblationConfig(SegmentConfig):
    """`pointcalip ablate` on part segmentation: the segment settings (``configs/
    shapenetpart.yaml``), the studies to run and the options of those that apply. Every point
    of a study is a whole `segment` run of the config with one setting changed."""

    COMMAND: ClassVar[str] = "ablate"

    studies: List[str] = field(default_factory=lambda: ["terms"])
    views_study: SegViewsStudyConfig = field(default_factory=SegViewsStudyConfig)
    prompts_study: SegPromptsStudyConfig = field(default_factory=SegPromptsStudyConfig)
    projectors_study: ProjectorsStudyConfig = field(default_factory=lambda: ProjectorsStudyConfig(
        [ProjectorConfig("realistic", {"preset": "pointclip_v2_seg"}), ProjectorConfig("pointclip")]))
    backbones_study: BackbonesStudyConfig = field(default_factory=BackbonesStudyConfig)
    name: str = "ablation"

    def validate(self) -> None:
        super().validate()
        check_studies(self.studies)
        for name in self.studies:
            why = STUDIES[name].not_for_segmentation
            if why is not None:
                raise ConfigError("studies", f"lists {name!r}, a study that does not apply to "
                                             f"part segmentation ({self.data.name}): {why}. "
                                             f"Segmentation studies: "
                                             f"{', '.join(segmentation_studies())}", hint=False)
        if self.views_study.order is not None:
            check_views(self.views_study.order, self.projector.build().num_views,
                        "views_study.order")
        if "views" in self.studies:
            subset_projector(self.projector, [0])

    file_overrides = AblationConfig.file_overrides

    def segment(self, **changes) -> SegmentConfig:
        """The segment config with the same settings; ``changes`` replace top-level keys and,
        given as mappings, merge into sections (``tune={"view_weights": False}``)."""
        values = {f.name: _plain_section(getattr(self, f.name))
                  for f in dataclasses.fields(SegmentConfig)}
        for key, value in changes.items():
            values[key] = ({**values[key], **value} if isinstance(value, dict)
                           and isinstance(values[key], dict) else _plain_section(value))
        values["name"] = "segment"
        return SegmentConfig.from_mapping(values)


def subset_projector(pcfg: ProjectorConfig, views: Sequence[int]) -> ProjectorConfig:
    """The projector config rendering only ``views`` (indices into ``pcfg``'s views) with the
    same pixels per view: ``views:`` becomes that list of indices into the preset (or the
    subset of an explicit list); a ring of views has no such form (ConfigError)."""
    options = dict(pcfg.options)
    current = options.get("views")
    if isinstance(current, str):                  # a preset name
        options["preset"], current = current, None
    if current is None:
        options["views"] = [int(v) for v in views]
    elif isinstance(current, list):
        options["views"] = [current[v] for v in views]
    else:
        raise ConfigError("projector.views", f"is {current!r}: the segmentation views study "
                                             f"needs a preset name, a list of view indices or "
                                             f"of angle triples, or null", hint=False)
    return ProjectorConfig(pcfg.name, options)


def _plain_section(value):
    return value.to_dict() if isinstance(value, Section) else value


def load_ablation_config(paths: Sequence[Union[str, Path]], overrides: Sequence[str] = ()
                         ) -> Union[AblationConfig, SegAblationConfig]:
    """The ablation config of ``paths`` and ``overrides``: a :class:`SegAblationConfig` when
    their dataset is a segmentation dataset (``--config shapenetpart``, whose ``command:
    segment`` then reads as ``ablate``), else an :class:`AblationConfig`."""
    from ..datasets.catalog import DATASETS

    merged = merged_config(paths, [*AblationConfig.file_overrides(paths), *overrides])
    data = merged.get("data")
    name = data.get("name") if isinstance(data, dict) else None
    if name in DATASETS and DATASETS[name].meta.get("task") == "segmentation":
        first = ["command=ablate"] if merged.get("command") == "segment" else []
        return load_config(SegAblationConfig, paths, [*first, *overrides])
    return load_config(AblationConfig, paths, overrides)


def studies_of_files(paths: Sequence[Union[str, Path]]) -> Optional[List[str]]:
    """The ``studies:`` lists of several config files joined in order, without repeats (None
    if no file sets it), so that ``--config ablation_views ablation_terms`` runs both studies
    while every other key merges left to right as usual."""
    joined: List[str] = []
    found = False
    for path in paths:
        studies = load_yaml_tree(resolve_config_path(path)).get("studies")
        if studies is None:
            continue
        found = True
        for study in studies if isinstance(studies, list) else [studies]:
            if study not in joined:
                joined.append(study)
    return joined if found else None
