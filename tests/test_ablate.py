"""End to end: `pointcalip ablate` on a planted dataset with the tiny ViT.

The dataset (tests/ablation_planted.py) is labelled with the tiny ViT's own CALIP predictions
from views 0 and 3 only, so the studies have winners to find: the views study must put that
subset on top, CALIP must beat CLIP alone, searched view weights must beat uniform ones,
PointCLIP's template (the labels' prompt) must win the prompts study. Reported numbers are
compared with tests/planted.py's literal CALIP on the same features (within float16
rounding) and with the library's search on those reference logits; the views study must
encode every view once and a rerun must leave the store untouched.
"""
import csv
import json
import os
import shlex

import numpy as np
import pytest
import torch
from PIL import Image

import ablation_planted as AP
import planted as P
from pointcalip.report import plots
from pointcalip.backbones import ClipBackbone
from pointcalip.cli import main
from pointcalip.datasets import validation_indices
from pointcalip.search import beta_grid, search
from messages import error_block

B2, B3 = beta_grid(2.0, P.GRID), beta_grid(0.1, P.GRID)


@pytest.fixture(scope="module")
def view_planted(planted, tmp_path_factory):
    p = AP.write_view_planted(tmp_path_factory.mktemp("view_planted"), planted)
    AP.check_signal(p)
    return p


@pytest.fixture(scope="module")
def encoded():
    """Counts the images CLIP encodes (per backbone name) while the module runs."""
    seen = {}
    original = ClipBackbone.encode_images

    def counting(self, images, *args, **kwargs):
        seen[self.name] = seen.get(self.name, 0) + images.shape[0]
        return original(self, images, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ClipBackbone, "encode_images", counting)
        yield seen


class Runner:
    """`pointcalip ablate` with the tests' settings; returns the output folder's results."""

    def __init__(self, planted, checkpoints, root):
        self.planted, self.ckpt, self.root = planted, checkpoints, root
        self.store = root / "store"

    def argv(self, out, *extra, configs=("ablation_views",)):
        return ["ablate", "--config", *configs, "--set", f"data.root={self.planted.root}",
                "--set", f"backbone={self.ckpt['vit']}", "--set", f"cache_dir={self.store}",
                "--set", f"output_dir={out}", "--set", f"tune.grid={P.GRID}",
                "--set", f"tune.val_fraction={AP.VAL_FRACTION}", *extra]

    def __call__(self, name, *extra, configs=("ablation_views",)):
        out = self.root / name
        assert main(self.argv(out, *extra, configs=configs)) == 0
        return out, json.loads((out / "results.json").read_text())


