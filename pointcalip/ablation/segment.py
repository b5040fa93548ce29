"""Ablation studies on part segmentation (``pointcalip ablate --config shapenetpart``).

Every point of a study is one whole `pointcalip segment` run
(:func:`pointcalip.segmentation.run.run_segment`: VAL search, TEST pass, metrics) of the
config with one setting changed, read back through its results dict (``miou.instance``,
``miou.class``, ``dense_clip``, ``per_category``, ``tuning.params``); nothing of the
segmentation protocol is redone here. Runs read the feature store, so a projector's views
are encoded once and every later run of the same projector and backbone (other prompts,
other tuning) reads them. A point reached by two studies (e.g. the config itself) runs once.
Each run's results.json, results.md and predictions.npz stay in ``<output>/runs/<name>/``
(the tables' ``run`` column), with the `pointcalip segment` command that reruns it alone.

mIoU values are percentages on TEST. ``tune_miou`` is the mean over categories of the tuned
parameters' instance mIoU on the tuning shapes (``tuning.params.*.tune_miou``); winners are
chosen by it, never by TEST.
"""
from __future__ import annotations

import json
import logging
import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..backbones import ClipBackbone, load_clip, precision_on
from ..config import load_config
from ..report import plots
from ..report.results import RunInfo, backbone_label, run_name, write_results
from ..segmentation.config import SegmentConfig
from ..segmentation.run import (data_root, default_output_dir as segment_output_dir,
                                  load_segment_splits, run_segment)
from ..store import FeatureStore
from .backbones import command_words, lacking_rows
from .config import SegAblationConfig
from .context import projector_label
from .tables import StudyResult, Table, subset_label
from ..core.words import count

log = logging.getLogger(__name__)

#: columns every segmentation study reports for a run (percent, TEST unless ``tune_``)
MIOU_COLUMNS = ["dense_clip_instance", "instance_miou", "class_miou", "tune_miou"]
#: added beside them with ``rotation.mode`` so3 / up: the rotated protocol's TEST mIoU
ROTATED_COLUMNS = ["rotated_instance_miou", "rotated_class_miou"]


def tune_miou(results: dict) -> Optional[float]:
    """Mean over categories of the tuned instance mIoU on the tuning shapes, percent."""
    values = [p["tune_miou"] for p in results["tuning"]["params"].values()]
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return 100.0 * float(np.mean(finite)) if finite else None


def miou_cells(results: dict) -> list:
    """The :data:`MIOU_COLUMNS` cells of one run (and :data:`ROTATED_COLUMNS` when it ran
    the rotated protocol)."""
    cells = [results["dense_clip"]["instance"], results["miou"]["instance"],
             results["miou"]["class"], tune_miou(results)]
    if "rotated" in results:
        cells += [results["rotated"]["miou"]["instance"], results["rotated"]["miou"]["class"]]
    return cells


def seg_output_dir(cfg: SegAblationConfig) -> Path:
    """``outputs/ablation-<studies>-shapenetpart-<projector>-<backbone>-tune_<split>-<hash>``;
    the hash covers the settings and what the data files are (the `segment` run name of the
    config, which fingerprints them)."""
    if cfg.output_dir:
        return Path(cfg.output_dir).expanduser()
    seg = cfg.segment()
    data = segment_output_dir(seg).name
    return Path("outputs") / run_name(cfg.to_dict(), "ablation", "+".join(cfg.studies),
                                      cfg.data.name, cfg.projector.name,
                                      backbone_label(cfg.backbone), f"tune_{cfg.tune.split}",
                                      data=data)


