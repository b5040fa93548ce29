"""Figures, tables and progress: what a reader of the PNGs, the Markdown and the log sees.

Figures are inspected through their matplotlib artists before saving (the `*_figure`
builders of pointcalip.report.plots), tables through their Markdown text, the log through
captured records.
"""
import importlib.util
import logging
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from matplotlib.lines import Line2D

from pointcalip.ablation import views as views_study
from pointcalip.ablation.context import PairLogits
from pointcalip.config import TuneConfig
from pointcalip.fewshot import report as fewshot_report
from pointcalip.fewshot.result import FewShotResult, FewShotRun, shots_words
from pointcalip.report import plots
from pointcalip.report.results import RunInfo
from pointcalip.search import per_item_logging, search_betas
from pointcalip.pipeline import ViewLogits

ROOT = Path(__file__).resolve().parents[1]


def markers(ax, marker):
    return [a for a in ax.get_lines() if isinstance(a, Line2D) and a.get_marker() == marker]


# ------------------------------------------------------------------------------ heatmaps

def test_chosen_betas_are_marked_where_they_are_with_their_value_in_the_legend():
    b2 = np.linspace(0.001, 1.9, 10)
    b3 = np.linspace(0.001, 0.095, 8)
    values = np.random.default_rng(0).uniform(40, 60, size=(10, 8))
    chosen = (float(b2[0]), float(b3[5]))                 # on the edge, where it was half hidden
    panels = [plots.Heatmap(values, b2, b3, "tuning", chosen),
              plots.Heatmap(values + 1, b2, b3, "test", chosen)]
    fig = plots.heatmaps_figure(panels, "beta2", "beta3", "surface", "top-1 (%)")
    panel_axes = [ax for ax in fig.axes if ax.get_title() in ("tuning", "test")]
    assert len(panel_axes) == 2
    for ax in panel_axes:
        (mark,) = markers(ax, "X")
        assert mark.get_xdata()[0] == pytest.approx(chosen[1])       # beta3 on x
        assert mark.get_ydata()[0] == pytest.approx(chosen[0])       # beta2 on y
        assert not mark.get_clip_on() and mark.get_markersize() >= 12
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert legend == [f"chosen: beta2={chosen[0]:.4g}, beta3={chosen[1]:.4g}"]


# ---------------------------------------------------------------------------------- bars

def bar_texts(ax):
    return [t.get_text() for t in ax.texts if t.get_text()]


def test_bars_carry_their_values_and_the_axis_starts_near_the_data(tmp_path):
    fig = plots.bars_figure(["RN50", "ViT-B/16"], {"PointCLIP": [80.0, 81.0],
                                                  "CALIP": [82.5, None]},
                            "test top-1 (%)", "backbones", min_pad=1.0)
    ax = fig.axes[0]
    assert sorted(bar_texts(ax)) == sorted(["80.0", "81.0", "82.5", "n/a"])
    low, high = ax.get_ylim()
    assert 70 < low < 80 and high > 82.5
    # one point is a visible share of the axis (at a zero baseline it would be ~1%)
    assert 1.0 / (high - low) > 0.05
    assert plots.bars(tmp_path / "b.png", ["a"], {"x": [3.0]}, "y", "t") == (1200, 750)   # 150 dpi


def test_a_methods_two_metrics_share_its_colour_and_the_second_is_hatched():
    groups = {"PointCLIP, top-1": [40.0, 50.0], "PointCLIP, mAcc": [35.0, 45.0],
              "CALIP, top-1": [60.0, 70.0], "CALIP, mAcc": [55.0, 66.0]}
    ax = plots.bars_figure(["a", "b"], groups, "test top-1 and mAcc (%)", "t").axes[0]
    bars = {c.get_label(): c.patches for c in ax.containers}
    edge = {name: {p.get_edgecolor() for p in patches} for name, patches in bars.items()}
    face = {name: {p.get_facecolor() for p in patches} for name, patches in bars.items()}
    assert face["PointCLIP, top-1"] == edge["PointCLIP, mAcc"] != face["CALIP, top-1"]
    assert face["CALIP, top-1"] == edge["CALIP, mAcc"]
    assert {p.get_hatch() for p in bars["CALIP, mAcc"]} == {"///"}
    assert {p.get_hatch() for p in bars["CALIP, top-1"]} == {None}
    # names that are not "<method>, <two metrics>" keep matplotlib's own colours
    assert plots._metric_pairs(["PointCLIP", "CALIP"]) == {}
    assert plots._metric_pairs(["a, top-1", "a, mAcc", "b, top-1"]) == {}


def test_signed_bars_keep_zero_and_non_negative_bars_never_go_below_it():
    assert plots.near_data_limits([-6.25, 0.0, 2.0], include_zero=True)[0] < -6.25
    assert plots.near_data_limits([1.0, 2.0], include_zero=True)[0] <= 0
    assert plots.near_data_limits([0.0, 0.5], min_pad=1.0)[0] == 0.0
    assert plots.near_data_limits([0.25, 1.0])[0] > 0.0


