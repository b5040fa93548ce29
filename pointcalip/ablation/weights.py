"""View-weights study: uniform weights vs weights searched on validation vs searched on test.

- uniform: betas searched on the tuning set, every view weight 1;
- searched on validation: betas and view weights searched on the validation subset of TRAIN
  (the honest protocol; only when ``tune.split`` is ``val``);
- searched on test: the same search on the test split itself, as the published code does:
  its test accuracy is OPTIMISTIC (tuned on the very clouds it is reported on).

Weights are chosen per view from ``weights_study.choices`` (docs/calip.md#the-search).
"""
from __future__ import annotations

from pathlib import Path

from ..report import plots
from ..report.results import backbone_label
from .context import AblationContext, PairLogits
from .tables import BETA_FORMAT, StudyResult, Table
from .tuning import tune_then_test


def run_weights(ctx: AblationContext) -> StudyResult:
    cfg = ctx.cfg
    pair = ctx.logits()
    if cfg.views is not None:
        pair = pair.select(cfg.views)
    views = list(cfg.views) if cfg.views is not None else list(range(pair.num_views))
    choices = cfg.weights_study.choices
    on_test = PairLogits(pair.test, pair.test)
    rows = [("uniform", f"betas tuned on {ctx.tune_split}", tune_then_test(
        pair, cfg.tune, search_weights=False))]
    if not pair.tuned_on_test:
        rows.append(("searched on validation", "tuned on val (honest)",
                     tune_then_test(pair, cfg.tune, search_weights=True, choices=choices)))
    rows.append(("searched on test", "tuned on TEST (optimistic)",
                 tune_then_test(on_test, cfg.tune, search_weights=True, choices=choices)))
    table = Table(["weights", "protocol", "view_weights", "beta2", "beta3", "tuned_on_top1",
                   "test_top1", "test_macc"], formats={"beta2": BETA_FORMAT, "beta3": BETA_FORMAT})
    for name, protocol, t in rows:
        table.add(name, protocol, t.found.view_weights, t.found.beta2, t.found.beta3,
                  t.tune_top1, t.test.top1, t.test.mean_per_class)
    honest = [r for r in rows if r[0] != "searched on test"]
    best = max(honest, key=lambda r: r[2].tune_top1)
    notes = [f"Views {views}; weights chosen per view from {choices}. `tuned_on_top1` is the "
             f"accuracy on the split the row was tuned on.",
             "The 'searched on test' row tunes on the test split itself (the published "
             "protocol): its test accuracy is optimistic and not comparable to the others.",
             f"Best honest choice by tuning accuracy: {best[0]} (test {best[2].test.top1:.2f}%)."]

    def draw(path: Path):
        groups = {f"{name} (test top-1 {t.test.top1:.1f}%, mAcc {t.test.mean_per_class:.1f}%)":
                  t.found.view_weights for name, _, t in rows}
        view_set = cfg.projector.build().view_set
        tilts = view_set.tilts or (0.0,) * len(view_set.angles)
        return plots.bars(path, [plots.view_name(v, view_set.angles[v], tilts[v], "\n")
                                 for v in views], groups,
                          "view weight",
                          f"View weights: {cfg.data.label}, {cfg.projector.name}, "
                          f"{backbone_label(cfg.backbone)}; rows tuned as labelled",
                          value_format=".2f")

    return StudyResult(name="weights", title="View weights: uniform vs searched on validation "
                       "vs searched on test (optimistic)", table=table,
                       figures={"weights.png": draw}, notes=notes,
                       summary={"rows": {name: {"protocol": protocol, **t.to_dict()}
                                         for name, protocol, t in rows},
                                "best_honest": best[0]})
