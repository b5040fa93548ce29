"""What a researcher pastes into a paper (issue 31): spreads only where there are several
seeds, titles by what ran, partial data named, metrics the field reports, figures and logs
(true training times: tests/test_fewshot_robustness.py)."""
import numpy as np
import pytest
import torch

from adapter_fit import adapter_fit


# ------------------------------------------------------------------------------- spread

def _fewshot_result(runs):
    from pointcalip.fewshot.report import FewShotResult
    from pointcalip.report.results import RunInfo

    info = RunInfo("pointcalip fewshot", "2026-01-01", {}, "cpu", "float32", "/data", "host")
    config = {"name": "realistic_rn101", "backbone": "ViT-B/16", "projector": {"name": "realistic"}}
    return FewShotResult(config, info, "scanobjectnn_pb_t50_rs", 100, 20, "protocol", runs)


def test_spread_only_where_seeds_vary():
    from pointcalip.fewshot.report import FewShotRun

    runs = [FewShotRun("pointclip", 0, None, 30.0, 31.0), FewShotRun("calip", 0, None, 35.0, 36.0),
            FewShotRun("adapter", None, None, 50.0, 51.0),
            FewShotRun("tip", 1, 1, 7.5, 8.0),
            FewShotRun("tip", 4, 1, 60.0, 61.0), FewShotRun("tip", 4, 2, 70.0, 71.0)]
    result = _fewshot_result(runs)
    by = {(s["method"], s["shots"]): s for s in result.summary()}
    assert by[("tip", 1)]["std"] is None and by[("tip", 1)]["seeds"] == 1
    assert by[("tip", 4)]["std"] == pytest.approx(7.0710678) and by[("tip", 4)]["seeds"] == 2
    assert by[("pointclip", 0)]["std"] is None and by[("pointclip", 0)]["seeds"] == 0
    assert by[("adapter", None)]["std"] is None
    md = result.to_markdown()
    assert "7.50 (1 seed)" in md and "65.00 ± 7.07 (2 seeds)" in md
    assert "± 0.00" not in md
    assert "| PointCLIP | 30.00 |" in md
    assert "50.00 (released checkpoint)" in md
    assert md.splitlines()[0] == "# Few-shot results: scanobjectnn_pb_t50_rs, projector realistic, ViT-B/16"
    assert "- Seeds: [1, 2]" in md


def test_no_seeds_line_when_nothing_drew_a_seed():
    from pointcalip.fewshot.report import FewShotRun

    md = _fewshot_result([FewShotRun("adapter", None, None, 50.0, 51.0)]).to_markdown()
    assert "Seeds" not in md.split("Test top-1")[1].split("|")[0] and "- Seeds:" not in md


def test_segment_folder_does_not_depend_on_pictures(tmp_path):
    from pointcalip.config import config_class, load_config
    from pointcalip.segmentation.run import default_output_dir

    root = [f"data.root={tmp_path}"]                             # no data: the settings alone
    folders = {default_output_dir(load_config(config_class("segment"), ["shapenetpart"],
                                              [f"pictures={n}", *root])) for n in (0, 2, 5)}
    assert len(folders) == 1
    other = default_output_dir(load_config(config_class("segment"), ["shapenetpart"],
                                           ["tune.seed=7", *root]))
    assert other not in folders                                  # a setting that changes numbers


# ------------------------------------------------------------------------------- metrics

def test_mean_class_accuracy_and_confusion_matrix():
    from pointcalip.report.metrics import accuracy

    # 3 classes: class 0 has 4 clouds (3 right), class 1 has 1 (right), class 2 has 1 (wrong)
    labels = [0, 0, 0, 0, 1, 2]
    pred = [0, 0, 0, 1, 1, 0]
    logits = torch.nn.functional.one_hot(torch.tensor(pred), 3).float()
    acc = accuracy(logits, labels)
    assert acc.top1 == pytest.approx(100 * 4 / 6)
    assert acc.mean_per_class == pytest.approx(100 * (0.75 + 1 + 0) / 3)
    assert acc.topk()["macc"] == acc.mean_per_class
    assert acc.confusion.tolist() == [[3, 1, 0], [0, 1, 0], [1, 0, 0]]


def test_confusion_csv_and_figure(tmp_path):
    from pointcalip.report.results import confusion_csv, write_confusion

    matrix = np.array([[3, 1], [0, 2]])
    assert confusion_csv(["chair", "table"], matrix).splitlines() == [
        "true \\ predicted,chair,table", "chair,3,1", "table,0,2"]
    written = write_confusion(tmp_path, "test_calip", ["chair", "table"], matrix, fmt="svg")
    assert [p.name for p in written] == ["test_calip.csv", "test_calip.svg"]
    assert written[1].read_text().lstrip().startswith("<?xml")