def test_importance_says_which_sign_helps_and_names_views_by_their_angles():
    fig = plots.bars_figure([plots.view_name(3, (1.5 * math.pi, 0.0, 0.5 * math.pi), sep="\n")],
                            {"drop": [-2.0]}, "points", "importance", value_format="+.1f",
                            include_zero=True, note=views_study.IMPORTANCE_SIGN)
    ax = fig.axes[0]
    assert "the view helps" in ax.get_title() and "above 0" in ax.get_title()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["view 3\n(270°, 0°, 90°)"]
    assert bar_texts(ax) == ["-2.0"]
    assert plots.view_name(1, (0.0, 0.0, 0.0), tilt=math.radians(20)) == "view 1 (0°, 0°, 0°) tilt 20°"


# --------------------------------------------------------------------------------- lines

def test_first_k_line_is_drawn_on_top_and_stays_visible_where_lines_coincide():
    same = [50.0, 60.0, 70.0]
    series, styles = views_study.views_lines(same, same, [40.0, 50.0, 60.0], same)
    fig = plots.lines_figure([1, 2, 3], series, "views", "top-1", "views", styles=styles)
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    first = lines["first k (published order)"]
    others = [lines[name] for name in series if name != "first k (published order)"]
    assert all(first.get_zorder() > other.get_zorder() for other in others)
    assert first.get_linestyle() == "--" and first.get_markerfacecolor() == "none"
    assert all(first.get_markersize() > other.get_markersize() for other in others)


def test_a_second_metric_gets_its_own_panel_with_the_same_lines_and_one_legend():
    top1 = views_study.views_lines([50.0, 60.0], [55.0, 61.0], [40.0, 50.0], [45.0, 55.0])
    macc = views_study.views_lines([48.0, 58.0], [52.0, 59.0], [35.0, 47.0], [41.0, 52.0])[0]
    fig = plots.lines_figure([1, 2], top1[0], "number of views", "test top-1 (%)", "views",
                             styles=top1[1], second=("test mAcc (%)", macc))
    left, right = fig.axes
    assert right.get_ylabel() == "test mAcc (%)" and left.get_ylabel() == "test top-1 (%)"
    drawn = {line.get_label(): list(line.get_ydata()) for line in right.get_lines()}
    assert drawn == {name: ys for name, ys in macc.items()}
    first = [line for line in right.get_lines() if line.get_label().startswith("first k")][0]
    assert first.get_linestyle() == "--"                    # the styles hold in both panels
    assert len(fig.legends) == 1 and len(fig.legends[0].get_texts()) == 4


# -------------------------------------------------------------------------------- curves

def test_curves_show_train_accuracy_epoch_zero_and_the_selected_epoch(monkeypatch, tmp_path):
    seen = {}

    def capture(path, epochs, loss, accuracies, selected, title, size=plots.CURVES_SIZE):
        seen.update(epochs=epochs, loss=loss, accuracies=accuracies, selected=selected)
        fig = plots.training_curves_figure(epochs, loss, accuracies, selected, title)
        seen["fig"] = fig
        return size

    monkeypatch.setattr(plots, "training_curves", capture)
    curves = [{"epoch": e, "loss": 1.0 / e, "train_accuracy": 50.0 + e, "val_accuracy": v}
              for e, v in ((1, 30.0), (2, 45.0), (3, 40.0))]
    fewshot_report.plot_curves(curves, tmp_path / "c.png", "t", selected_epoch=0,
                               initial_val_accuracy=47.5)
    assert seen["epochs"] == [0, 1, 2, 3]
    assert seen["selected"] == (0, 47.5)                      # the untrained model won
    train = [v for k, v in seen["accuracies"].items() if k.startswith("train")]
    assert train == [[None, 51.0, 52.0, 53.0]]
    top = seen["fig"].axes[0]
    (star,) = markers(top, "*")
    assert (star.get_xdata()[0], star.get_ydata()[0]) == (0, 47.5)
    assert "epoch 0" in star.get_label()

    fewshot_report.plot_curves(curves, tmp_path / "c.png", "t", selected_epoch=2)
    assert seen["epochs"] == [1, 2, 3] and seen["selected"] == (2, 45.0)


# --------------------------------------------------------------------------- attention

def test_attention_grid_has_a_colour_bar_stating_the_scaling():
    images = np.zeros((2, 16, 16), dtype=np.float32)
    fig = plots.attention_grid_figure(images, [("predicted: a", np.ones((2, 16, 16)))],
                                      ["view 0 (0°, 0°, 90°)", "view 1 (90°, 0°, 90°)"], "t")
    bars = [ax for ax in fig.axes if "scaled per view" in ax.get_ylabel()]
    assert len(bars) == 1
    assert bars[0].get_ylim() == pytest.approx((0.0, 1.0))
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["view 0 (0°, 0°, 90°)", "view 1 (90°, 0°, 90°)"]