class SegContext:
    """The runs of one segmentation ablation: ``ctx.run(templates=[...])`` is the results
    dict of the config's `segment` run with that change (:meth:`SegAblationConfig.segment`),
    run once and kept. ``backbone``: the loaded main backbone (optional)."""

    def __init__(self, cfg: SegAblationConfig, out: Path, backbone: Optional[ClipBackbone] = None):
        self.cfg, self.out = cfg, Path(out)
        self.store = FeatureStore(cfg.cache_dir)
        self.root = data_root(cfg.segment())     # the data folder (recorded in the results)
        self._splits: Optional[tuple] = None       # (test, tuning) as segment reads them
        self._backbones: Dict[str, ClipBackbone] = {}
        if backbone is not None:
            self._backbones[cfg.backbone] = backbone
        self._runs: Dict[str, dict] = {}
        self._base = load_config(SegmentConfig, ["shapenetpart"])
        self.runs: List[dict] = []          # what each run was, for results.json
        self.rotated = cfg.rotation.mode != "none"     # rotated columns beside the upright

    def backbone(self, spec: Optional[str] = None) -> ClipBackbone:
        spec = spec or self.cfg.backbone
        if spec not in self._backbones:
            self._backbones[spec] = load_clip(spec, device=self.cfg.device, engine=self.cfg.engine)
        return self._backbones[spec]

    def loaded_backbone(self, spec: str) -> Optional[ClipBackbone]:
        return self._backbones.get(spec)

    def command(self, seg: SegmentConfig) -> List[str]:
        """The `pointcalip segment` command line of ``seg``."""
        return command_words("segment", "shapenetpart", seg, self._base)

    def run(self, **changes) -> dict:
        """results.json of the `segment` run of the config with ``changes`` (no pictures)."""
        seg = self.cfg.segment(pictures=0, output_dir=None, **changes)
        key = json.dumps(seg.to_dict(), sort_keys=True, default=str)
        if key not in self._runs:
            if self._splits is None:
                self._splits = tuple(load_segment_splits(seg)[1:])
            folder = self.out / "runs" / segment_output_dir(seg, self._splits).name
            argv = self.command(seg)
            log.info("segment run %d: %s", len(self._runs) + 1, shlex.join(argv))
            result = run_segment(seg, backbone=self.backbone(seg.backbone), argv=argv, out=folder)
            write_results(result, folder)
            results = result.to_dict()
            results["folder"] = folder.name
            self._runs[key] = results
            self.runs.append({"folder": folder.name, "rerun": results["rerun"],
                              "miou": results["miou"], "dense_clip": results["dense_clip"],
                              **({"rotated": {k: results["rotated"][k] for k in
                                              ("rotation", "miou", "dense_clip")}}
                                 if "rotated" in results else {}),
                              "timings": results["timings"]})
        return self._runs[key]

    def caption(self, projector: bool = True, backbone: bool = True) -> str:
        """``shapenetpart, realistic, ViT-B/16; tuned on val``: what a figure shows."""
        parts = [self.cfg.data.name]
        if projector:
            parts.append(self.cfg.projector.name)
        if backbone:
            parts.append(backbone_label(self.cfg.backbone))
        on = "tuned on val" if self.cfg.tune.split == "val" else "tuned on TEST (optimistic)"
        return f"{', '.join(parts)}; {on}"


def _table(first: List[str], rotated: bool = False) -> Table:
    return Table([*first, *MIOU_COLUMNS, *(ROTATED_COLUMNS if rotated else []), "run"])


def _bars(ctx: SegContext, labels: Sequence[str], table: Table, title: str, **kw):
    def draw(path: Path):
        return plots.bars(path, labels, {"dense CLIP, instance": table.column("dense_clip_instance"),
                                         "dense CALIP, instance": table.column("instance_miou"),
                                         "dense CALIP, class": table.column("class_miou")},
                          "test mIoU (%)", title, min_pad=1.0, **kw)
    return draw


def _best(labels: Sequence[str], table: Table) -> Tuple[int, str]:
    """The row with the highest tuning mIoU (the first of equals) and a sentence about it."""
    tune = table.column("tune_miou")
    ok = [i for i, v in enumerate(tune) if v is not None]
    if not ok:
        return -1, "No row has a tuning mIoU."
    i = max(ok, key=lambda k: tune[k])
    return i, (f"Best by tuning mIoU: {labels[i]} (TEST instance mIoU "
               f"{table.column('instance_miou')[i]:.2f}%, class {table.column('class_miou')[i]:.2f}%).")


# ------------------------------------------------------------------------------- studies