def test_corruption_error_rates_and_dgcnn_normalised_errors():
    from pointcalip.benchmark.corruption_error import MODELNET_C_DGCNN_OA, error_rates, normalised_errors

    e = error_rates({"gaussian": {1: 90.0, 2: 80.0}, "lidar": {1: 50.0, 2: 40.0}})
    assert e["cells"]["gaussian"] == {1: 10.0, 2: 20.0}
    assert e["per_corruption"] == {"gaussian": 15.0, "lidar": 55.0} and e["mean"] == 35.0
    assert normalised_errors(92.0, {"gaussian": 85.0}) is None          # no DGCNN reference
    n = normalised_errors(92.6, {"jitter": 68.4, "scale": 80.0})
    assert n["ce"]["jitter"] == pytest.approx(1.0)                      # DGCNN itself: 1
    assert n["ce"]["scale"] == pytest.approx(0.2 / (1 - MODELNET_C_DGCNN_OA["scale"]))
    assert n["rce"]["scale"] == pytest.approx((0.926 - 0.8) / (0.926 - 0.906))
    assert n["mce"] == pytest.approx((1.0 + 0.2 / 0.094) / 2)


def test_dgcnn_normalised_errors_only_for_the_benchmark_they_were_measured_on():
    from pointcalip.benchmark.result import BenchmarkResult, SetScore
    from pointcalip.report.metrics import accuracy

    def score(label, right, corruption=None, severity=None):      # 4 clouds, ``right`` correct
        logits = torch.nn.functional.one_hot(torch.tensor([0] * right + [1] * (4 - right)), 2).float()
        acc = accuracy(logits, [0, 0, 0, 0])
        return SetScore(label, 4, acc, acc, corruption, severity)

    cells = [score(f"jitter_{s}", r, "jitter", s) for s, r in zip(range(5), (4, 3, 3, 2, 1))]

    def result(benchmark, original=None):
        return BenchmarkResult(None, None, benchmark, "", {}, [], [], "", 0, None,
                               score("modelnet40 test", 4), original, cells)

    error = np.mean([0, 25, 25, 50, 75])                            # jitter, mean over 5 levels
    for benchmark in ("scanobjectnn_c", "modelnet40c"):             # same names, other data
        assert result(benchmark).errors("calip")["dgcnn_normalised"] is None
    assert result("scanobjectnn_c").errors("calip")["mean_vs_dgcnn"] is None
    n = result("modelnet_c", score("clean", 3)).errors("calip")["dgcnn_normalised"]
    assert n["ce"]["jitter"] == pytest.approx(error / (100 - 68.4))
    assert n["rce"]["jitter"] == pytest.approx((error - 25.0) / (92.6 - 68.4))   # clean.h5: 25%
    assert (n["clean_set"], n["comparable"]) == ("clean", False)           # 1 of 7 corruptions
    n = result("modelnet_c").errors("calip")["dgcnn_normalised"]           # no clean.h5 read
    assert n["rce"]["jitter"] == pytest.approx(error / (92.6 - 68.4))
    assert n["clean_set"] == "modelnet40 test"
    assert result("modelnet_c").errors("calip")["mean_vs_dgcnn"] is None


# ------------------------------------------------------------------------------- v2 prompts

def test_v2_prompts_are_installed_checked_and_named_by_templates_v2(tmp_path, monkeypatch, capsys):
    import hashlib
    import json

    import pointcalip.prompt_downloads as pd
    from pointcalip.cli import main
    from pointcalip.config import ZeroShotConfig, load_config

    text = json.dumps({c: [f"a depth map of a {c}."] for c in ("airplane", "bathtub")}).encode()
    blob = hashlib.sha1(b"blob %d\0" % len(text) + text).hexdigest()
    entry = pd.PromptFile("zeroshot_cls/prompts/modelnet40_1000.json", blob,
                          hashlib.sha256(text).hexdigest(), ("modelnet40",))
    monkeypatch.setattr(pd, "V2_PROMPTS", (entry,))
    checkout = tmp_path / "PointCLIP_V2"
    (checkout / "zeroshot_cls" / "prompts").mkdir(parents=True)
    (checkout / entry.path).write_bytes(text)
    root = tmp_path / "data"
    assert main(["download", "v2_prompts", "--from", str(checkout), "--root", str(root)]) == 0
    installed = root / "prompts" / "pointclip_v2" / "modelnet40_1000.json"
    assert installed.read_bytes() == text

    monkeypatch.setenv("POINTCALIP_HOME", str(tmp_path))          # data_dir() = tmp/data
    cfg = load_config(ZeroShotConfig, ["modelnet40"], ["templates=v2"])
    assert cfg.templates == str(installed)

    (checkout / entry.path).write_bytes(text + b" ")                # not V2's file
    assert main(["download", "v2_prompts", "--from", str(checkout), "--root", str(root),
                 "--force"]) == 2
    err = capsys.readouterr().err
    assert "is not PointCLIP V2's modelnet40_1000.json" in err and "Traceback" not in err
    assert installed.read_bytes() == text                            # the good copy is kept


