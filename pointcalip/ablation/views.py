"""Views study: accuracy against the number of views, from every subset of the views.

The projector's full view set is encoded once (the feature store) and its per-view logits
computed once; every one of the 2^V - 1 subsets is an index into them. For each subset the
betas are searched on the tuning set (``views_study.search_betas``; uniform view weights,
since weights are the weights study's question) and the result is evaluated once on test.

Per view count k the table gives: the first k views in the published order (the
projector's view list, or ``views_study.order``), the best and the worst subset of size k
chosen by TUNING accuracy (ties: the first in lexicographic order) with their test
accuracy, and the mean test accuracy over all subsets of size k. Leave-one-view-out
importance is the test accuracy of all views minus that of all views but one.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ..report import plots
from ..search import per_item_logging
from .context import AblationContext
from .tables import BETA_FORMAT, StudyResult, Table, subset_label
from .tuning import test_accuracy, tune_then_test
from ..core.words import count


@dataclass
class SubsetScore:
    views: Tuple[int, ...]
    beta2: float
    beta3: float
    tune: float          # top-1 on the tuning set, percent
    test: float          # top-1 on test, percent
    test_macc: float     # mean class accuracy on test, percent


def all_subsets(num_views: int) -> List[Tuple[int, ...]]:
    """Every non-empty subset of range(num_views), by size, then lexicographically."""
    return [s for k in range(1, num_views + 1)
            for s in itertools.combinations(range(num_views), k)]


def score_subsets(ctx: AblationContext) -> Dict[Tuple[int, ...], SubsetScore]:
    """Tune and test every subset of the projector's views (see the module doc)."""
    cfg = ctx.cfg
    pair = ctx.logits()
    fixed = None if cfg.views_study.search_betas else \
        tune_then_test(pair, cfg.tune, search_weights=False)
    scores = {}
    # one bar (rate, ETA); each subset's search summary goes to DEBUG, printed above the bar
    with logging_redirect_tqdm(), per_item_logging():
        for views in tqdm(all_subsets(pair.num_views), desc="view subsets", unit="subset",
                          disable=None):
            sub = pair.select(views)
            if fixed is None:
                t = tune_then_test(sub, cfg.tune, search_weights=False)
                scores[views] = SubsetScore(views, t.found.beta2, t.found.beta3, t.tune_top1,
                                            t.test.top1, t.test.mean_per_class)
            else:
                b2, b3 = fixed.found.beta2, fixed.found.beta3
                test = test_accuracy(sub.test, b2, b3)
                scores[views] = SubsetScore(views, b2, b3, test_accuracy(sub.tune, b2, b3).top1,
                                            test.top1, test.mean_per_class)
    return scores


IMPORTANCE_SIGN = "above 0: the view helps (accuracy drops without it); below 0: it hurts"

#: the "first k" line is drawn on top, dashed with hollow markers, so that it shows where it
#: coincides with another line
FIRST_K_STYLE = dict(linestyle="--", linewidth=2.2, marker="s", markersize=10,
                     markerfacecolor="none", markeredgewidth=2, color="black", zorder=5)


def views_lines(first, best, worst, mean):
    """(series, styles) of views.png: test top-1 (or mAcc) per view count."""
    series = {"first k (published order)": first, "best k (by tuning accuracy)": best,
              "worst k (by tuning accuracy)": worst, "mean over subsets": mean}
    return series, {"first k (published order)": FIRST_K_STYLE}


def best_and_worst(scores: Sequence[SubsetScore]) -> Tuple[SubsetScore, SubsetScore]:
    """By tuning accuracy; ties go to the first subset in the order given."""
    best = max(scores, key=lambda s: s.tune)          # max/min keep the first of equals
    worst = min(scores, key=lambda s: s.tune)
    return best, worst


def per_count(scores, order: List[int], v: int):
    """Per number of views k: the first k views of ``order``, the best and worst subsets (by
    tuning accuracy) and the mean -> (table, (first, best, worst, mean) test top-1 lines,
    the same four test mAcc lines)."""
    table = Table(["k", "first_k_views", "first_k_test", "best_views", "best_tune", "best_test",
                   "worst_views", "worst_tune", "worst_test", "mean_test", "subsets",
                   "first_k_test_macc", "best_test_macc", "worst_test_macc", "mean_test_macc"])
    top1, macc = [[], [], [], []], [[], [], [], []]
    for k in range(1, v + 1):
        of_k = [s for s in scores.values() if len(s.views) == k]
        best, worst = best_and_worst(of_k)
        head = scores[tuple(sorted(order[:k]))] if k <= len(order) else None
        mean = float(np.mean([s.test for s in of_k]))
        mean_macc = float(np.mean([s.test_macc for s in of_k]))
        table.add(k, subset_label(order[:k]) if head else None, head.test if head else None,
                  subset_label(best.views), best.tune, best.test, subset_label(worst.views),
                  worst.tune, worst.test, mean, len(of_k), head.test_macc if head else None,
                  best.test_macc, worst.test_macc, mean_macc)
        for lines, values in ((top1, (head.test if head else None, best.test, worst.test, mean)),
                              (macc, (head.test_macc if head else None, best.test_macc,
                                      worst.test_macc, mean_macc))):
            for line, value in zip(lines, values):
                line.append(value)
    return table, top1, macc


