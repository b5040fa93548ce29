"""CALIP terms study: plain CLIP (l0), + l1, + l2, full CALIP, and the beta2 x beta3 surface.

Each variant searches only its own betas on the tuning set (the others held at 0: + l1
searches beta2 with beta3 = 0, + l2 searches beta3 with beta2 = 0, full searches both) and
is evaluated once on test. View weights are uniform unless ``tune.view_weights`` is set, in
which case each variant also searches them. The surface is the accuracy at every grid point
on the tuning set (what the search sees) and, for reading only, on test.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..report import plots
from ..search import accuracy_table
from ..pipeline import tune_grids
from .context import AblationContext
from .tables import BETA_FORMAT, StudyResult, Table
from .tuning import tune_then_test

ZERO = torch.zeros(1, dtype=torch.float64)


def run_terms(ctx: AblationContext) -> StudyResult:
    cfg = ctx.cfg
    pair = ctx.logits()
    if cfg.views is not None:
        pair = pair.select(cfg.views)
    b2, b3 = tune_grids(cfg.tune)
    variants = [("CLIP (l0)", "none", ZERO, ZERO), ("+ l1 (beta2)", "beta2", b2, ZERO),
                ("+ l2 (beta3)", "beta3", ZERO, b3), ("full CALIP", "beta2, beta3", b2, b3)]
    table = Table(["variant", "searched", "beta2", "beta3", "view_weights", "tune_top1",
                   "test_top1"], formats={"beta2": BETA_FORMAT, "beta3": BETA_FORMAT})
    tuned = {}
    for name, searched, grid2, grid3 in variants:
        t = tune_then_test(pair, cfg.tune, grid2, grid3)
        tuned[name] = t
        table.add(name, searched, t.found.beta2, t.found.beta3, t.found.view_weights,
                  t.tune_top1, t.test.top1)

    full = tuned["full CALIP"]
    winner = max(tuned, key=lambda n: tuned[n].tune_top1)
    notes = [f"Each variant searches only its own betas ({cfg.tune.grid}-point grids, beta2 in "
             f"(0, {cfg.tune.beta2_max:g}], beta3 in (0, {cfg.tune.beta3_max:g}]) on the tuning "
             f"set; the others stay 0. View weights: "
             f"{'searched per variant' if cfg.tune.view_weights else 'uniform'}.",
             f"Best variant by tuning accuracy: {winner} (test {tuned[winner].test.top1:.2f}%); "
             f"CALIP adds {full.test.top1 - tuned['CLIP (l0)'].test.top1:+.2f} points over "
             f"CLIP alone on test."]
    figures, extra, summary = {}, {}, {name: t.to_dict() for name, t in tuned.items()}
    if cfg.terms_study.surface:
        w = full.found.view_weights
        on_tune = accuracy_table(pair.tune.l0, pair.tune.l1, pair.tune.l2,
                                 torch.as_tensor(pair.tune.labels), b2, b3, w) * 100.0
        on_test = on_tune if pair.tuned_on_test else accuracy_table(
            pair.test.l0, pair.test.l1, pair.test.l2, torch.as_tensor(pair.test.labels),
            b2, b3, w) * 100.0
        surface = Table(["beta2", "beta3", "tune_top1", "test_top1"],
                        formats={"beta2": BETA_FORMAT, "beta3": BETA_FORMAT})
        for i, x in enumerate(b2.tolist()):
            for j, y in enumerate(b3.tolist()):
                surface.add(x, y, float(on_tune[i, j]), float(on_test[i, j]))
        extra["surface"] = surface
        mark = (full.found.beta2, full.found.beta3)
        panels = [plots.Heatmap(on_tune.numpy(), b2.tolist(), b3.tolist(),
                                f"tuning set ({ctx.tune_split}): the search's view", mark)]
        if not pair.tuned_on_test:
            panels.append(plots.Heatmap(on_test.numpy(), b2.tolist(), b3.tolist(),
                                        "test (for reading only; not used to choose)", mark))

        def draw(path: Path):
            return plots.heatmaps(path, panels, "beta2", "beta3",
                                  f"CALIP top-1 over beta2 x beta3 ({ctx.caption()}); "
                                  f"red cross: chosen on the tuning set",
                                  "top-1 (%)")

        figures["beta_surface.png"] = draw
        summary["surface_max_tune_top1"] = float(on_tune.max())
        notes.append("The surface (beta_surface.png, surface.csv) is computed at the view "
                     "weights of full CALIP.")
    return StudyResult(name="terms", title="CALIP terms: CLIP, + l1, + l2, full", table=table,
                       extra=extra, figures=figures, notes=notes,
                       summary={"variants": summary, "winner": winner})
