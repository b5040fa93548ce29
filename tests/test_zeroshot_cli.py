"""End to end: `pointcalip zeroshot` and `pointcalip classify` on a planted dataset.

The planted ModelNet folder (tests/planted.py) is labelled with the tiny ViT's own CALIP
predictions at known betas and view weights, so tuning has something to find. Every number
the command reports is compared with an independent recomputation (tests/planted.py's
literal CALIP on the same features, and the library's PointCALIP from the raw points), and
the preconditions asserted below make sure that a pipeline that tuned on the wrong split,
swapped beta2 and beta3, or dropped the view weights would report different numbers.
"""
import json
import re

import numpy as np
import pytest
import torch

import planted as P
from pointcalip import PointCALIP, load_clip
from pointcalip.cli import main
from pointcalip.config import ZeroShotConfig, load_config
from pointcalip.datasets import load_point_cloud, validation_indices
from pointcalip.projection import PointCLIPProjector
from pointcalip.search import beta_grid, search
from pointcalip.zeroshot import default_output_dir
from messages import error_block

VAL_FRACTION = 0.8


def run_zeroshot(planted, ckpt, store, out, *extra):
    argv = ["zeroshot", "--config", "modelnet40", "--set", f"data.root={planted.root}",
            "--set", f"backbone={ckpt}", "--set", f"cache_dir={store}", "--set", f"output_dir={out}",
            "--set", f"tune.grid={P.GRID}", "--set", f"tune.val_fraction={VAL_FRACTION}",
            "--set", "batch_size=16", *extra]
    assert main(argv) == 0
    return json.loads((out / "results.json").read_text())


def reference_search(planted, split, rows=None, weights=False):
    """The library's search on the reference logits of `rows` of `split`."""
    l0, l1, l2 = planted.view_logits[split]
    labels = planted.labels[split]
    if rows is not None:
        l0, l1, l2, labels = l0[rows], l1[rows], l2[rows], labels[rows]
    return search(l0, l1, l2, torch.as_tensor(labels), search_weights=weights,
                  beta2_values=beta_grid(2.0, P.GRID), beta3_values=beta_grid(0.1, P.GRID))


def params(r):
    return (r["beta2"], r["beta3"], r["view_weights"]) if isinstance(r, dict) else \
        (r.beta2, r.beta3, list(r.view_weights))


@pytest.fixture(scope="module")
def tuned(planted, tiny_checkpoints, tmp_path_factory):
    """One run tuned on validation with the view-weight search, and the folders it used."""
    tmp = tmp_path_factory.mktemp("zeroshot")
    res = run_zeroshot(planted, tiny_checkpoints["vit"], tmp / "store", tmp / "out",
                       "--set", "tune.view_weights=true")
    return res, tmp


def test_tuning_on_validation_recovers_the_planted_signal(planted, tuned):
    res, _ = tuned
    val = validation_indices(planted.labels["train"], VAL_FRACTION, 0)
    want = reference_search(planted, "train", val, weights=True)
    on_test = reference_search(planted, "test", weights=True)
    assert params(on_test) != params(want)          # so tuning on TEST would be caught
    assert params(res) == params(want)
    assert res["tuning"]["split"] == "val" and res["tuning"]["num_clouds"] == len(val)
    assert res["tuning"]["tuning_accuracy"] == pytest.approx(100 * want.accuracy)
    assert res["view_weights"] != [1.0] * 6

    labels = planted.labels["test"]
    b2, b3, w = params(res)
    calip_lo, calip_hi = P.accuracy_range(planted.logits("test", b2, b3, w), labels)
    plain_lo, plain_hi = P.accuracy_range(planted.logits("test", 0.0, 0.0), labels)
    assert calip_lo <= res["accuracy"]["calip"] <= calip_hi
    assert plain_lo <= res["accuracy"]["pointclip"] <= plain_hi
    # The signal is found, and the mutations would report other numbers:
    assert res["accuracy"]["calip"] >= 85 and res["accuracy"]["calip"] >= res["accuracy"]["pointclip"] + 15
    assert P.accuracy_range(planted.logits("test", b3, b2, w), labels)[1] < calip_lo - 10   # betas swapped
    assert P.accuracy_range(planted.logits("test", b2, b3), labels)[1] < calip_lo           # weights dropped

    per_class = res["per_class"]
    assert list(per_class) == P.CLASSES
    assert [c["n"] for c in per_class.values()] == np.bincount(labels, minlength=3).tolist()
    pred = planted.logits("test", b2, b3, w).argmax(-1).numpy()
    for k, c in enumerate(per_class.values()):
        assert c["calip"] == pytest.approx(100 * (pred[labels == k] == k).mean(), abs=100 / c["n"] + 1e-9)