def run_seg_terms(ctx: SegContext) -> StudyResult:
    """Dense CLIP (S0: betas 0, equal view weights), + S1 (beta2 searched, beta3 = 0), + S2
    (beta3 searched, beta2 = 0), + S1 + S2 (both; equal weights), + view weights (betas and
    weights, when ``tune.view_weights``); and the beta2 x beta3 mIoU surface on the tuning
    shapes (equal weights) of the + S1 + S2 run."""
    cfg = ctx.cfg
    betas = ctx.run(tune={"view_weights": False, "terms": ["s1", "s2"], "surface": True})
    s1 = ctx.run(tune={"view_weights": False, "terms": ["s1"]})
    s2 = ctx.run(tune={"view_weights": False, "terms": ["s2"]})
    variants = [("dense CLIP (S0)", "nothing: betas 0, equal view weights", betas, "dense_clip"),
                ("+ S1 (beta2)", "beta2; beta3 = 0, equal view weights", s1, "dense_calip"),
                ("+ S2 (beta3)", "beta3; beta2 = 0, equal view weights", s2, "dense_calip"),
                ("+ S1 + S2 (dense CALIP)", "beta2, beta3; equal view weights", betas,
                 "dense_calip")]
    if cfg.tune.view_weights:
        variants.append(("+ view weights", "beta2, beta3, view weights",
                         ctx.run(tune={"terms": ["s1", "s2"]}), "dense_calip"))
    rotated = ctx.rotated
    table = Table(["variant", "searched", "instance_miou", "class_miou", "accuracy",
                   "tune_miou", *(["rotated_instance_miou", "rotated_class_miou"] if rotated
                                  else []), "run"])
    for name, searched, r, key in variants:
        table.add(name, searched, r[key]["instance"], r[key]["class"], r[key]["accuracy"],
                  None if key == "dense_clip" else tune_miou(r),
                  *([r["rotated"][key]["instance"], r["rotated"][key]["class"]] if rotated
                    else []), r["folder"])
    names = [v[0] for v in variants]
    categories = Table(["category", "shapes", *names])
    for cat, c in betas["per_category"].items():
        categories.add(cat, c["shapes"], *[r["per_category"][cat]["clip_miou" if key == "dense_clip"
                                                                  else "calip_miou"]
                                           for _, _, r, key in variants])
    inst = table.column("instance_miou")
    cls = table.column("class_miou")
    notes = [f"Each tuned variant is a `segment` run: only its own betas (and view weights) "
             f"tuned {'per category' if cfg.tune.per_category else 'shared'} on "
             f"{cfg.tune.split.upper()} (`tune.terms`), the other beta 0; dense CLIP is the "
             f"+ S1 + S2 run at betas 0.",
             f"S1 alone adds {inst[1] - inst[0]:+.2f} points of TEST instance mIoU over dense "
             f"CLIP, S2 alone {inst[2] - inst[0]:+.2f}, both {inst[3] - inst[0]:+.2f} (class "
             f"{cls[3] - cls[0]:+.2f})."
             + (f" Searched view weights add {inst[4] - inst[3]:+.2f} more." if len(inst) > 4
                else ""),
             _best(names, table)[1]]
    extra = {"categories": categories}
    figures = {}
    surf = betas["tuning"].get("surface")
    if surf:
        grid2, grid3 = surf["beta2"], surf["beta3"]
        values = np.array(surf["tune_instance_miou"])
        surface = Table(["beta2", "beta3", "tune_instance_miou"])
        for i, x in enumerate(grid2):
            for j, y in enumerate(grid3):
                surface.add(x, y, float(values[i, j]))
        extra["surface"] = surface
        params = list(betas["tuning"]["params"].values())
        mark = (params[0]["beta2"], params[0]["beta3"]) if not cfg.tune.per_category \
            and params else None
        notes.append(f"The surface (beta_surface.png, surface.csv) is the instance mIoU of "
                     f"the {cfg.tune.split.upper()} shapes (the search's seeded points) over "
                     f"the coarse grid at equal view weights; its maximum is "
                     f"{values.max():.2f}% at beta2 {grid2[int(values.argmax()) // len(grid3)]}, "
                     f"beta3 {grid3[int(values.argmax()) % len(grid3)]}.")

        def draw_surface(path: Path):
            return plots.heatmaps(path, [plots.Heatmap(values, grid2, grid3,
                                                       f"tuning shapes ({cfg.tune.split})", mark)],
                                  "beta2", "beta3", f"Dense CALIP mIoU over beta2 x beta3 "
                                  f"({ctx.caption()})", "instance mIoU (%)")
        figures["beta_surface.png"] = draw_surface

    def draw(path: Path):
        return plots.bars(path, names, {"instance": inst, "class": cls},
                          "test mIoU (%)", f"Dense CALIP terms: {ctx.caption()}", min_pad=1.0)

    figures["terms.png"] = draw
    return StudyResult(name="terms", title="Dense CALIP terms: dense CLIP, + S1, + S2, both, "
                       "+ view weights (mIoU)", table=table, extra=extra,
                       figures=figures, notes=notes,
                       summary={"variants": table.records(),
                                **({"surface_max_tune_miou": float(np.max(
                                    surf["tune_instance_miou"]))} if surf else {})})


