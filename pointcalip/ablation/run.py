"""Run the studies of an ablation config and write their files.

    result = run_ablation(cfg)            # AblationResult (every study's StudyResult), or a
    write_ablation(result, output_dir(cfg))   # SegAblationResult for a SegAblationConfig
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Union

from ..backbones import ClipBackbone
from ..core.paths import ensure_writable
from ..prompts import load_templates
from ..report.results import RunInfo, backbone_label, run_name
from ..pipeline import data_key
from ..datasets.catalog import load_target
from .config import STUDIES, AblationConfig, SegAblationConfig
from .context import AblationContext, projector_label
from .output_files import write_index, write_study
from .segment import SegAblationResult, SegContext, seg_output_dir
from .tables import StudyResult
from ..core.words import count

log = logging.getLogger(__name__)

#: each study's runner, from the studies registry
RUNNERS: Dict[str, Callable[[AblationContext], StudyResult]] = {
    entry.name: load_target(entry.target) for entry in STUDIES.entries()}
#: the runners of the studies that apply to part segmentation
SEG_RUNNERS: Dict[str, Callable[[SegContext], StudyResult]] = {
    entry.name: load_target(entry.segmentation) for entry in STUDIES.entries()
    if entry.segmentation is not None}


@dataclass
class AblationResult:
    """Every study of one run; ``to_dict()`` is results.json."""

    config: AblationConfig
    run: RunInfo
    num_test_clouds: int
    num_tuning_clouds: int
    backbone_identity: str
    precision: str
    projector_settings: dict
    protocol: str
    templates: List[str]
    studies: List[StudyResult]
    features: List[dict]
    timings: Dict[str, float] = field(default_factory=dict)

    def header(self) -> List[str]:
        """The lines every report starts with: what was measured and how it was tuned."""
        cfg = self.config
        views = "all" if cfg.views is None else str(cfg.views)
        return [
            f"- Dataset: {cfg.data.label} ({self.num_test_clouds} test clouds, "
            f"{count(cfg.data.num_points, 'point')}, {cfg.data.sampling} sampling); results on "
            "TEST",
            f"- Tuning protocol: {self.protocol}; grid {cfg.tune.grid} x {cfg.tune.grid}, beta2 "
            f"in (0, {cfg.tune.beta2_max:g}], beta3 in (0, {cfg.tune.beta3_max:g}]",
            f"- Backbone: {cfg.backbone} ({self.backbone_identity}, {self.precision})",
            f"- Projector: {projector_label(cfg.projector)}; views used: {views}",
            f"- Prompts: {'; '.join(repr(t) for t in self.templates)}",
            f"- Command: `{self.run.command_line}` ({self.run.date}, {self.run.device})",
        ]

    def to_dict(self) -> dict:
        cfg = self.config
        return {
            "command": "ablate", "config_name": cfg.name, "config": cfg.to_dict(),
            "run": self.run.to_dict(), "dataset": cfg.data.label,
            "num_test_clouds": self.num_test_clouds, "backbone": cfg.backbone,
            "backbone_identity": self.backbone_identity, "precision": self.precision,
            "projector": self.projector_settings, "projector_config": cfg.projector.to_dict(),
            "views": cfg.views, "templates": self.templates,
            "tuning": {"protocol": self.protocol, "split": cfg.tune.split,
                       "num_clouds": self.num_tuning_clouds, "seed": cfg.tune.seed,
                       "val_fraction": cfg.tune.val_fraction if cfg.tune.split == "val" else None,
                       "grid": [cfg.tune.grid, cfg.tune.grid], "beta2_max": cfg.tune.beta2_max,
                       "beta3_max": cfg.tune.beta3_max,
                       "searched_view_weights": cfg.tune.view_weights},
            "studies": {s.name: s.to_dict() for s in self.studies},
            "features": self.features,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }


def default_output_dir(cfg: AblationConfig) -> Path:
    """``outputs/ablation-<studies>-<dataset>-<projector>-<backbone>-tune_<split>-<hash>``; the
    hash covers the settings and what the data files are (:func:`~pointcalip.pipeline.data_key`),
    not where they are, as for zero-shot and few-shot runs."""
    return Path("outputs") / run_name(cfg.to_dict(), "ablation", "+".join(cfg.studies),
                                      cfg.data.label, cfg.projector.name,
                                      backbone_label(cfg.backbone), f"tune_{cfg.tune.split}",
                                      data=data_key(cfg.data))


def output_dir(cfg: Union[AblationConfig, SegAblationConfig]) -> Path:
    if isinstance(cfg, SegAblationConfig):
        return seg_output_dir(cfg)
    return Path(cfg.output_dir).expanduser() if cfg.output_dir else default_output_dir(cfg)


def _run_studies(ctx, names: Sequence[str], runners: dict):
    """Each study of ``names`` in order, timed -> (studies, timings)."""
    studies, timings = [], {}
    for name in names:
        log.info("ablation study %s", name)
        t0 = time.perf_counter()
        study = runners[name](ctx)
        study.seconds = time.perf_counter() - t0
        timings[f"{name}_s"] = study.seconds
        studies.append(study)
    return studies, timings


def run_ablation(cfg: Union[AblationConfig, SegAblationConfig],
                 backbone: Optional[ClipBackbone] = None, argv: Optional[Sequence[str]] = None
                 ) -> Union[AblationResult, SegAblationResult]:
    """Run ``cfg.studies`` in order; ``backbone``: the loaded main backbone (optional);
    ``argv``: the command line recorded in the results. A segmentation config's studies
    keep their `segment` runs under ``output_dir(cfg)/runs``."""
    t_start = time.perf_counter()
    ensure_writable(output_dir(cfg), "--set output_dir=DIR")
    seg = isinstance(cfg, SegAblationConfig)
    ctx = SegContext(cfg, output_dir(cfg), backbone) if seg else AblationContext(cfg, backbone)
    ctx.store.check()      # read-only is fine; written only if rows are missing
    main = ctx.backbone()
    studies, timings = _run_studies(ctx, cfg.studies, SEG_RUNNERS if seg else RUNNERS)
    timings["total_s"] = time.perf_counter() - t_start
    if seg:
        return SegAblationResult(cfg, RunInfo.collect(main.device, main.precision, ctx.root, argv),
                                 studies, ctx.runs, timings)
    return AblationResult(
        config=cfg, run=RunInfo.collect(main.device, main.precision, ctx.splits.root, argv),
        num_test_clouds=len(ctx.splits.test), num_tuning_clouds=len(ctx.splits.tuning.rows),
        backbone_identity=main.identity, precision=main.precision,
        projector_settings=cfg.projector.build().settings, protocol=ctx.protocol,
        templates=load_templates(cfg.templates), studies=studies, features=ctx.feature_log,
        timings=timings)


def write_ablation(result: AblationResult, folder: Path) -> Path:
    """Every study's files in ``folder/<study>/``, then ``folder/report.md`` and
    ``folder/results.json``; -> the index report's path."""
    folder = Path(folder)
    header = result.header()
    for study in result.studies:
        write_study(study, folder / study.name, header, result.config.tune.split)
    write_index(result, folder)
    return folder / "report.md"
