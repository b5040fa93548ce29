"""`pointcalip ablate` configuration: the zero-shot settings plus the studies to run.

An ablation config is a zero-shot config (dataset, projector, backbone, templates, views,
tuning, store; the same keys, checks and defaults) with ``studies:``, the list of studies to
run, and one section of options per study (``views_study:``, ``terms_study:``, ...). The
shipped ``configs/ablation_<study>.yaml`` files each run one study; ``studies: [views,
terms]`` runs several, and so does ``--config ablation_views ablation_terms`` (loading joins
the ``studies:`` lists of the files; see :func:`studies_of_files`).
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
from ..core.registry import Registry
from ..prompts import load_templates

#: every study, in the order a config that lists several runs them: each study's section
#: class below declares its name, its runner (``"module:function(ctx)"``, imported when the
#: study runs, so listing studies imports no torch) and its section key (``<name>_study``)
STUDIES = Registry("ablation study")


def study(name: str, runner: str):
    """Register the decorated section class as the options of study ``name``."""
    def add(section: type) -> type:
        STUDIES.register(name, runner, section=f"{name}_study", config=section)
        return section
    return add



@study("views", "pointcalip.ablation.views:run_views")
@dataclass
class ViewsStudyConfig(Section):
    """Accuracy against the number of views, from every subset of the projector's views.

    ``search_betas``: search beta2 x beta3 on the tuning set for every subset (false: the
    betas found with all views are used for every subset). ``order``: the order in which the
    "first k views" line adds views (null: the projector's own order, i.e. the published view
    list)."""

    search_betas: bool = True
    order: Optional[List[int]] = None


@study("terms", "pointcalip.ablation.terms:run_terms")
@dataclass
class TermsStudyConfig(Section):
    """CLIP alone (l0), + l1 (beta2), + l2 (beta3), full CALIP; ``surface``: also the
    beta2 x beta3 accuracy surface (a heatmap)."""

    surface: bool = True


@study("prompts", "pointcalip.ablation.prompts:run_prompts")
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


@study("projectors", "pointcalip.ablation.projectors:run_projectors")
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


@study("backbones", "pointcalip.ablation.backbones:run_backbones")
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


@study("weights", "pointcalip.ablation.weights:run_weights")
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
        unknown = [s for s in self.studies if s not in STUDIES]
        if not self.studies or unknown:
            raise ConfigError("studies", f"must list studies among {', '.join(STUDIES)}, got "
                                         f"{self.studies}")
        if len(set(self.studies)) != len(self.studies):
            raise ConfigError("studies", f"lists a study twice: {self.studies}")
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