# -------------------------------------------------------------------------------- tables

def fewshot_result():
    runs = [FewShotRun("pointclip", 0, None, 10.0, 11.0),
            FewShotRun("tip", 1, 1, 40.0, 41.0), FewShotRun("tip", 2, 1, 50.0, 51.0)]
    info = RunInfo.collect("cpu", "float32", None, ["pointcalip", "fewshot"])
    return FewShotResult(config={"name": "x", "backbone": "RN50", "projector": {"name": "pointclip"}},
                         run=info, dataset="modelnet40", num_test_clouds=8, num_val_clouds=4,
                         protocol="val", runs=runs)


def test_fewshot_tables_read_as_a_paper_writes_them():
    md = fewshot_result().to_markdown()
    assert "| method | zero-shot | 1 shot | 2 shots |" in md
    assert "1 shots" not in md and "None" not in md
    assert "| PointCLIP | 0 | - |" in md                     # no seed for a zero-shot row
    assert [shots_words(k) for k in (0, 1, 16)] == ["zero-shot", "1 shot", "16 shots"]


def test_zero_shot_per_class_table_lists_only_the_classes_evaluated(small_modelnet, tiny_checkpoints,
                                                                     tmp_path):
    from pointcalip.cli import main

    out = tmp_path / "out"
    assert main(["zeroshot", "--config", "modelnet40", "--set", f"data.root={small_modelnet}",
                 "--set", f"backbone={tiny_checkpoints['vit']}", "--set", f"cache_dir={tmp_path}/s",
                 "--set", f"output_dir={out}", "--set", "tune.grid=4",
                 "--set", "tune.val_fraction=0.5"]) == 0
    md = next(out.rglob("results.md")).read_text()
    table = md[md.index("| class | n |"):].splitlines()
    rows = [line for line in table[2:] if line.startswith("| ")]
    assert [r.split(" | ")[0][2:] for r in rows] == ["airplane", "bed", "chair", "lamp"]
    assert "36 of the 40 classes have no test cloud" in md


# ------------------------------------------------------------------------------ progress

def random_pair(n=12, v=3, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = ViewLogits(*(torch.randn(n, v, k, generator=g) for _ in range(3)),
                        np.arange(n) % k)
    return PairLogits(logits, logits)


def test_searches_in_a_loop_log_at_debug_through_the_bar(monkeypatch, caplog):
    pair = random_pair()
    with caplog.at_level(logging.DEBUG, logger="pointcalip.search"):
        search_betas(*pair.test.as_tuple(), torch.as_tensor(pair.test.labels), [0.5], [0.05])
    assert [r.levelno for r in caplog.records if r.name == "pointcalip.search"] == [logging.INFO]

    console = logging.StreamHandler()                     # a console handler, as the CLI's
    root = logging.getLogger()
    root.addHandler(console)
    handlers_seen = []
    real = views_study.tune_then_test

    def spy(*args, **kwargs):
        handlers_seen.append([type(h).__name__ for h in root.handlers])
        return real(*args, **kwargs)

    monkeypatch.setattr(views_study, "tune_then_test", spy)
    ctx = SimpleNamespace(cfg=SimpleNamespace(views_study=SimpleNamespace(search_betas=True),
                                              tune=TuneConfig(grid=5)),
                          logits=lambda: pair)
    caplog.clear()
    try:
        with caplog.at_level(logging.DEBUG, logger="pointcalip.search"):
            scores = views_study.score_subsets(ctx)
    finally:
        root.removeHandler(console)
    assert len(scores) == 7 and len(handlers_seen) == 7
    assert all("_TqdmLoggingHandler" in names and "StreamHandler" not in names
               for names in handlers_seen)                # printed above the bar, not through it
    levels = [r.levelno for r in caplog.records if r.name == "pointcalip.search"]
    assert len(levels) == 7 and set(levels) == {logging.DEBUG}
    with per_item_logging():
        pass
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="pointcalip.search"):
        search_betas(*pair.test.as_tuple(), torch.as_tensor(pair.test.labels), [0.5], [0.05])
    assert [r.levelno for r in caplog.records] == [logging.INFO]         # restored after


# ---------------------------------------------------------------------------- montage

def test_render_views_captions_are_large_enough_to_read(tmp_path):
    spec = importlib.util.spec_from_file_location("render_views", ROOT / "scripts" / "render_views.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    image = np.asarray(module.montage(np.zeros((2, 224, 224)), ["0: (0°, 0°, 90°)", "1: x"], 2))
    caption = image[4 + 224: 4 + 224 + module.CAPTION, 4: 4 + 224]
    rows = np.nonzero((caption > 200).any(axis=1))[0]
    assert rows.size and rows.max() - rows.min() + 1 >= 11     # glyphs at least 11 px tall
