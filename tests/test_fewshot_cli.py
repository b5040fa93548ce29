"""End to end: `pointcalip fewshot` on four shape families under meaningless class names.

Zero-shot is at chance there (the names mean nothing to CLIP), while the families are
separable in the tiny CLIP's features: every few-shot method must beat zero-shot clearly.
Budgets are cut for speed (epochs, learning rates and Tip-Adapter's search range are test
settings, given with --set); the recipes themselves are in configs/fewshot_defaults.yaml.
"""
import ast
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

import pointcalip.fewshot.train as train_module
from pointcalip.cli import main
from pointcalip.datasets import ModelNet40
from pointcalip.fewshot.data import shot_rows, validation_rows
from pointcalip.fewshot.methods import method_names
from messages import error_block

VAL_FRACTION = 0.25
BUDGET = ["--set", "tune.grid=10", "--set", f"tune.val_fraction={VAL_FRACTION}",
          "--set", "calip_fs.train.epochs=40", "--set", "calip_fs.train.lr=0.01",
          "--set", "calip_fs.train.batch_size=4", "--set", "adapter.train.epochs=60",
          "--set", "adapter.train.lr=0.05",
          "--set", "tip_f.train.epochs=20", "--set", "tip_f.train.lr=0.01",
          "--set", "tip.alpha_max=10", "--set", "tip.beta_max=50"]