def test_reported_accuracy_equals_pointcalip_on_the_points(planted, tuned, tiny_checkpoints):
    res, _ = tuned
    model = PointCALIP(load_clip(tiny_checkpoints["vit"], device="cpu"), P.CLASSES, PointCLIPProjector(),
                       res["templates"], res["beta2"], res["beta3"], res["view_weights"])
    with torch.no_grad():
        logits = model(planted.points["test"])
    lo, hi = P.accuracy_range(logits.double(), planted.labels["test"])
    assert lo <= res["accuracy"]["calip"] <= hi


def test_results_record_how_to_rerun(planted, tuned):
    res, tmp = tuned
    run = res["run"]
    assert "--set tune.view_weights=true" in run["command_line"] and run["command_line"].startswith("pointcalip zeroshot")
    assert run["data_root"] == str(planted.root) and run["device"] == "cpu" and run["precision"] == "float32"
    assert set(run["versions"]) >= {"pointcalip", "torch", "clip", "python"} and run["date"][:2] == "20"
    assert res["config"]["tune"]["grid"] == P.GRID and res["num_points"] == 1024 and res["sampling"] == "first"
    assert res["features"]["test"]["encoded_now"] == len(planted.labels["test"])
    assert res["features"]["tune"]["rows"] == res["tuning"]["num_clouds"]
    md = (tmp / "out" / "results.md").read_text()
    assert md.startswith("# Zero-shot results: modelnet40")
    assert f"| {res['accuracy']['pointclip']:.2f} | {res['accuracy']['calip']:.2f} |" in md
    assert "Tuning protocol: val" in md


def test_rerun_reads_the_store_and_reports_the_same(planted, tuned, tiny_checkpoints):
    first, tmp = tuned
    again = run_zeroshot(planted, tiny_checkpoints["vit"], tmp / "store", tmp / "out2",
                         "--set", "tune.view_weights=true")
    for split in ("test", "tune"):
        f = again["features"][split]
        assert f["encoded_now"] == 0 and f["from_store"] == f["rows"] and f["stored_encoding_s"] > 0
    assert again["accuracy"] == first["accuracy"] and params(again) == params(first)


def test_view_subset_without_weight_search(planted, tuned, tiny_checkpoints):
    _, tmp = tuned
    res = run_zeroshot(planted, tiny_checkpoints["vit"], tmp / "store", tmp / "out_views",
                       "--set", "views=[0, 2, 3]")
    assert res["features"]["test"]["encoded_now"] == 0              # views come from the store
    assert res["views"] == [0, 2, 3] and res["view_weights"] == [1.0] * 3
    val = validation_indices(planted.labels["train"], VAL_FRACTION, 0)
    l0, l1, l2 = (x[val][:, [0, 2, 3]] for x in planted.view_logits["train"])
    want = search(l0, l1, l2, torch.as_tensor(planted.labels["train"][val]),
                  beta2_values=beta_grid(2.0, P.GRID), beta3_values=beta_grid(0.1, P.GRID))
    assert params(res) == params(want)


def test_tuning_on_test_is_explicit_and_recorded(planted, tuned, tiny_checkpoints):
    _, tmp = tuned
    res = run_zeroshot(planted, tiny_checkpoints["vit"], tmp / "store", tmp / "out_test",
                       "--tune-on", "test", "--set", "tune.view_weights=true")
    assert res["tuning"]["split"] == "test" and "TEST" in res["tuning"]["protocol"]
    assert res["tuning"]["num_clouds"] == len(planted.labels["test"]) and "tune" not in res["features"]
    assert params(res) == params(reference_search(planted, "test", weights=True))
    assert res["tuning"]["tuning_accuracy"] == pytest.approx(res["accuracy"]["calip"])