def view_subsets(num_views: int, order: Sequence[int]) -> Dict[str, List[Tuple[int, ...]]]:
    """The subsets the views study runs: the first k of ``order`` (k = 1..len(order)), each
    view alone, all views but one (each sorted; a segment run sums over its views)."""
    every = tuple(range(num_views))
    return {"first": [tuple(sorted(order[:k])) for k in range(1, len(order) + 1)],
            "alone": [(v,) for v in every],
            "without": [tuple(i for i in every if i != v) for v in every] if num_views > 1 else []}


def run_seg_views(ctx: SegContext) -> StudyResult:
    cfg = ctx.cfg
    projector = cfg.projector.build()
    v = projector.num_views
    order = list(cfg.views_study.order or range(v))
    plan = view_subsets(v, order)

    def run(views: Tuple[int, ...]) -> dict:
        if views == tuple(range(v)):
            return ctx.run(views=None)
        return ctx.run(views=list(views))       # read from the store of all the views

    table = _table(["k", "first_k_views"], ctx.rotated)
    for views in plan["first"]:
        table.add(len(views), subset_label(views), *miou_cells(run(views)), run(views)["folder"])
    everything = run(tuple(range(v)))
    angles = projector.view_set.to_dict()["angles"]
    importance = Table(["view", "euler_deg", "instance_alone", "instance_without",
                        "instance_drop", "class_without", "class_drop"])
    for view in range(v):
        alone = run(plan["alone"][view])
        without = run(plan["without"][view]) if plan["without"] else None
        importance.add(view, [round(math.degrees(a)) for a in angles[view]],
                       alone["miou"]["instance"],
                       without["miou"]["instance"] if without else None,
                       everything["miou"]["instance"] - without["miou"]["instance"] if without else None,
                       without["miou"]["class"] if without else None,
                       everything["miou"]["class"] - without["miou"]["class"] if without else None)
    drops = importance.column("instance_drop")
    notes = [f"Subsets of the projector's {count(v, 'view')}: the first k in order {order}, each "
             "view "
             f"alone, all but one; each subset is a `segment` run (betas and view weights tuned "
             f"on {cfg.tune.split.upper()} for it).",
             "A subset reads its views from the store of all the projector's views (segment's "
             "`views:`; the same pixels per view as a projector of only those views): the "
             "shapes are encoded once for the whole study.",
             f"All {count(v, 'view')}: TEST instance mIoU {everything['miou']['instance']:.2f}%, "
             f"class {everything['miou']['class']:.2f}%."]
    if any(d is not None for d in drops):
        most = int(np.nanargmax(np.array([np.nan if d is None else d for d in drops])))
        notes.append(f"Leaving out view {most} costs the most: {drops[most]:+.2f} points of "
                     f"TEST instance mIoU.")
    ks = list(range(1, len(order) + 1))
    tilts = projector.view_set.tilts or (0.0,) * v

    def draw_lines(path: Path):
        return plots.lines(path, ks, {"instance mIoU": table.column("instance_miou"),
                                      "class mIoU": table.column("class_miou"),
                                      "dense CLIP instance": table.column("dense_clip_instance")},
                           "number of views (first k in order)", "test mIoU (%)",
                           f"mIoU vs views: {ctx.caption()}")

    def draw_importance(path: Path):
        return plots.bars(path, [plots.view_name(i, angles[i], tilts[i], "\n") for i in range(v)],
                          {"instance mIoU lost without the view": drops},
                          "points of test instance mIoU (all views minus all but this one)",
                          f"Leave-one-view-out importance: {ctx.caption()}", value_format="+.1f",
                          include_zero=True, min_pad=1.0)

    return StudyResult(name="views", title="mIoU against the views", table=table,
                       extra={"importance": importance},
                       figures={"views.png": draw_lines, "importance.png": draw_importance},
                       notes=notes, summary={"order": order, "importance": importance.records(),
                                             "all_views": everything["miou"]})