def fewshot(root, ckpt, store, out, *extra):
    argv = ["fewshot", "--config", "modelnet40_fewshot", "--set", f"data.root={root}",
            "--set", f"backbone={ckpt}", "--set", f"cache_dir={store}", "--set", f"output_dir={out}",
            *BUDGET, *extra]
    assert main(argv) == 0
    return json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def result(shape_families, tiny_checkpoints, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fewshot")
    res = fewshot(shape_families, tiny_checkpoints["vit"], tmp / "store", tmp / "out",
                  "--shots", "4", "--seeds", "1", "2")
    return res, tmp


def test_every_method_beats_zero_shot(result):
    res, _ = result
    by = {(r["method"], r["shots"]): r for r in res["summary"]}
    zero = max(by[("pointclip", 0)]["mean"], by[("calip", 0)]["mean"])
    assert zero <= 40                                           # chance is 25%
    for method in method_names():                               # every registered method
        if method == "zeroshot":
            continue
        assert by[(method, 4)]["n"] == 2
        assert by[(method, 4)]["mean"] >= zero + 20, (method, by[(method, 4)], zero)


def test_runs_record_what_was_chosen_on_validation(result, shape_families):
    res, tmp = result
    runs = res["runs"]
    assert {(r["method"], r["shots"], r["seed"]) for r in runs} == {
        ("pointclip", 0, None), ("calip", 0, None),
        *((m, 4, s) for m in method_names() if m != "zeroshot" for s in (1, 2))}
    for r in runs:
        assert 0 <= r["test_accuracy"] <= 100 and 0 <= r["val_accuracy"] <= 100
    by = {(r["method"], r["seed"]): r for r in runs}
    assert by[("calip_fs", 1)]["hyperparameters"]["rank"] == 16
    assert by[("calip_fs", 1)]["trainable_parameters"] == 6 * 2 * 32 * 16 + 3 + 10
    assert {"alpha", "beta", "base"} <= set(by[("tip", 1)]["hyperparameters"])
    assert by[("tip", 1)]["trainable_parameters"] == 0
    assert by[("tip_f", 1)]["trainable_parameters"] == 4 * 4 * 10 * 32       # the keys
    calip_fs_dir = tmp / "out" / "runs" / "calip_fs" / "4shot-seed1"
    curves = (calip_fs_dir / "curves.csv").read_text().splitlines()
    assert curves[0] == "epoch,loss,train_accuracy,val_accuracy,lr" and len(curves) == 41
    best = max((float(line.split(",")[3]), -int(line.split(",")[0])) for line in curves[1:])
    zero_shot_val = by[("calip", None)]["val_accuracy"]
    assert by[("calip_fs", 1)]["best_epoch"] == (-best[1] if best[0] > zero_shot_val else 0)
    assert by[("calip_fs", 1)]["val_accuracy"] == pytest.approx(max(best[0], zero_shot_val))
    assert "validation" in res["protocol"] and "TEST is evaluated once" in res["protocol"]
    train = ModelNet40(shape_families, "train")
    assert res["num_val_clouds"] == len(validation_rows(train.labels, VAL_FRACTION, 0))
    for name in ("results.md", "accuracy_vs_shots.png"):
        assert (tmp / "out" / name).stat().st_size > 0
    assert (calip_fs_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    best_pt = torch.load(calip_fs_dir / "best.pt", weights_only=True)
    assert best_pt["epoch"] == by[("calip_fs", 1)]["best_epoch"]
    assert best_pt["about"]["method"] == "calip_fs" and best_pt["about"]["shots"] == 4
    assert best_pt["about"]["config"]["calip_fs"]["rank"] == 16
    md = (tmp / "out" / "results.md").read_text()
    assert md.startswith("# Few-shot results") and "| CALIP-FS |" in md


def read_confusion(path):
    """A confusion CSV -> (class names, [K, K] int matrix); rows are true classes."""
    lines = [line.split(",") for line in path.read_text().splitlines()]
    assert [row[0] for row in lines[1:]] == lines[0][1:]        # the same names both ways
    return lines[0][1:], np.array([[int(v) for v in row[1:]] for row in lines[1:]])


def test_a_confusion_matrix_per_method_and_shots_summed_over_seeds(result):
    res, tmp = result
    out = tmp / "out"
    res = json.loads((out / "results.json").read_text())      # as written with the matrices
    assert all("test_confusion" not in r for r in res["runs"])    # they live in confusion/
    for cell in res["summary"]:
        tag = "zeroshot" if cell["shots"] == 0 else f"{cell['shots']}shot"
        names, matrix = read_confusion(out / "confusion" / f"test_{cell['method']}_{tag}.csv")
        assert (out / "confusion" / f"test_{cell['method']}_{tag}.png").read_bytes()[:4] == b"\x89PNG"
        assert len(names) == 4 and matrix.shape == (4, 4)
        runs = max(cell["seeds"], 1)
        assert matrix.sum() == runs * res["num_test_clouds"], cell        # summed over seeds
        assert 100 * np.trace(matrix) / matrix.sum() == pytest.approx(cell["mean"]), cell
        per_class = np.diag(matrix) / matrix.sum(axis=1)
        assert 100 * per_class.mean() == pytest.approx(cell["macc"]), cell
    rows = [json.loads((out / "runs" / "calip_fs" / f"4shot-seed{s}" / "result.json").read_text())
            ["run"]["test_confusion"] for s in (1, 2)]
    _, summed = read_confusion(out / "confusion" / "test_calip_fs_4shot.csv")
    assert (np.array(rows[0]) + np.array(rows[1]) == summed).all()
    assert not (np.array(rows[0]) == summed).all()
    md = (out / "results.md").read_text()
    assert "Confusion matrices: confusion/ (CSV and figure)" in md and "summed over its seeds" in md


def test_more_seeds_encode_only_new_clouds(result, shape_families, tiny_checkpoints):
    res, tmp = result
    train = ModelNet40(shape_families, "train")
    val = validation_rows(train.labels, VAL_FRACTION, 0)
    old = set(val) | set(shot_rows(train.labels, val, 4, 1)) | set(shot_rows(train.labels, val, 4, 2))
    new = set(shot_rows(train.labels, val, 4, 3)) - old
    again = fewshot(shape_families, tiny_checkpoints["vit"], tmp / "store", tmp / "out_more",
                    "--shots", "4", "--seeds", "1", "2", "3", "--method", "tip")
    assert again["features"]["train"]["encoded_now"] == len(new) > 0
    assert again["features"]["test"]["encoded_now"] == 0
    tip = {r["seed"]: r for r in again["runs"] if r["method"] == "tip"}
    first = {r["seed"]: r for r in res["runs"] if r["method"] == "tip"}
    same = lambda r: {k: v for k, v in r.items() if k != "seconds"}    # times are this run's
    assert same(tip[1]) == same(first[1]) and same(tip[2]) == same(first[2])   # same shots, numbers


def test_resume_ends_with_the_weights_of_an_uninterrupted_run(result, shape_families, tiny_checkpoints,
                                                              monkeypatch, capsys):
    _, tmp = result
    args = ("--shots", "4", "--seeds", "1", "--method", "calip_fs", "adapter",
            "--set", "calip_fs.train.epochs=6", "--set", "adapter.train.epochs=6")
    whole = fewshot(shape_families, tiny_checkpoints["vit"], tmp / "store", tmp / "whole", *args)

    calls = {"n": 0}
    real_evaluate = train_module.evaluate

    def interrupt_in_epoch_4(*a, **k):          # evaluations: the untrained model, then each epoch
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real_evaluate(*a, **k)

    monkeypatch.setattr(train_module, "evaluate", interrupt_in_epoch_4)
    argv = ["fewshot", "--config", "modelnet40_fewshot", "--set", f"data.root={shape_families}",
            "--set", f"backbone={tiny_checkpoints['vit']}", "--set", f"cache_dir={tmp / 'store'}",
            "--set", f"output_dir={tmp / 'parts'}", *BUDGET, *args]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "calip_fs 4-shot seed 1 after epoch 3 of 6" in err and "with --resume to continue" in err
    monkeypatch.setattr(train_module, "evaluate", real_evaluate)
    assert main(argv + ["--resume"]) == 0
    resumed = json.loads((tmp / "parts" / "results.json").read_text())
    strip = lambda runs: [{k: v for k, v in r.items() if k not in ("seconds", "run_dir")} for r in runs]  # noqa: E731
    assert strip(resumed["runs"]) == strip(whole["runs"])
    for method in ("calip_fs", "adapter"):
        a = torch.load(tmp / "whole" / "runs" / method / "4shot-seed1" / "last.pt", weights_only=True)
        b = torch.load(tmp / "parts" / "runs" / method / "4shot-seed1" / "last.pt", weights_only=True)
        assert a["state"]["epoch"] == b["state"]["epoch"] == 6
        for key, value in a["model"].items():
            assert torch.equal(value, b["model"][key]), (method, key)


def test_augmented_copies_are_encoded_once(result, shape_families, tiny_checkpoints):
    _, tmp = result
    args = ("--shots", "4", "--seeds", "1", "--method", "calip_fs", "--set", "augment.copies=2",
            "--set", "calip_fs.train.epochs=3")
    first = fewshot(shape_families, tiny_checkpoints["vit"], tmp / "store", tmp / "aug", *args)
    assert first["features"]["augmented"]["encoded_now"] == 4 * 4 * 2         # shots x copies
    again = fewshot(shape_families, tiny_checkpoints["vit"], tmp / "store", tmp / "aug2", *args)
    assert again["features"]["augmented"]["encoded_now"] == 0
    assert again["runs"][-1]["test_accuracy"] == first["runs"][-1]["test_accuracy"]


def test_bad_fewshot_options(capsys, tmp_path):
    for extra, message in [(["--shots", "0"], "argument --shots: must be a positive integer"),
                           (["--method", "knn"], "argument --method: invalid choice")]:
        with pytest.raises(SystemExit):
            main(["fewshot", "--config", "modelnet40_fewshot", *extra])
        assert message in capsys.readouterr().err
    for override, message in [("tune.split=test", "tune.split must be 'val'"),
                              ("shots=[4, 4]", "shots must be a list of distinct integers >= 1"),
                              ("calip_fs.train.label_smoothing=1", "must be a number in [0, 1)"),
                              ("augment.scale=[2, 1]", "augment.scale must be [low, high]")]:
        assert main(["fewshot", "--config", "modelnet40_fewshot", "--set", override]) == 2
        assert message in capsys.readouterr().err


def test_zeroshot_configs_are_refused(capsys):
    assert main(["fewshot", "--config", "modelnet40"]) == 2
    assert "for `pointcalip zeroshot`, not `pointcalip fewshot`" in error_block(capsys.readouterr().err)


def test_defaults_equal_the_shipped_yaml():
    from pointcalip.config import load_config
    from pointcalip.fewshot.config import FewShotConfig

    shipped = load_config(FewShotConfig, ["fewshot_defaults"]).to_dict()
    built = FewShotConfig().to_dict()
    assert shipped.pop("name") == "fewshot_defaults" and built.pop("name") == "fewshot"
    assert shipped == built
    assert built["methods"] == method_names()          # every registered method, in order


#: the methods the repository ships, in their order (a new method may come anywhere)
SHIPPED_METHODS = ("zeroshot", "tip", "tip_f", "adapter", "calip_fs")


def test_methods_and_their_choices_come_from_the_registry_without_torch():
    code = ("import sys\n"
            "from pointcalip.commands.fewshot import METHOD_CHOICES\n"
            "from pointcalip.fewshot.config import FewShotConfig\n"
            "from pointcalip.fewshot.methods import method_entries\n"
            "print(METHOD_CHOICES)\n"
            "print([(e.name, e.trains, e.augmented, e.section and e.section.__name__) for e in method_entries()])\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    choices, entries, torch_loaded = out.splitlines()
    entries = ast.literal_eval(entries)
    assert ast.literal_eval(choices) == ["all", *(e[0] for e in entries)]      # the registry's
    assert [e for e in entries if e[0] in SHIPPED_METHODS] == [("zeroshot", False, False, None), ("tip", False, False, "TipConfig"),
                       ("tip_f", True, False, "TipFConfig"), ("adapter", True, True, "AdapterConfig"),
                       ("calip_fs", True, True, "CalipFSConfig")]
    assert torch_loaded == "False"


NEW_METHOD = '''
import json, sys
from dataclasses import dataclass
from pointcalip.config import Section, positive
from pointcalip.fewshot.methods import METHODS

@dataclass
class NearestConfig(Section):
    neighbours: int = positive(1)

@METHODS.register("nearest", section=NearestConfig, trains=False, augmented=True, order=5)
def run(prepared, k, seed):
    from pointcalip.fewshot.stages import Outcome
    shots = prepared.features.of_train(prepared.splits.shots(k, seed))
    def accuracy(x):
        sims = x.global_.float().flatten(1) @ shots.global_.float().flatten(1).T
        return 100.0 * float((shots.labels[sims.argmax(1)] == x.labels).float().mean())
    hp = {"neighbours": prepared.cfg.nearest.neighbours}
    return Outcome(accuracy(prepared.test), accuracy(prepared.val), hp).row("nearest", k, seed)

from pointcalip.cli import main
from pointcalip.fewshot.config import FewShotConfig
print(json.dumps(FewShotConfig().to_dict()["nearest"]), FewShotConfig().methods[-1])
sys.exit(main(sys.argv[1:]))
'''


def test_a_new_method_is_its_module(result, shape_families, tiny_checkpoints):
    """What a method module declares is all it takes: its config section (defaults, checks,
    --set), a --method choice, its runs per shots and seed, augmented copies encoded for it."""
    _, tmp = result
    argv = ["fewshot", "--config", "modelnet40_fewshot", "--set", f"data.root={shape_families}",
            "--set", f"backbone={tiny_checkpoints['vit']}", "--set", f"cache_dir={tmp / 'store'}",
            "--set", f"output_dir={tmp / 'nearest'}", *BUDGET, "--shots", "4", "--seeds", "1",
            "--method", "zeroshot", "nearest", "--set", "nearest.neighbours=3",
            "--set", "augment.copies=1"]
    done = subprocess.run([sys.executable, "-c", NEW_METHOD, *argv], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[0] == '{"neighbours": 1} nearest'
    res = json.loads((tmp / "nearest" / "results.json").read_text())
    row = [r for r in res["runs"] if r["method"] == "nearest"]
    assert len(row) == 1 and (row[0]["shots"], row[0]["seed"]) == (4, 1)
    assert row[0]["hyperparameters"] == {"neighbours": 3} and res["config"]["nearest"] == {"neighbours": 3}
    zero = max(r["test_accuracy"] for r in res["runs"] if r["shots"] == 0)
    assert row[0]["test_accuracy"] >= zero + 20
    assert res["features"]["augmented"]["rows"] == 4 * 4
    bad = subprocess.run([sys.executable, "-c", NEW_METHOD, *argv[:-2], "--set", "nearest.neighbours=0"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "nearest.neighbours must be a positive integer" in bad.stderr


def test_every_row_has_a_true_time_and_a_mean_class_accuracy(result):
    res, tmp = result
    for r in res["runs"]:
        assert r["test_mean_class_accuracy"] is not None, r["method"]
        if r["method"] in ("tip", "tip_f", "adapter", "calip_fs"):
            assert 0 < r["seconds"] < 600, (r["method"], r["seconds"])      # not the uptime, not 0
    md = (tmp / "out" / "results.md").read_text()
    assert "Test mean class accuracy (mAcc, %)" in md
    spreads = re.findall(r"± \d+\.\d+ \((\d+) seeds\)", md)     # a spread only over 2+ seeds
    cells = sum(line.count("±") for line in md.splitlines() if line.startswith("|"))
    assert spreads and cells == len(spreads) and min(map(int, spreads)) >= 2
    assert "| PointCLIP | 25.00 | - |" in md                      # zero-shot: no seed, no spread