def test_default_run_names_do_not_collide():
    def out(*overrides):
        return default_output_dir(load_config(ZeroShotConfig, list(overrides[:1]) or ["modelnet40"],
                                              list(overrides[1:])))
    a = out("modelnet40")
    assert a.parent.name == "outputs" and a.name.startswith("modelnet40-pointclip-RN50-tune_val-")
    names = {a, out("scanobjectnn_pb_t50_rs"), out("modelnet40", "backbone=ViT-B/16"),
             out("modelnet40_realistic"), out("modelnet40", "tune.split=test"),
             out("modelnet40", "views=[0, 1]"), out("modelnet40", "templates=depth_ensemble"),
             out("modelnet40", "tune.view_weights=true")}
    assert len(names) == 8
    assert out("scanobjectnn_pb_t50_rs", "projector.name=realistic").name.startswith(
        "scanobjectnn_pb_t50_rs-realistic-RN50-tune_val-")
    # where and how fast a run goes does not change its name
    assert out("modelnet40", "batch_size=3", "cache_dir=/tmp/x", "device=cpu", "data.root=/d") == a


def test_missing_dataset_is_a_clear_error(tiny_checkpoints, capsys, tmp_path):
    code = main(["zeroshot", "--config", "modelnet40", "--set", f"data.root={tmp_path / 'nowhere'}",
                 "--set", f"backbone={tiny_checkpoints['vit']}", "--set", f"output_dir={tmp_path / 'o'}"])
    err = capsys.readouterr().err
    assert code == 2 and "nowhere" in err and "-v" in err


def _save_clouds(folder, clouds):
    files = []
    for i, pts in enumerate(clouds):
        files.append(folder / f"cloud{i}.npy")
        np.save(files[-1], pts.numpy())
    return files