def test_the_real_v2_checksums_are_pinned():
    import pointcalip.prompt_downloads as pd

    assert {e.name: e.blob[:8] for e in pd.V2_PROMPTS} == {
        "modelnet40_1000.json": "200d8873", "scanobjectnn_1000.json": "27ba5fa8",
        "shapenetpart_700.json": "f9830d06"}
    assert all(e.url.startswith("https://raw.githubusercontent.com/yangyangyang127/PointCLIP_V2/0b5aee8")
               for e in pd.V2_PROMPTS)


# ------------------------------------------------------------------------------- figures

def test_bars_start_at_zero_unless_a_dot_plot_shows_small_differences():
    from pointcalip.report import plots

    ax = plots.bars_figure(["a", "b"], {"x": [2.5, 5.0]}, "top-1 (%)", "prompts").axes[0]
    assert ax.get_ylim()[0] == 0.0 and len(ax.patches) == 2           # 5.0 twice as long as 2.5
    ax = plots.bars_figure(["a", "b"], {"x": [80.0, 82.0]}, "top-1 (%)", "t", min_pad=1.0).axes[0]
    assert ax.get_ylim()[0] > 70 and not ax.patches                   # dots, said in the title
    assert "dot plot" in ax.get_title()


def test_figure_format_and_dpi_are_the_commands_choice(tmp_path):
    from PIL import Image

    from pointcalip.report import plots

    with plots.figure_output("svg"):
        plots.bars(tmp_path / "b.png", ["a"], {"x": [3.0]}, "y", "t")
    assert (tmp_path / "b.svg").read_text().lstrip().startswith("<?xml")
    assert not (tmp_path / "b.png").exists()
    with plots.figure_output("png", 300):
        size = plots.bars(tmp_path / "c.png", ["a"], {"x": [3.0]}, "y", "t")
    with Image.open(tmp_path / "c.png") as image:
        assert image.size == size == (2400, 1500)
    with plots.figure_output("pdf"):
        plots.lines(tmp_path / "l.png", [1, 2], {"a": [1.0, 2.0]}, "x", "y", "t")
    assert (tmp_path / "l.pdf").read_bytes()[:4] == b"%PDF"


# ------------------------------------------------------------------------------- logs

def test_training_logs_a_steady_line_without_a_terminal(tmp_path, caplog):
    caplog.set_level("INFO", logger="pointcalip.fewshot.train")
    adapter_fit(tmp_path / "run", epochs=20)              # pytest's stderr is no terminal
    lines = [r.getMessage() for r in caplog.records if "epoch" in r.getMessage()]
    assert len(lines) == 10 and lines[0].startswith("train: epoch 2 of 20, loss ")
    assert lines[-1].startswith("train: epoch 20 of 20")


def test_progress_logs_about_ten_lines_when_the_bar_is_off(caplog):
    from pointcalip.core.progress import progress

    caplog.set_level("INFO", logger="pointcalip.progress")
    assert list(progress(range(35), "locate test")) == list(range(35))
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "locate test: 3 of 35 done" and lines[-1] == "locate test: 35 of 35 done"
    assert 10 <= len(lines) <= 12


