"""`pointcalip fewshot` when things go wrong or accumulate: classes too small for the shots,
damaged checkpoints and results, untrusted adapter checkpoints, a lone last sample under
BatchNorm, run folders named by the data files, reports that cover every finished run."""
import json
import pathlib
import shutil
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from adapter_fit import adapter_fit
from conftest import SHAPE_FAMILY_NAMES
from pointcalip.cli import main
from pointcalip.config import ZeroShotConfig, load_config
from pointcalip.fewshot import InterViewAdapter
from pointcalip.fewshot.config import FewShotConfig
from pointcalip.fewshot.data import check_shots
from pointcalip.fewshot.recipe import TrainConfig
from pointcalip.fewshot.stages import output_dir as fewshot_output_dir
from pointcalip.fewshot.train import EvalSet, TrainSet, _batches, fit
from pointcalip.zeroshot import default_output_dir
from synthetic_data import shape_family_clouds, write_modelnet_clouds

TIP = ["--set", "tune.grid=10", "--set", "tune.val_fraction=0.25", "--set", "tip.alpha_max=10",
       "--set", "tip.beta_max=50", "--method", "tip", "--seeds", "1"]


def fewshot(root, ckpt, store, out, *extra):
    return main(["fewshot", "--config", "modelnet40_fewshot", "--set", f"data.root={root}",
                 "--set", f"backbone={ckpt}", "--set", f"cache_dir={store}",
                 "--set", f"output_dir={out}", *extra])


def families(folder, train_per_class, test_per_class=4, seed=0):
    """A ModelNet folder of the 4 shape families with ``train_per_class[c]`` TRAIN clouds."""
    rng = np.random.default_rng(seed)
    train = rng.permutation(np.repeat(np.arange(4), train_per_class))
    test = rng.permutation(np.repeat(np.arange(4), test_per_class))
    return write_modelnet_clouds(folder, SHAPE_FAMILY_NAMES,
                                 {"train": (shape_family_clouds(train, 1024, rng), train),
                                  "test": (shape_family_clouds(test, 1024, rng), test)})


def stored_pieces(store):
    return list(pathlib.Path(store).glob("**/pieces/*"))


# ------------------------------------------------------------------ small classes (item 4)

def test_check_shots_names_each_short_class():
    labels = np.array([0] * 6 + [1] * 2 + [3] * 6)                   # class 2: no TRAIN cloud
    val = np.array([0, 6, 8])                                        # one of 0, 1 and 3 each
    with pytest.raises(ValueError) as err:
        check_shots(labels, val, 2, ["a", "b", "c", "d"], test_labels=np.array([0, 1, 2, 3]))
    msg = str(err.value)
    assert "2 class(es)" in msg and "'b' has 1 (of 2 in TRAIN)" in msg and "'c' has 0 (of 0" in msg
    assert "'a'" not in msg and "no shot can be drawn" in msg
    check_shots(np.array([0] * 6 + [1] * 2 + [2] * 6), val, 1, ["a", "b", "c"])   # enough: silent
    # a name with no cloud in TRAIN nor TEST is not a class of the data; one in TEST is
    check_shots(np.array([0] * 6 + [1] * 2 + [3] * 6), val, 1, ["a", "b", "c", "d"], np.array([0, 1, 3]))
    with pytest.raises(ValueError, match="'c' has 0 \\(of 0 in TRAIN\\)"):
        check_shots(np.array([0] * 6 + [1] * 2 + [3] * 6), val, 1, ["a", "b", "c", "d"], np.array([2]))


@pytest.mark.parametrize("counts, shots, named", [
    ((8, 8, 1, 8), "1", "'wug' has 0 (of 1 in TRAIN)"),             # its only cloud validates
    ((8, 8, 0, 8), "1", "'wug' has 0 (of 0 in TRAIN)"),             # no cloud at all
    ((8, 8, 8, 8), "7", "'toma' has 6 (of 8 in TRAIN)")])           # 7 shots, 6 left
def test_classes_short_of_shots_are_refused_before_encoding(counts, shots, named, tmp_path,
                                                             tiny_checkpoints, capsys):
    root = families(tmp_path / "fam", counts)
    code = fewshot(root, tiny_checkpoints["vit"], tmp_path / "store", tmp_path / "out",
                   *TIP, "--shots", shots)
    err = capsys.readouterr().err
    assert code == 2 and named in err and f"fewer than {shots} TRAIN clouds" in err, err
    assert "Traceback" not in err and stored_pieces(tmp_path / "store") == []
    if shots == "7":
        assert "--shots 6 or fewer" in err


