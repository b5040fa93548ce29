"""Projectors study: PointCLIP's sparse depth maps vs PointCLIP V2's realistic ones (or any
projectors listed), on the same backbone, data, prompts and tuning protocol.

Each projector has its own store (its pixels differ); rows it lacks are encoded once and
kept. Every view of each projector is used (the top-level ``views`` subset belongs to the
config's own projector and is ignored here).
"""
from __future__ import annotations

from pathlib import Path

from ..report import plots
from .context import AblationContext, projector_label
from .tables import BETA_FORMAT, StudyResult, Table, accuracy_groups
from .tuning import test_accuracy, tune_then_test


def run_projectors(ctx: AblationContext) -> StudyResult:
    cfg = ctx.cfg
    table = Table(["projector", "views", "encoded_now", "pointclip_test", "beta2", "beta3",
                   "tune_top1", "test_top1", "pointclip_test_macc", "test_macc"],
                  formats={"beta2": BETA_FORMAT, "beta3": BETA_FORMAT})
    rows = []
    for pcfg in cfg.projectors_study.projectors:
        feats = ctx.features(pcfg)
        pair = ctx.logits(pcfg)
        plain = test_accuracy(pair.test, 0.0, 0.0)
        t = tune_then_test(pair, cfg.tune)
        label = projector_label(pcfg)
        table.add(label, pair.num_views, sum(f.stats.encoded for f in feats.values()),
                  plain.top1, t.found.beta2, t.found.beta3, t.tune_top1, t.test.top1,
                  plain.mean_per_class, t.test.mean_per_class)
        rows.append((label, t))
    best = max(range(len(rows)), key=lambda i: rows[i][1].tune_top1)
    notes = [f"Same backbone ({cfg.backbone}), data, prompts and tuning protocol for every "
             f"projector; all views of each. `encoded_now` counts clouds encoded by this run "
             f"(0: everything came from the store).",
             f"Best by tuning accuracy: {rows[best][0]} (CALIP test "
             f"{rows[best][1].test.top1:.2f}%)."]

    def draw(path: Path):
        return plots.bars(path, [label for label, _ in rows],
                          accuracy_groups(table), "test top-1 and mAcc (%)",
                          f"Projectors: {ctx.caption(projector=False)}", min_pad=1.0)

    return StudyResult(name="projectors", title="Projectors: PointCLIP sparse vs V2 realistic",
                       table=table, figures={"projectors.png": draw}, notes=notes,
                       summary={"winner": rows[best][0],
                                "projectors": [p.to_dict()
                                               for p in cfg.projectors_study.projectors]})