def test_classify_says_what_it_took(tmp_path, capsys, tiny_checkpoints):
    from pointcalip.cli import main

    cloud = tmp_path / "c.npy"
    np.save(cloud, np.random.default_rng(0).normal(size=(256, 3)).astype(np.float32))
    assert main(["classify", str(cloud), "--classes", "chair", "table", "--backbone",
                 str(tiny_checkpoints["vit"]), "--beta2", "1.5", "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert (f"pointcalip classify: backbone {tiny_checkpoints['vit']}, projector pointclip "
            f"(all views), templates pointclip, beta2 1.5, beta3 0, view weights equal "
            f"(from defaults; options --backbone --beta2)") in err


def test_segmentation_pictures_name_views_blank_the_background_and_list_used_parts(tmp_path):
    from pointcalip.segmentation import pictures

    assert pictures.shape_iou(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 3) == \
        pytest.approx(100 * (0.5 + 2 / 3 + 1.0) / 3)
    image = np.zeros((32, 32), np.float32)
    image[10:20, 12:18] = 0.8
    assert pictures.object_box(image, margin=2) == (8, 22, 10, 20)
    maps = np.zeros((32, 32), np.int64)                       # part 0 everywhere, part 2 nowhere
    path = pictures.draw_view_maps(tmp_path / "v.png", image[None], maps[None],
                                   ["wing", "body", "tail"], "t", ["view 0\n(0°, 0°, 90°)"])
    assert path.is_file()


def test_fewshot_rows_carry_the_mean_class_accuracy_and_the_tables_show_it():
    from pointcalip.fewshot.report import FewShotRun

    runs = [FewShotRun("calip", 0, None, 40.0, 41.0, test_mean_class_accuracy=35.0),
            FewShotRun("tip", 4, 1, 60.0, 61.0, test_mean_class_accuracy=50.0),
            FewShotRun("tip", 4, 2, 70.0, 71.0, test_mean_class_accuracy=64.0)]
    result = _fewshot_result(runs)
    by = {(s["method"], s["shots"]): s for s in result.summary()}
    assert by[("tip", 4)]["macc"] == 57.0 and by[("calip", 0)]["macc"] == 35.0
    md = result.to_markdown()
    assert "| CALIP | 35.00 | - |" in md and "| Tip-Adapter | - | 57.00 |" in md
    assert "| Tip-Adapter | 4 | 1 | 60.00 | 50.00 | 61.00 |" in md


def test_accuracy_vs_shots_draws_the_mean_class_accuracy_beside_top1(tmp_path, monkeypatch):
    from pointcalip.fewshot.report import FewShotRun
    from pointcalip.fewshot.result import plot_accuracy_vs_shots
    from pointcalip.report import plots

    runs = [FewShotRun("calip", 0, None, 40.0, 41.0, test_mean_class_accuracy=35.0),
            FewShotRun("tip", 1, 1, 50.0, 51.0, test_mean_class_accuracy=45.0),
            FewShotRun("tip", 4, 1, 60.0, 61.0, test_mean_class_accuracy=50.0),
            FewShotRun("tip", 4, 2, 70.0, 71.0, test_mean_class_accuracy=64.0)]
    summary = _fewshot_result(runs).summary()
    drawn = {}
    monkeypatch.setattr(plots, "bands", lambda *a, **k: drawn.update(args=a, second=k["second"]))
    assert plot_accuracy_vs_shots(summary, tmp_path / "a.png") == tmp_path / "a.png"
    assert drawn["args"][1] == {"Tip-Adapter": ([1, 4], [50.0, 65.0], [0.0, pytest.approx(7.0710678)])}
    label, series, references = drawn["second"]
    assert label == "test mAcc (%)" and references == {"CALIP (zero-shot)": 35.0}
    assert series == {"Tip-Adapter": ([1, 4], [45.0, 57.0], [0.0, pytest.approx(9.8994949)])}
    monkeypatch.undo()
    old = [FewShotRun("tip", 4, 1, 60.0, 61.0)]                    # no mAcc recorded: one panel
    monkeypatch.setattr(plots, "bands", lambda *a, **k: drawn.update(second=k["second"]))
    plot_accuracy_vs_shots(_fewshot_result(old).summary(), tmp_path / "b.png")
    assert drawn["second"] is None
    monkeypatch.undo()
    assert plots.bands(tmp_path / "c.png", drawn["args"][1], {}, "shots", "top-1", "t",
                       second=("mAcc", series, references)) == (1920, 750)   # 1.6 x 1200


def test_confusion_figures_follow_the_commands_format(tmp_path):
    from pointcalip.report import plots
    from pointcalip.report.results import write_confusion

    with plots.figure_output("pdf"):
        written = write_confusion(tmp_path, "test_calip", ["a", "b"], np.eye(2, dtype=int))
    assert [p.name for p in written] == ["test_calip.csv", "test_calip.pdf"]


def test_curves_read_plainly_and_flat_surfaces_take_one_colour():
    from pointcalip.report import plots

    fig = plots.training_curves_figure([1, 2, 3], [12.301, 12.302, 12.303],
                                       {"validation top-1": [50.0, 60.0, 55.0]}, (2, 60.0), "t")
    fig.canvas.draw()
    top, bottom = fig.axes[:2]
    assert bottom.yaxis.get_offset_text().get_text() == ""            # 12.30, not +1.23e1
    assert all(float(t).is_integer() for t in bottom.get_xticks())
    assert bottom.get_xlabel() == "epoch"                             # no epoch 0 drawn: not named
    fig = plots.heatmaps_figure([plots.Heatmap(np.full((2, 2), 50.0), [0, 1], [0, 1], "flat")],
                                "beta2", "beta3", "t", "top-1")
    image = fig.axes[0].images[0]
    assert image.norm.vmin < 50.0 < image.norm.vmax                   # one colour, mid-map