# --------------------------------------------------- one sample in the last batch (item 5)

def test_batches_join_a_lone_last_sample_only_under_batchnorm():
    assert _batches(33, 32, 2) == [(0, 33)]
    assert _batches(33, 32, 1) == [(0, 32), (32, 33)]               # no BatchNorm: unchanged
    assert _batches(34, 32, 2) == [(0, 32), (32, 34)]               # other sizes: unchanged
    assert _batches(64, 32, 2) == [(0, 32), (32, 64)]
    assert _batches(1, 32, 2) == [(0, 1)]


def test_adapter_trains_when_the_last_batch_holds_one_shot(tmp_path):
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(33, 1, 2, 8, generator=g)                     # 33 classes x 1 shot
    labels = torch.arange(33)
    text = F.normalize(torch.randn(33, 8, generator=g), dim=-1)
    model = InterViewAdapter(2, 8, generator=torch.Generator().manual_seed(1))
    recipe = TrainConfig(epochs=2, batch_size=32, optimizer="sgd", lr=0.01)
    fitted = fit(model, TrainSet((raw,), labels), EvalSet((raw[:, 0],), labels), recipe,
                 tmp_path / "run", seed=1, forward=lambda m, x: m.logits(x, text))
    assert fitted.epochs_run == 2 and np.isfinite(fitted.curves[-1]["loss"])


# ------------------------------------------------------ damaged checkpoints (item 5)

def test_fit_records_the_seconds_it_trained(tmp_path):
    """The training time is the clock's, not the clock minus a batch index (the batch loop
    once reused the clock's variable name), and last.pt keeps it."""
    t0 = time.perf_counter()
    fitted, _ = adapter_fit(tmp_path / "run")
    assert 0 < fitted.seconds <= time.perf_counter() - t0
    saved = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["state"]["seconds"]
    assert saved == fitted.seconds


def test_a_resumed_run_adds_its_own_training_time(tmp_path):
    first, _ = adapter_fit(tmp_path / "run", epochs=2)
    began = time.perf_counter()
    resumed, _ = adapter_fit(tmp_path / "run", epochs=4, resume=True)
    took = time.perf_counter() - began
    assert first.seconds < resumed.seconds <= first.seconds + took