def store_snapshot(folder):
    return sorted((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
                  for p in folder.rglob("*"))


@pytest.fixture(scope="module")
def runs(view_planted, tiny_checkpoints, tmp_path_factory, encoded):
    """Every study on an empty store (the realistic projector limited to 2 views, the tiny
    ResNet left out of the store), then the views study again on the same store."""
    run = Runner(view_planted, tiny_checkpoints, tmp_path_factory.mktemp("ablate"))
    prompt_file = run.root / "prompts.json"
    prompt_file.write_text(json.dumps({c: [f"a depth map of a {c}.", f"a silhouette of a {c}."]
                                       for c in P.CLASSES}))
    every = run("all", "--set", "projectors_study.projectors=[{name: pointclip, views: zeroshot}, "
                                "{name: realistic, views: [0, 1]}]",
                "--set", f"backbones_study.backbones=[{tiny_checkpoints['vit']}, "
                         f"{tiny_checkpoints['resnet']}]",
                "--set", f"prompts_study.candidates=[pointclip, depth_ensemble, {prompt_file}]",
                configs=("ablation_views", "ablation_terms", "ablation_prompts",
                         "ablation_projectors", "ablation_backbones", "ablation_weights"))
    images_every = dict(encoded)
    snapshot = store_snapshot(run.store)
    again = run("views_again", "--set", "views_study.search_betas=false")
    images_again = {k: encoded.get(k, 0) - images_every.get(k, 0) for k in encoded}
    untouched = store_snapshot(run.store) == snapshot
    return dict(run=run, every=every, again=again, images_every=images_every,
                images_again=images_again, untouched=untouched, prompt_file=prompt_file)


def rows(folder, name="table"):
    with open(folder / f"{name}.csv", newline="") as f:
        return list(csv.DictReader(f))


def views_of(text):
    return tuple(json.loads(text))


def val_rows(p):
    return validation_indices(p.labels["train"], AP.VAL_FRACTION, 0)


def reference(p, split, views=None, rows_=None):
    l0, l1, l2 = (x if views is None else x[:, list(views)] for x in p.view_logits[split])
    labels = p.labels[split]
    if rows_ is not None:
        l0, l1, l2, labels = l0[rows_], l1[rows_], l2[rows_], labels[rows_]
    return l0, l1, l2, torch.as_tensor(labels)


# ------------------------------------------------------------------------------------ views

def test_views_study_encodes_every_view_once_and_a_rerun_touches_nothing(runs, view_planted):
    n_test, n_val = len(view_planted.labels["test"]), len(val_rows(view_planted))
    # the PointCLIP projector's 6 views and the realistic projector's 2, each encoded once
    assert runs["images_every"] == {"tiny_vit.pt": (n_test + n_val) * (6 + 2)}
    encoded = [(f["projector"]["name"], f["split"], f["encoded_now"]) for f in runs["every"][1]["features"]]
    assert encoded == [("pointclip", "test", n_test), ("pointclip", "tune", n_val),
                       ("realistic", "test", n_test), ("realistic", "tune", n_val)]
    assert runs["images_again"].get("tiny_vit.pt", 0) == 0
    assert runs["untouched"]          # no file or folder of the store added, changed or touched
    again = runs["again"][1]
    assert [f["encoded_now"] for f in again["features"]] == [0, 0]
    everything = again["studies"]["views"]["all_views"]
    assert everything == runs["every"][1]["studies"]["views"]["all_views"]
    assert not again["studies"]["views"]["betas_per_subset"]
    assert {(r["beta2"], r["beta3"]) for r in again["studies"]["views"]["subsets"]} == \
        {(everything["beta2"], everything["beta3"])}


def test_views_study_puts_the_planted_subset_on_top(runs, view_planted):
    folder = runs["every"][0] / "views"
    subsets = rows(folder, "subsets")
    assert len(subsets) == 63
    top = max(subsets, key=lambda r: float(r["tune_top1"]))          # first of equals
    assert views_of(top["views"]) == AP.VIEWS
    assert float(top["test_top1"]) == max(float(r["test_top1"]) for r in subsets) >= 95
    summary = runs["every"][1]["studies"]["views"]
    assert tuple(summary["best_subset"]["views"]) == AP.VIEWS
    # every subset's numbers: the search on the reference logits, the reference accuracy
    val = val_rows(view_planted)
    for r in subsets:
        views = views_of(r["views"])
        b2, b3 = float(r["beta2"]), float(r["beta3"])
        lo, hi = AP.reference_accuracy(view_planted, "test", views, b2, b3)
        assert lo - 1e-9 <= float(r["test_top1"]) <= hi + 1e-9, r
        if views in (AP.VIEWS, tuple(range(6))):
            want = search(*reference(view_planted, "train", views, val), beta2_values=B2,
                          beta3_values=B3)
            assert (b2, b3) == pytest.approx((want.beta2, want.beta3), abs=1e-4)
            assert float(r["tune_top1"]) == pytest.approx(100 * want.accuracy, abs=1e-3)
    # the per-count table and leave-one-out importance come from the same subsets
    by_views = {views_of(r["views"]): r for r in subsets}
    table = rows(folder)
    assert [int(r["k"]) for r in table] == [1, 2, 3, 4, 5, 6]
    assert views_of(table[1]["best_views"]) == AP.VIEWS
    assert views_of(table[1]["first_k_views"]) == (0, 1)
    for r in table:                 # mAcc per count: the same subsets' mAcc
        k = int(r["k"])
        of_k = [s for s in subsets if int(s["k"]) == k]
        assert float(r["mean_test_macc"]) == pytest.approx(
            np.mean([float(s["test_macc"]) for s in of_k]), abs=1e-3)
        for which in ("first_k", "best"):
            views = r[f"{which}_views" if which == "best" else "first_k_views"]
            assert float(r[f"{which}_test_macc"]) == pytest.approx(
                float(by_views[views_of(views)]["test_macc"]), abs=1e-3)
    assert all(float(s["test_macc"]) == 100.0 for s in subsets if float(s["test_top1"]) == 100.0)
    assert any(float(s["test_macc"]) != float(s["test_top1"]) for s in subsets)
    everything = float(by_views[tuple(range(6))]["test_top1"])
    for r in rows(folder, "importance"):
        v = int(r["view"])
        without = by_views[tuple(i for i in range(6) if i != v)]
        assert float(r["test_drop"]) == pytest.approx(everything - float(without["test_top1"]), abs=1e-3)
        assert float(r["test_alone"]) == pytest.approx(float(by_views[(v,)]["test_top1"]), abs=1e-3)


# ---------------------------------------------------------------------------- every study

STUDY_FILES = {
    "views": ["views.png", "importance.png", "importance.csv", "subsets.csv"],
    "terms": ["beta_surface.png", "surface.csv"],
    "prompts": ["prompts.png"], "projectors": ["projectors.png"],
    "backbones": ["backbones.png"], "weights": ["weights.png"],
}


def test_every_study_writes_its_files_and_states_the_protocol(runs, tiny_checkpoints):
    out, res = runs["every"]
    assert list(res["studies"]) == ["views", "terms", "prompts", "projectors", "backbones", "weights"]
    index = (out / "report.md").read_text()
    for study, extra in STUDY_FILES.items():
        folder = out / study
        for name in ["report.md", "table.csv", "table.md", *extra]:
            assert (folder / name).is_file(), (study, name)
        report = (folder / "report.md").read_text()
        for needed in ("Tuning protocol: val: class-stratified 80% of TRAIN", "modelnet40",
                       f"Backbone: {tiny_checkpoints['vit']}", "Projector: pointclip",
                       "(table.csv)", "(table.md)"):
            assert needed in report, (study, needed)
        for png in (n for n in extra if n.endswith(".png")):
            assert f"![{png}]({png})" in report
        assert "Tuning protocol: val" in (folder / "table.md").read_text()
        for csv_file in ["table.csv", *(n for n in extra if n.endswith(".csv"))]:
            assert {r["tuned_on"] for r in rows(folder, csv_file[:-4])} == {"val"}
        assert f"({study}/report.md)" in index
        assert res["studies"][study]["files"] == ["report.md", "table.csv", "table.md",
                                                  *[n for n in extra if n.endswith(".csv")],
                                                  *[n for n in extra if n.endswith(".png")]]


def test_pngs_are_valid_and_of_the_expected_size(runs):
    out, res = runs["every"]
    n_prompts = len(res["studies"]["prompts"]["table"])
    expected = {("views", "views.png"): (int(plots.LINES_SIZE[0] * 1.6), plots.LINES_SIZE[1]),
                ("views", "importance.png"): plots.BARS_SIZE,
                ("terms", "beta_surface.png"): (2 * plots.HEATMAP_PANEL[0], plots.HEATMAP_PANEL[1]),
                ("prompts", "prompts.png"): (900, 140 + 60 * n_prompts),
                ("projectors", "projectors.png"): plots.BARS_SIZE,
                ("backbones", "backbones.png"): plots.BARS_SIZE,
                ("weights", "weights.png"): plots.BARS_SIZE}
    for (study, name), size in expected.items():
        size = tuple(round(x * plots.PNG_DPI / plots.DPI) for x in size)   # layout px at PNG dpi
        with Image.open(out / study / name) as image:
            image.verify()
        with Image.open(out / study / name) as image:
            assert image.format == "PNG" and image.size == size, (study, name)
            assert len(np.unique(np.asarray(image.convert("L")))) > 10      # something drawn


def test_terms_study_calip_beats_clip_and_matches_the_reference(runs, view_planted):
    out, _ = runs["every"]
    table = {r["variant"]: r for r in rows(out / "terms")}
    assert list(table) == ["CLIP (l0)", "+ l1 (beta2)", "+ l2 (beta3)", "full CALIP"]
    assert float(table["CLIP (l0)"]["beta2"]) == float(table["CLIP (l0)"]["beta3"]) == 0
    assert float(table["+ l1 (beta2)"]["beta3"]) == 0 and float(table["+ l2 (beta3)"]["beta2"]) == 0
    val = val_rows(view_planted)
    for name, grid2, grid3 in (("CLIP (l0)", [0.0], [0.0]), ("+ l1 (beta2)", B2, [0.0]),
                               ("+ l2 (beta3)", [0.0], B3), ("full CALIP", B2, B3)):
        want = search(*reference(view_planted, "train", None, val),
                      beta2_values=torch.as_tensor(grid2, dtype=torch.float64),
                      beta3_values=torch.as_tensor(grid3, dtype=torch.float64))
        row = table[name]
        assert (float(row["beta2"]), float(row["beta3"])) == pytest.approx((want.beta2, want.beta3), abs=1e-4)
        lo, hi = AP.reference_accuracy(view_planted, "test", range(6), want.beta2, want.beta3)
        assert lo - 1e-9 <= float(row["test_top1"]) <= hi + 1e-9
    assert float(table["full CALIP"]["test_top1"]) >= float(table["CLIP (l0)"]["test_top1"]) + 5
    surface = rows(out / "terms", "surface")
    assert len(surface) == P.GRID * P.GRID
    best = max(surface, key=lambda r: float(r["tune_top1"]))
    assert (float(best["beta2"]), float(best["beta3"])) == pytest.approx(
        (float(table["full CALIP"]["beta2"]), float(table["full CALIP"]["beta3"])), abs=1e-4)


def test_weights_study_validation_beats_uniform_and_test_is_labelled_optimistic(runs, view_planted):
    out, _ = runs["every"]
    table = {r["weights"]: r for r in rows(out / "weights")}
    assert list(table) == ["uniform", "searched on validation", "searched on test"]
    assert "optimistic" in table["searched on test"]["protocol"]
    assert "optimistic" in (out / "weights" / "report.md").read_text()
    val = val_rows(view_planted)
    on_val = search(*reference(view_planted, "train", None, val), search_weights=True,
                    beta2_values=B2, beta3_values=B3)
    on_test = search(*reference(view_planted, "test"), search_weights=True, beta2_values=B2,
                     beta3_values=B3)
    assert json.loads(table["searched on validation"]["view_weights"]) == on_val.view_weights
    assert json.loads(table["searched on test"]["view_weights"]) == on_test.view_weights
    assert on_val.view_weights != on_test.view_weights          # tuning on test would show
    assert json.loads(table["uniform"]["view_weights"]) == [1.0] * 6
    assert float(table["searched on validation"]["test_top1"]) >= float(table["uniform"]["test_top1"]) + 10


def test_prompts_study_finds_the_labels_template_and_reads_prompt_files(runs, view_planted,
                                                                        tiny_checkpoints):
    out, res = runs["every"]
    table = rows(out / "prompts")
    labels = [r["prompts"] for r in table]
    assert labels[0] == "pointclip: 'point cloud depth map of a {}.'" and labels[1] == "depth_ensemble"
    assert "prompts.json" in labels and len(table) == 1 + 1 + 7 + 1      # one duplicate skipped
    best = max(table, key=lambda r: float(r["tune_top1"]))
    assert best["prompts"] == labels[0] and res["studies"]["prompts"]["winner"] == labels[0]
    assert float(best["test_top1"]) > max(float(r["test_top1"]) for r in table if r is not best)
    file_row = table[labels.index("prompts.json")]
    assert file_row["kind"] == "per-class prompt file" and float(file_row["prompts_per_class"]) == 2
    # `pointcalip zeroshot` with the same prompt file (same store: nothing encoded) agrees
    zs = runs["run"].root / "zeroshot_prompt_file"
    assert main(["zeroshot", "--config", "modelnet40", "--set", f"data.root={view_planted.root}",
                 "--set", f"backbone={tiny_checkpoints['vit']}", "--set", f"cache_dir={runs['run'].store}",
                 "--set", f"output_dir={zs}", "--set", f"tune.grid={P.GRID}",
                 "--set", f"tune.val_fraction={AP.VAL_FRACTION}",
                 "--set", f"templates={runs['prompt_file']}"]) == 0
    zres = json.loads((zs / "results.json").read_text())
    assert zres["templates"] == [str(runs["prompt_file"])]
    assert all(f["encoded_now"] == 0 for f in zres["features"].values())
    assert zres["accuracy"]["pointclip"] == pytest.approx(float(file_row["pointclip_test"]), abs=1e-3)
    assert zres["accuracy"]["calip"] == pytest.approx(float(file_row["test_top1"]), abs=1e-3)
    for method, column in (("pointclip", "pointclip_test_macc"), ("calip", "test_macc")):
        assert zres["mean_class_accuracy"][method] == pytest.approx(float(file_row[column]), abs=1e-3)
    assert (zres["beta2"], zres["beta3"]) == pytest.approx(
        (float(file_row["beta2"]), float(file_row["beta3"])), abs=1e-4)


def test_projectors_study_same_data_and_backbone(runs):
    out, res = runs["every"]
    table = rows(out / "projectors")
    assert [r["projector"] for r in table] == ["pointclip (6 views, zeroshot)", "realistic (2 views: [0, 1])"]
    assert [int(r["encoded_now"]) for r in table] == [106, 106]     # each encoded once, this run
    terms = {r["variant"]: r for r in rows(out / "terms")}
    assert table[0]["test_top1"] == terms["full CALIP"]["test_top1"]
    assert float(table[0]["test_top1"]) > float(table[1]["test_top1"])
    assert res["studies"]["projectors"]["winner"] == "pointclip (6 views, zeroshot)"


def test_classification_study_figures_show_mean_class_accuracy_beside_top1(runs, monkeypatch):
    """projectors.png / prompts.png / backbones.png: PointCLIP's and CALIP's top-1 and mAcc,
    the table's numbers; weights.png names each row's mAcc."""
    drawn = {}

    def bars(path, labels, groups, ylabel, *args, **kwargs):
        drawn[path.name] = (groups, ylabel)
        return (1, 1)

    monkeypatch.setattr(plots, "bars", bars)
    out, _ = runs["run"]("figures_again", configs=("ablation_projectors", "ablation_prompts",
                                                   "ablation_weights"),
                         *("--set", f"prompts_study.candidates=[pointclip, depth_ensemble]"))
    for study in ("projectors", "prompts"):
        groups, ylabel = drawn[f"{study}.png"]
        table = rows(out / study)
        assert "mAcc" in ylabel and list(groups) == [
            "PointCLIP (betas 0), top-1", "PointCLIP (betas 0), mAcc", "CALIP (tuned), top-1",
            "CALIP (tuned), mAcc"]
        for name, column in zip(groups, ("pointclip_test", "pointclip_test_macc", "test_top1",
                                         "test_macc")):
            assert groups[name] == pytest.approx([float(r[column]) for r in table], abs=1e-3)
        assert groups["CALIP (tuned), mAcc"] != groups["CALIP (tuned), top-1"]     # they differ here
    weights = rows(out / "weights")
    legend = list(drawn["weights.png"][0])
    assert [f"mAcc {float(r['test_macc']):.1f}%" in name for r, name in zip(weights, legend)] == \
        [True] * len(weights)


def test_backbones_study_lists_the_missing_one_with_the_command_that_fills_it(
        runs, tiny_checkpoints, monkeypatch, tmp_path, encoded):
    out, res = runs["every"]
    vit, resnet = str(tiny_checkpoints["vit"]), str(tiny_checkpoints["resnet"])
    table = {r["backbone"]: r for r in rows(out / "backbones")}
    assert table[vit]["status"] == "in store"
    assert table[resnet]["status"] == "missing: 50 test clouds, 56 tune clouds"
    assert table[resnet]["test_top1"] == ""
    assert "tiny_resnet.pt" not in encoded                       # nothing of it was encoded
    command = res["studies"]["backbones"]["missing"][resnet]["command"]
    assert f"`{command}`" in (out / "backbones" / "report.md").read_text()
    words = shlex.split(command)
    assert words[:4] == ["pointcalip", "zeroshot", "--config", "zeroshot_defaults"]
    monkeypatch.chdir(tmp_path)                                  # zeroshot writes outputs/ here
    assert main(words[1:]) == 0
    again = runs["run"]("backbones_again", "--set", f"backbones_study.backbones=[{vit}, {resnet}]",
                        configs=("ablation_backbones",))[1]
    rows_ = {r["backbone"]: r for r in again["studies"]["backbones"]["table"]}
    assert rows_[resnet]["status"] == "in store" and rows_[resnet]["test_top1"] is not None
    assert again["studies"]["backbones"]["missing"] == {}
    assert all(f["encoded_now"] == 0 for f in again["features"])


# ------------------------------------------------------------------------- protocol, config

def test_tuning_on_test_is_explicit_and_stated(runs):
    out, res = runs["run"]("on_test", "--tune-on", "test", "--set", "studies=[weights]")
    assert res["tuning"]["split"] == "test"
    report = (out / "weights" / "report.md").read_text()
    assert "Tuning protocol: test: tuned on the TEST split itself" in report
    assert {r["tuned_on"] for r in rows(out / "weights")} == {"test"}
    assert [r["weights"] for r in res["studies"]["weights"]["table"]] == ["uniform", "searched on test"]


def test_several_configs_join_their_studies(tmp_path):
    from pointcalip.ablation.config import AblationConfig, studies_of_files
    from pointcalip.config import load_config

    assert studies_of_files(["ablation_views", "ablation_terms", "model/realistic_vitb16"]) == ["views", "terms"]
    assert studies_of_files(["model/realistic_vitb16"]) is None
    cfg = load_config(AblationConfig, ["ablation_views", "model/realistic_vitb16"])
    assert (cfg.studies, cfg.projector.name, cfg.backbone) == (["views"], "realistic", "ViT-B/16")
    assert cfg.tune.split == "val" and cfg.zeroshot().tune == cfg.tune


@pytest.mark.parametrize("override, message", [
    ("studies=[views, colours]", r"studies must list studies among views, terms"),
    ("studies=[]", r"studies must list studies among"),
    ("studies=[views, views]", r"studies lists a study twice"),
    ("views_study.order=[0, 9]", r"views_study\.order holds \[9\], outside the projector's 6 views"),
    ("backbones_study.backbones=[/nowhere/x.pt]", r"backbones_study\.backbones\[0\] is '/nowhere/x\.pt'"),
    ("prompts_study.candidates=[nonexistent]", r"prompts_study\.candidates\[0\] is not usable: unknown template set"),
    ("prompts_study.candidates=[/nowhere/p.json]", r"candidates\[0\] is not usable: per-class prompt file not found"),
    ("projectors_study.projectors=[{name: sparse}]", r"projectors_study\.projectors\[0\]\.name must be one of"),
    ("weights_study.choices=[0, 1]", r"weights_study\.choices must be a non-empty list of positive numbers"),
])
def test_bad_ablation_settings_name_their_key(override, message):
    from pointcalip.ablation.config import AblationConfig
    from pointcalip.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=message):
        load_config(AblationConfig, ["ablation_views"], [override])