def leave_one_out(scores, angles) -> Table:
    """Per view: accuracy without it (and its drop from all views) and with it alone."""
    v = len(angles)
    everything = scores[tuple(range(v))]
    importance = Table(["view", "euler_deg", "test_without", "test_drop", "tune_without",
                        "tune_drop", "test_alone"])
    for view in range(v):
        rest = tuple(i for i in range(v) if i != view)
        without = scores[rest] if rest else None
        importance.add(view, [round(math.degrees(a)) for a in angles[view]],
                       without.test if without else None,
                       everything.test - without.test if without else None,
                       without.tune if without else None,
                       everything.tune - without.tune if without else None,
                       scores[(view,)].test)
    return importance


def views_notes(search_betas: bool, v: int, top, everything, drops) -> List[str]:
    """The study's notes: what was searched, the best subset, the costliest view."""
    label = "betas searched on the tuning set for every subset" if search_betas \
        else "betas searched once with all views, used for every subset"
    notes = [
        f"{2 ** v - 1} view subsets of the projector's {count(v, 'view')}, {label}; uniform view "
        "weights.",
        f"Views were encoded once for all {count(v, 'view')}; every subset is read from the "
        f"per-view logits (no re-encoding).",
        f"Best subset overall, chosen by tuning accuracy: {subset_label(top.views)} "
        f"({count(len(top.views), 'view')}): tuning {top.tune:.2f}%, test {top.test:.2f}%. "
        f"All {count(v, 'view')}: tuning {everything.tune:.2f}%, test {everything.test:.2f}%.",
        "Best and worst subsets per count are chosen by tuning accuracy and reported on test.",
    ]
    if v > 1 and any(d is not None for d in drops):
        most = int(np.nanargmax(np.array([np.nan if d is None else d for d in drops])))
        notes.append(f"Leaving out view {most} costs the most: {drops[most]:+.2f} points of "
                     f"test accuracy.")
    return notes


def run_views(ctx: AblationContext) -> StudyResult:
    cfg = ctx.cfg
    projector = cfg.projector.build()
    v = projector.num_views
    order = list(cfg.views_study.order or range(v))
    scores = score_subsets(ctx)

    subsets = Table(["views", "k", "beta2", "beta3", "tune_top1", "test_top1", "test_macc"],
                    formats={"beta2": BETA_FORMAT, "beta3": BETA_FORMAT})
    for s in scores.values():
        subsets.add(subset_label(s.views), len(s.views), s.beta2, s.beta3, s.tune, s.test,
                    s.test_macc)

    table, top1_lines, macc_lines = per_count(scores, order, v)
    everything = scores[tuple(range(v))]
    angles = projector.view_set.to_dict()["angles"]
    importance = leave_one_out(scores, angles)
    top = best_and_worst(list(scores.values()))[0]
    drops = importance.column("test_drop")
    notes = views_notes(cfg.views_study.search_betas, v, top, everything, drops)

    ks = list(range(1, v + 1))
    title = ctx.caption()

    def draw_lines(path: Path):
        series, styles = views_lines(*top1_lines)
        return plots.lines(path, ks, series, "number of views", "test top-1 (%)",
                           f"Accuracy vs views: {title}", styles=styles,
                           second=("test mAcc (%)", views_lines(*macc_lines)[0]))

    tilts = projector.view_set.tilts or (0.0,) * v

    def draw_importance(path: Path):
        return plots.bars(path, [plots.view_name(i, angles[i], tilts[i], "\n") for i in range(v)],
                          {"test accuracy lost without the view": drops},
                          "points of test top-1 (all views minus all but this one)",
                          f"Leave-one-view-out importance: {title}", value_format="+.1f",
                          include_zero=True, note=IMPORTANCE_SIGN, min_pad=1.0)

    return StudyResult(
        name="views", title="Accuracy against the number of views", table=table,
        extra={"importance": importance, "subsets": subsets},
        figures={"views.png": draw_lines, "importance.png": draw_importance}, notes=notes,
        summary={"order": order, "betas_per_subset": cfg.views_study.search_betas,
                 "best_subset": {"views": list(top.views), "tune_top1": top.tune,
                                 "test_top1": top.test, "beta2": top.beta2, "beta3": top.beta3},
                 "all_views": {"tune_top1": everything.tune, "test_top1": everything.test,
                               "beta2": everything.beta2, "beta3": everything.beta3},
                 "importance": importance.records(), "subsets": subsets.records()})