def prompt_sources(cfg: SegAblationConfig) -> List[Tuple[str, str, Union[str, List[str]]]]:
    """(label, kind, templates) of every part-prompt source the prompts study runs, in order,
    each once."""
    out, seen = [], set()
    for spec in cfg.prompts_study.candidates or [cfg.templates]:
        if isinstance(spec, str):
            found = [(Path(spec).name, "per-part sentence file", spec)]
        else:
            kind = "single template" if len(spec) == 1 else "ensemble"
            found = [(repr(spec[0]) if len(spec) == 1 else count(len(spec), "template"), kind, spec)]
            if cfg.prompts_study.each_template and len(spec) > 1:
                found += [(repr(t), "single template (of the list)", [t]) for t in spec]
        for label, kind, s in found:
            if json.dumps(s) not in seen:
                seen.add(json.dumps(s))
                out.append((label, kind, s))
    return out


def run_seg_prompts(ctx: SegContext) -> StudyResult:
    sources = prompt_sources(ctx.cfg)
    table = _table(["prompts", "kind"], ctx.rotated)
    for label, kind, spec in sources:
        r = ctx.run(templates=spec, tune={"prompts": []})       # this source alone
        table.add(label, kind, *miou_cells(r), r["folder"])
    labels = [s[0] if len(s[0]) <= 48 else s[0][:45] + "..." for s in sources]
    best, sentence = _best(labels, table)
    notes = [f"{len(sources)} part-prompt sources; each is a `segment` run with that source "
             f"alone (no prompt search: tune.prompts empty); the image features are read from "
             f"the store, only the part texts change.", sentence]
    return StudyResult(name="prompts", title="Part prompts: template lists, single templates, "
                       "per-part sentence files (mIoU)", table=table,
                       figures={"prompts.png": _bars(ctx, labels, table,
                                                     f"Part prompts: {ctx.caption()}",
                                                     size=(900, 120 + 40 * len(labels)),
                                                     horizontal=True)},
                       notes=notes, summary={"winner": sources[best][0] if best >= 0 else None,
                                             "sources": [{"prompts": label, "kind": kind,
                                                          "spec": spec}
                                                         for label, kind, spec in sources]})


def run_seg_projectors(ctx: SegContext) -> StudyResult:
    table = _table(["projector", "views"], ctx.rotated)
    labels = []
    for pcfg in ctx.cfg.projectors_study.projectors:
        r = ctx.run(projector=pcfg)
        labels.append(projector_label(pcfg))
        table.add(labels[-1], pcfg.build().num_views, *miou_cells(r), r["folder"])
    best, sentence = _best(labels, table)
    notes = [f"Same backbone ({ctx.cfg.backbone}), data, part prompts and tuning for every "
             f"projector, all views of each; each projector's features are encoded once into "
             f"its own store.", sentence]
    return StudyResult(name="projectors", title="Projectors (mIoU)", table=table,
                       figures={"projectors.png": _bars(ctx, labels, table,
                                                        f"Projectors: {ctx.caption(projector=False)}")},
                       notes=notes, summary={"winner": labels[best] if best >= 0 else None})