def test_a_prompt_file_without_a_class_stops_the_run(runs, tmp_path, capsys):
    bad = tmp_path / "two_classes.yaml"
    bad.write_text("airplane: [a depth map of an airplane.]\nbench: [a depth map of a bench.]\n")
    argv = runs["run"].argv(tmp_path / "out", "--set", "studies=[prompts]",
                            "--set", f"prompts_study.candidates=[{bad}]")
    assert main(argv) == 2
    err = error_block(capsys.readouterr().err)
    assert "has no prompts for class 'cup'" in err and "two_classes.yaml" in err
    assert not (tmp_path / "out" / "prompts").exists()
    assert not (tmp_path / "out").exists()          # no empty output folder is left behind


def test_every_study_is_one_registry_entry_with_its_section_and_runner():
    """The studies registry: each entry's section is AblationConfig's field of that class,
    its runner is the function run_ablation calls, and configs accept exactly its names."""
    import dataclasses
    import typing

    from pointcalip.ablation.config import STUDIES, AblationConfig
    from pointcalip.ablation.run import RUNNERS
    from pointcalip.config import ConfigError, load_config

    hints = typing.get_type_hints(AblationConfig)
    fields = {f.name for f in dataclasses.fields(AblationConfig)}
    assert STUDIES.names() == ["views", "terms", "prompts", "projectors", "backbones", "weights"]
    for entry in STUDIES.entries():
        assert entry.section == f"{entry.name}_study" and entry.section in fields
        assert hints[entry.section] is entry.config
        assert RUNNERS[entry.name].__name__ == f"run_{entry.name}"
    assert list(RUNNERS) == STUDIES.names()
    with pytest.raises(ConfigError, match=r"studies must list studies among views, terms, prompts, "
                                          r"projectors, backbones, weights"):
        load_config(AblationConfig, ["ablation_views"], ["studies=[view]"])