DAMAGES = {"empty": lambda b: b"", "garbage": lambda b: b"\x80\x02garbage" * 5,
           "half-written": lambda b: b[:len(b) // 2]}


@pytest.mark.parametrize("name", ["last.pt", "best.pt"])
@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_resume_sets_a_damaged_checkpoint_aside_and_trains_again(name, damage, tmp_path, caplog):
    _, whole = adapter_fit(tmp_path / "whole")
    adapter_fit(tmp_path / "run", epochs=3)
    path = tmp_path / "run" / name
    path.write_bytes(DAMAGES[damage](path.read_bytes()))
    fitted, weights = adapter_fit(tmp_path / "run", resume=True)
    assert (tmp_path / "run" / f"{name}.damaged").is_file()
    assert str(path) in caplog.text and "set aside" in caplog.text
    assert fitted.epochs_run == 3 and len(fitted.curves) == 3          # trained from the start
    for key, value in whole.items():
        assert torch.equal(value, weights[key]), key


def test_checkpoints_are_written_through_the_atomic_helper(tmp_path, monkeypatch):
    import pointcalip.fewshot.train as train_module

    written = []
    real = train_module.atomic_write

    def spy(path, mode="wb"):
        written.append(pathlib.Path(path).name)
        return real(path, mode)

    monkeypatch.setattr(train_module, "atomic_write", spy)
    adapter_fit(tmp_path / "run", epochs=2)
    assert {"best.pt", "last.pt", "curves.csv"} <= set(written)
    assert not list((tmp_path / "run").glob(".*.tmp"))


def test_a_damaged_result_is_set_aside_on_resume(shape_families, tiny_checkpoints, tmp_path, caplog):
    args = (shape_families, tiny_checkpoints["vit"], tmp_path / "store", tmp_path / "out", *TIP,
            "--shots", "2")
    assert fewshot(*args) == 0
    first = json.loads((tmp_path / "out" / "results.json").read_text())["runs"]
    saved = tmp_path / "out" / "runs" / "tip" / "2shot-seed1" / "result.json"
    saved.write_text(saved.read_text()[:40])                          # cut short
    caplog.clear()
    assert fewshot(*args, "--resume") == 0
    assert str(saved) in caplog.text and "set aside" in caplog.text
    assert (saved.parent / "result.json.damaged").is_file()
    again = json.loads((tmp_path / "out" / "results.json").read_text())["runs"]
    strip = lambda runs: [{k: v for k, v in r.items() if k != "seconds"} for r in runs]  # noqa: E731
    assert strip(again) == strip(first)


# ------------------------------------------------------ adapter checkpoints (item 5)

def _released(tmp_path, name="model-best.pth.tar", v=3, c=5, **extra):
    source = InterViewAdapter(v, c, generator=torch.Generator().manual_seed(4))
    state = {f"module.{k}": t.clone() for k, t in source.state_dict().items()}
    path = tmp_path / name
    torch.save({"state_dict": state, "epoch": 250, "val_result": np.float64(87.1),
                "optimizer": {"state": {}, "param_groups": [{"lr": np.float32(0.01)}]}, **extra}, path)
    return path, source


class _TouchesAFile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.fixture
def no_full_unpickling(monkeypatch):
    """Fail the test whenever torch.load unpickles with weights_only=False."""
    real = torch.load

    def load(*args, **kwargs):
        assert kwargs.get("weights_only") is not False, "unpickled in full behind the user's back"
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", load)


def test_released_adapter_loads_through_the_allow_list(tmp_path, no_full_unpickling):
    path, source = _released(tmp_path)
    loaded = InterViewAdapter.from_pointclip_checkpoint(path).eval()
    raw = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        torch.testing.assert_close(loaded(raw), source.eval()(raw))


def test_html_empty_and_cut_short_adapter_checkpoints_are_named(tmp_path, no_full_unpickling):
    html = tmp_path / "page.pth"
    html.write_text("<!DOCTYPE html><html><body>Sign in</body></html>")
    with pytest.raises(ValueError, match=r"page\.pth is an HTML or XML page"):
        InterViewAdapter.from_pointclip_checkpoint(html)
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.pth is empty"):
        InterViewAdapter.from_pointclip_checkpoint(tmp_path / "empty.pth")
    path, _ = _released(tmp_path)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ValueError, match=r"cut\.pth: it is not a readable torch checkpoint"):
        InterViewAdapter.from_pointclip_checkpoint(cut)


def test_an_adapter_checkpoint_with_code_is_refused_unless_trusted(tmp_path):
    marker = tmp_path / "code-ran"
    path, _ = _released(tmp_path, "odd.pth", hook=_TouchesAFile(marker))
    with pytest.raises(ValueError, match=r"odd\.pth holds Python objects .*pathlib.*--trust-checkpoint"):
        InterViewAdapter.from_pointclip_checkpoint(path)
    assert not marker.exists()
    InterViewAdapter.from_pointclip_checkpoint(path, trust=True)        # the user's opt-in
    assert marker.exists()


def test_adapter_checkpoint_for_other_views_is_refused_before_encoding(
        shape_families, tiny_checkpoints, tmp_path, capsys):
    path, _ = _released(tmp_path, v=3, c=5)
    code = fewshot(shape_families, tiny_checkpoints["vit"], tmp_path / "store", tmp_path / "out",
                   "--set", f"adapter.checkpoint={path}", "--method", "adapter", "--shots", "1")
    err = capsys.readouterr().err
    assert code == 2 and str(path) in err and "3 views of 5-channel" in err, err
    assert "this run has 10 views of" in err and stored_pieces(tmp_path / "store") == []


# ------------------------------------------------- run folders and their report (item 3)

def test_run_folders_are_named_by_the_data_files_not_their_place(shape_families, tmp_path):
    same = shutil.copytree(shape_families, tmp_path / "elsewhere" / "families")
    other = families(tmp_path / "other" / "families", (16, 16, 16, 16), test_per_class=10, seed=5)

    def names(root):
        zs = load_config(ZeroShotConfig, ["modelnet40"], [f"data.root={root}"])
        fs = load_config(FewShotConfig, ["modelnet40_fewshot"], [f"data.root={root}"])
        return default_output_dir(zs), fewshot_output_dir(fs)

    assert names(same) == names(shape_families)                      # where: not in the name
    assert names(other)[0] != names(shape_families)[0]               # what: in it
    assert names(other)[1] != names(shape_families)[1]
    missing = load_config(ZeroShotConfig, ["modelnet40"], [f"data.root={tmp_path / 'nowhere'}"])
    assert default_output_dir(missing).name.startswith("modelnet40-pointclip-RN50-tune_val-")


def test_a_partial_rerun_reports_every_finished_run(shape_families, tiny_checkpoints, tmp_path):
    args = (shape_families, tiny_checkpoints["vit"], tmp_path / "store", tmp_path / "out", *TIP)
    assert fewshot(*args, "--shots", "1", "2") == 0
    full = json.loads((tmp_path / "out" / "results.json").read_text())
    assert fewshot(*args, "--shots", "1") == 0
    partial = json.loads((tmp_path / "out" / "results.json").read_text())
    key = lambda r: (r["method"], r["shots"], r["seed"])  # noqa: E731
    assert [key(r) for r in partial["runs"]] == [key(r) for r in full["runs"]]
    assert [r["test_accuracy"] for r in partial["runs"]] == [r["test_accuracy"] for r in full["runs"]]
    assert {(s["method"], s["shots"]) for s in partial["summary"]} >= {("tip", 1), ("tip", 2)}
    assert "1 of the rows are earlier finished runs" in partial["protocol"]
    assert "earlier" not in full["protocol"] and "at least 2 TRAIN clouds outside" in full["protocol"]
    assert "| Tip-Adapter | 2 |" in (tmp_path / "out" / "results.md").read_text().replace("  ", " ")
    # other settings in the same folder: the earlier runs are not theirs
    assert fewshot(*args, "--shots", "1", "--set", "tip.beta_max=20") == 0
    other = json.loads((tmp_path / "out" / "results.json").read_text())
    assert {key(r) for r in other["runs"] if r["method"] == "tip"} == {("tip", 1, 1)}


def test_trust_checkpoint_is_the_explicit_opt_in_on_the_command_line(
        shape_families, tiny_checkpoints, tiny_vit, tmp_path, capsys):
    marker = tmp_path / "code-ran"
    path, _ = _released(tmp_path, v=10, c=tiny_vit.embed_dim, hook=_TouchesAFile(marker))
    args = (shape_families, tiny_checkpoints["vit"], tmp_path / "store", tmp_path / "out",
            "--set", f"adapter.checkpoint={path}", "--method", "adapter", "--shots", "1")
    assert fewshot(*args) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "--trust-checkpoint" in err and not marker.exists()
    assert stored_pieces(tmp_path / "store") == []
    assert fewshot(*args, "--trust-checkpoint") == 0 and marker.exists()
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["runs"]
    assert [r["hyperparameters"] for r in rows if r["method"] == "adapter"] == [{"checkpoint": str(path)}]


def test_the_untrained_models_accuracy_is_kept_for_the_curves(tmp_path):
    """Epoch 0 (the untrained model, which can win) reaches curves.png: fit returns its
    validation accuracy, also after --resume, here where training beats it."""
    g = torch.Generator().manual_seed(2)
    raw = torch.randn(12, 1, 3, 8, generator=g)
    labels = torch.arange(12) % 3
    text = F.normalize(torch.randn(3, 8, generator=g), dim=-1)
    untrained = InterViewAdapter(3, 8, generator=torch.Generator().manual_seed(1)).eval()
    with torch.no_grad():
        want = 100.0 * float((untrained.logits(raw[:, 0], text).argmax(-1) == labels).float().mean())

    def train(epochs, resume=False):
        model = InterViewAdapter(3, 8, generator=torch.Generator().manual_seed(1))
        recipe = TrainConfig(epochs=epochs, batch_size=4, optimizer="sgd", lr=0.5)
        return fit(model, TrainSet((raw,), labels), EvalSet((raw[:, 0],), labels), recipe, tmp_path / "run",
                   seed=1, resume=resume, run_id="r", forward=lambda m, x: m.logits(x, text))

    fitted = train(4)
    assert fitted.initial_val_accuracy == pytest.approx(want) and fitted.best_val_accuracy > want + 10
    assert train(8, resume=True).initial_val_accuracy == pytest.approx(want)


def test_ablation_folders_are_named_by_the_data_files_too(shape_families, tmp_path):
    from pointcalip.ablation import AblationConfig, default_output_dir as ablation_output_dir

    same = shutil.copytree(shape_families, tmp_path / "elsewhere" / "families")
    other = families(tmp_path / "other" / "families", (16, 16, 16, 16), test_per_class=10, seed=5)
    name = lambda root: ablation_output_dir(load_config(AblationConfig, ["ablation_views"],  # noqa: E731
                                                        [f"data.root={root}"]))
    assert name(same) == name(shape_families) and name(other) != name(shape_families)