def run_seg_backbones(ctx: SegContext) -> StudyResult:
    """One row per backbone whose features of the test and tuning shapes are stored; the
    others are listed with the `pointcalip segment` command that encodes (and runs) them."""
    cfg = ctx.cfg
    _, test, tuning = load_segment_splits(cfg.segment())       # the splits segment reads
    wanted = {"test": (test, np.arange(len(test)))}
    if tuning is not test:
        wanted["val"] = (tuning, np.arange(len(tuning)))
    table = _table(["backbone", "status"], ctx.rotated)
    present, missing = [], {}
    for spec in cfg.backbones_study.backbones:
        lacking = lacking_rows(ctx.store, wanted, cfg.projector.build(), spec, cfg.device,
                               cfg.engine, ctx.loaded_backbone(spec))
        if lacking:
            command = shlex.join(ctx.command(cfg.segment(backbone=spec, pictures=0)))
            missing[spec] = {"missing_shapes": lacking, "command": command}
            table.add(spec, "missing: " + ", ".join(count(n, f"{s} shape")
                                                    for s, n in lacking.items()),
                      *[None] * (len(table.columns) - 2))
            continue
        try:
            r = ctx.run(backbone=spec)
        except (RuntimeError, OSError, ValueError) as err:
            log.warning("backbone %s: its features are stored but it cannot be run: %s", spec, err)
            table.add(spec, f"stored, but the model cannot be loaded: {err}",
                      *[None] * (len(table.columns) - 2))
            continue
        table.add(spec, "in store", *miou_cells(r), r["folder"])
        present.append(spec)
    notes = [f"Projector {cfg.projector.name}, precision {precision_on(cfg.device)}: a backbone "
             f"counts as in the store when every test shape and every tuning shape is stored."]
    if missing:
        notes.append("Missing backbones; each command encodes them into this store (and "
                     "segments), then run this study again:")
        notes.extend(f"`{info['command']}`" for info in missing.values())
    labels = [backbone_label(b) + ("" if b in present else " (not stored)")
              for b in cfg.backbones_study.backbones]
    if present:
        notes.append(_best(labels, table)[1])
    return StudyResult(name="backbones", title="Backbones in the feature store (mIoU)",
                       table=table, figures={"backbones.png": _bars(
                           ctx, labels, table, f"Backbones: {ctx.caption(backbone=False)}")},
                       notes=notes, summary={"present": present, "missing": missing})


# ------------------------------------------------------------------------------------ run

@dataclass
class SegAblationResult:
    """Every study of one segmentation ablation; ``to_dict()`` is results.json."""

    config: SegAblationConfig
    run: RunInfo
    studies: List[StudyResult]
    runs: List[dict]
    timings: Dict[str, float] = field(default_factory=dict)

    @property
    def protocol(self) -> str:
        t = self.config.tune
        what = "betas and view weights" if t.view_weights else "betas"
        where = ("the official VAL split" if t.split == "val"
                 else "the TEST split itself (PointCLIP V2's protocol; optimistic)")
        return (f"{t.split}: every run tunes {what} "
                f"{'per category' if t.per_category else 'shared by all categories'} on {where} "
                f"({t.points} seeded points per shape); mIoU reported on TEST")

    def header(self) -> List[str]:
        cfg = self.config
        cats = ", ".join(cfg.data.categories) if cfg.data.categories else "all 16 categories"
        return [
            f"- Dataset: ShapeNetPart ({cats}, {count(cfg.data.num_points, 'point')}); instance "
            f"mIoU (mean over shapes) and class mIoU (mean over categories), percent, on TEST",
            f"- Tuning protocol: {self.protocol}",
            f"- Backbone: {cfg.backbone}; projector: {projector_label(cfg.projector)}",
            f"- Part prompts: {cfg.templates if isinstance(cfg.templates, str) else '; '.join(repr(t) for t in cfg.templates)}",
            "- Every point is a `pointcalip segment` run; its results and predictions.npz are "
            "in runs/<run>/ (the `run` column), with the command that reruns it",
            f"- Command: `{self.run.command_line}` ({self.run.date}, {self.run.device})",
        ]

    def to_dict(self) -> dict:
        cfg = self.config
        return {"command": "ablate", "task": "segmentation", "config_name": cfg.name,
                "config": cfg.to_dict(), "run": self.run.to_dict(), "dataset": cfg.data.name,
                "backbone": cfg.backbone, "projector_config": cfg.projector.to_dict(),
                "templates": cfg.templates,
                "tuning": {"protocol": self.protocol, "split": cfg.tune.split,
                           "per_category": cfg.tune.per_category,
                           "searched_view_weights": cfg.tune.view_weights,
                           "points_per_shape": cfg.tune.points, "seed": cfg.tune.seed},
                "studies": {s.name: s.to_dict() for s in self.studies}, "runs": self.runs,
                "timings": {k: round(v, 3) for k, v in self.timings.items()}}