def test_classify_own_files(planted, tiny_checkpoints, capsys, tmp_path):
    files = _save_clouds(tmp_path, planted.points["test"][:2])
    assert main(["classify", *map(str, files), "--classes", *P.CLASSES, "--backbone",
                 str(tiny_checkpoints["vit"]), "--top-k", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    model = PointCALIP(load_clip(tiny_checkpoints["vit"], device="cpu"), P.CLASSES, PointCLIPProjector())
    for line, path in zip(lines, files):
        with torch.no_grad():
            probs = model(load_point_cloud(path)).softmax(-1)[0]
        values, idx = probs.topk(3)
        assert line == f"{path}: " + ", ".join(f"{P.CLASSES[i]} {v:.1%}" for v, i in zip(values.tolist(), idx.tolist()))


def test_classify_reuses_results(planted, tuned, tiny_checkpoints, capsys, tmp_path):
    _, tmp = tuned
    res = run_zeroshot(planted, tiny_checkpoints["vit"], tmp / "store", tmp / "out_reuse",
                       "--set", "views=[1, 3, 4]", "--set", "tune.view_weights=true")
    capsys.readouterr()
    path = _save_clouds(tmp_path, planted.points["test"][2:3])[0]
    assert main(["classify", str(path), "--classes", *P.CLASSES, "--top-k", "3",
                 "--results", str(tmp / "out_reuse" / "results.json")]) == 0
    printed = capsys.readouterr().out.strip()
    model = PointCALIP(load_clip(tiny_checkpoints["vit"], device="cpu"), P.CLASSES,
                       PointCLIPProjector(views=[1, 3, 4]), res["templates"], res["beta2"],
                       res["beta3"], res["view_weights"])
    assert res["view_weights"] != [1.0] * 3
    with torch.no_grad():
        probs = model(load_point_cloud(path)).softmax(-1)[0]
    values, idx = probs.topk(3)
    assert printed == f"{path}: " + ", ".join(f"{P.CLASSES[i]} {v:.1%}" for v, i in zip(values.tolist(), idx.tolist()))


@pytest.mark.parametrize("key, value", [
    ("beta2", "1e3"), ("beta3", True), ("beta2", -1.0), ("view_weights", "111111"),
    ("view_weights", [0.0, 0.0, 0.0]), ("views", "135"), ("backbone", 5),
    ("templates", [1]), ("projector_config", "pointclip")])
def test_classify_checks_every_setting_read_from_results(planted, tuned, capsys, tmp_path,
                                                         key, value):
    """A value of the wrong type in ``--results`` is refused naming its key (never coerced:
    "1e3" is not 1000, "111111" not six ones, all-zero weights not taken)."""
    _, tmp = tuned
    saved = json.loads((tmp / "out" / "results.json").read_text())
    saved[key] = value
    edited = tmp_path / "results.json"
    edited.write_text(json.dumps(saved))
    path = _save_clouds(tmp_path, planted.points["test"][2:3])[0]
    assert main(["classify", str(path), "--classes", *P.CLASSES,
                 "--results", str(edited)]) == 2
    err = error_block(capsys.readouterr().err)
    assert f"--results {edited}: {key} is" in err


def test_classify_reports_bad_files_and_classifies_the_good_ones(planted, tiny_checkpoints, capsys, tmp_path):
    good = _save_clouds(tmp_path, planted.points["test"][:1])[0]
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros((0, 3)))
    missing = tmp_path / "missing.ply"
    code = main(["classify", str(empty), str(good), str(missing), "--classes", *P.CLASSES,
                 "--backbone", str(tiny_checkpoints["vit"])])
    out, err = capsys.readouterr()
    assert code == 1
    assert out.startswith(f"{good}: ") and len(out.strip().splitlines()) == 1
    assert "empty.npy" in err and "missing.ply" in err and "2 of 3 files could not be read" in err


def test_classify_reads_every_file_before_loading_clip(tiny_checkpoints, capsys, tmp_path, monkeypatch):
    import pointcalip.backbones

    def no_clip(*args, **kwargs):
        raise AssertionError("CLIP loaded although no file was readable")

    monkeypatch.setattr(pointcalip.backbones, "load_clip", no_clip)
    bad = tmp_path / "bad.txt"
    bad.write_text("not a cloud\n")
    assert main(["classify", str(bad), "--classes", "chair", "lamp",
                 "--backbone", str(tiny_checkpoints["vit"])]) == 1
    assert re.search(r"bad\.txt", capsys.readouterr().err)


@pytest.mark.parametrize("option, message", [
    (["--top-k", "0"], "argument --top-k: must be a positive integer, got '0'"),
    (["--num-points", "-5"], "argument --num-points: must be a positive integer"),
    (["--beta2", "nan"], "argument --beta2: must be a finite number"),
    (["--device", "cuda:7"], "argument --device: is 'cuda:7'"),
])
def test_classify_options_are_checked(option, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["classify", str(tmp_path / "x.npy"), "--classes", "a", "b", *option])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_classify_rejects_duplicate_classes(tiny_checkpoints, capsys, tmp_path):
    assert main(["classify", str(tmp_path / "x.npy"), "--classes", "chair", "chair"]) == 2
    assert "repeated: ['chair']" in capsys.readouterr().err


def test_results_are_titled_by_what_ran_and_state_the_data(planted, tuned, tiny_checkpoints):
    res, tmp = tuned
    md = (tmp / "out" / "results.md").read_text()
    stem = str(tiny_checkpoints["vit"]).rsplit("/", 1)[-1].rsplit(".", 1)[0]
    assert md.splitlines()[0] == f"# Zero-shot results: modelnet40, projector pointclip, {stem}"
    data, = res["data"]
    n_test, n_train = len(planted.labels["test"]), len(planted.labels["train"])
    assert data["counts"] == {"test": n_test, "train": n_train} and not data["complete"]
    assert f"test holds {n_test} clouds; the release has 2,468" in data["differences"]
    assert "differ from the release's MD5" in data["checksums"]
    assert "- Data: modelnet40: NOT the complete release: test holds" in md
