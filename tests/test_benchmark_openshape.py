"""`pointcalip benchmark` as a table (OpenShape's protocol) end to end on planted data.

Two datasets: the planted ModelNet folder (TRAIN and TEST: tuned on TRAIN validation) and
``planted_lvis``, a dataset registered only here whose catalog entry has no TRAIN split (as
Objaverse-LVIS): its one split holds all 120 planted clouds, so it is tuned on a slice of them
and reported on the rest. The numbers are compared with recomputations outside the benchmark
code: the library's search on the planted reference logits of the tuning rows, and top-1 /
top-5 of the reference CALIP logits of the reported rows (tests/planted.py).
"""
import hashlib
import json

import numpy as np
import pytest
import torch

import planted as P
from pointcalip.benchmark.robustness import limit_rows
from pointcalip.benchmark.table import tuning_slice
from pointcalip.cli import main
from pointcalip.core.registry import Entry
from pointcalip.datasets import validation_indices
from pointcalip.datasets.catalog import DATASETS
from pointcalip.search import beta_grid, search
from synthetic_data import write_modelnet_clouds
from messages import error_block

FRACTION = 0.5
LVIS = "planted_lvis"


def within(value, lo, hi):
    return lo - 1e-9 <= value <= hi + 1e-9


@pytest.fixture(scope="module")
def lvis(planted, tmp_path_factory):
    """The test-only dataset: registered for this module, its clouds and reference logits."""
    clouds = torch.cat([planted.points["train"], planted.points["test"]]).numpy()
    labels = np.concatenate([planted.labels["train"], planted.labels["test"]])
    root = write_modelnet_clouds(tmp_path_factory.mktemp("lvis") / "planted_lvis", P.CLASSES,
                                 {"test": (clouds, labels)})
    logits = tuple(torch.cat([a, b]) for a, b in zip(planted.view_logits["train"],
                                                    planted.view_logits["test"]))
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(DATASETS._entries, LVIS, Entry(LVIS, "pointcalip.datasets.modelnet:ModelNet40",
                                                  {"classes": 3, "splits": ("test",)}))
        yield root, labels, logits


def table_argv(planted, lvis_root, ckpt, store, out, *extra):
    return ["benchmark", "--config", "openshape", "--set", "datasets.scanobjectnn_obj_only=null",
            "--set", "datasets.objaverse_lvis=null",
            "--set", f"datasets.modelnet40.root={planted.root}",
            "--set", f"datasets.{LVIS}={{root: {lvis_root}}}", "--set", f"backbone={ckpt}",
            "--set", f"cache_dir={store}", "--set", f"output_dir={out}",
            "--set", f"tune.grid={P.GRID}", "--set", f"tune.val_fraction={FRACTION}",
            "--set", "tune.view_weights=true", "--set", "batch_size=16", *extra]


@pytest.fixture(scope="module")
def table(planted, lvis, tiny_checkpoints, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("table")
    argv = table_argv(planted, lvis[0], tiny_checkpoints["vit"], tmp / "store", tmp / "out")
    assert main(argv) == 0
    return json.loads((tmp / "out" / "results.json").read_text()), tmp


def reference_search(logits, labels, rows):
    l0, l1, l2 = (x[rows] for x in logits)
    return search(l0, l1, l2, torch.as_tensor(labels[rows]), search_weights=True,
                  beta2_values=beta_grid(2.0, P.GRID), beta3_values=beta_grid(0.1, P.GRID))


def check_scores(got, logits, labels, rows, found):
    """``got`` (a results.json datasets entry) against the reference logits of ``rows``."""
    calip = P.reference_logits(*(x[rows] for x in logits), found["beta2"], found["beta3"],
                               found["view_weights"])
    assert within(got["calip"]["top1"], *P.accuracy_range(calip, labels[rows]))
    plain = P.reference_logits(*(x[rows] for x in logits), 0.0, 0.0)
    assert within(got["pointclip"]["top1"], *P.accuracy_range(plain, labels[rows]))
    assert got["calip"]["top3"] == got["calip"]["top5"] == 100.0       # 3 classes
    assert got["reported_clouds"] == len(rows)


def test_dataset_with_train_split_is_tuned_on_train_validation(planted, table):
    res, _ = table
    got = res["datasets"]["modelnet40"]
    val = validation_indices(planted.labels["train"], FRACTION, 0)
    want = reference_search(planted.view_logits["train"], planted.labels["train"], val)
    assert (got["beta2"], got["beta3"], got["view_weights"]) == \
        (want.beta2, want.beta3, list(want.view_weights))
    assert got["tuning"]["rule"] == "val" and got["tuning"]["num_clouds"] == len(val)
    assert got["tuning"]["test_rows"] is None and "of TRAIN" in got["tuning"]["protocol"]
    check_scores(got, planted.view_logits["test"], planted.labels["test"],
                 np.arange(P.N_TEST), got)


def test_dataset_without_train_split_reports_only_the_clouds_not_tuned_on(lvis, table):
    res, _ = table
    _, labels, logits = lvis
    got = res["datasets"][LVIS]
    tuned = np.asarray(got["tuning"]["test_rows"])
    reported = np.setdiff1d(np.arange(len(labels)), tuned)
    assert got["tuning"]["rule"] == "test_slice" and "reported on the other" in got["tuning"]["protocol"]
    assert len(tuned) + got["reported_clouds"] == len(labels) and len(reported) == got["reported_clouds"]
    counts = np.bincount(labels, minlength=3)                # half of each class, rounded up
    assert np.bincount(labels[tuned], minlength=3).tolist() == np.floor(counts * FRACTION + 0.5).astype(int).tolist()
    want = reference_search(logits, labels, tuned)
    assert (got["beta2"], got["beta3"], got["view_weights"]) == \
        (want.beta2, want.beta3, list(want.view_weights))
    check_scores(got, logits, labels, reported, got)


def test_one_table_with_a_protocol_per_row(table):
    res, tmp = table
    assert res["columns"] == ["dataset", "method", "clouds", "classes", "top1", "macc", "top3", "top5",
                              "protocol"]
    assert [(r["dataset"], r["method"]) for r in res["rows"]] == [
        ("modelnet40", "pointclip"), ("modelnet40", "calip"), (LVIS, "pointclip"), (LVIS, "calip")]
    for r in res["rows"]:
        d = res["datasets"][r["dataset"]]
        assert {k: r[k] for k in ("top1", "macc", "top3", "top5")} == d[r["method"]]
        assert r["protocol"] == (d["tuning"]["protocol"] if r["method"] == "calip" else
                                 "none: betas 0, equal view weights (PointCLIP), nothing tuned")
    md = (tmp / "out" / "results.md").read_text()
    r = res["rows"][3]
    assert (f"| {LVIS} | CALIP | {r['clouds']} | 3 | {r['top1']:.2f} | {r['macc']:.2f} | "
            f"{r['top3']:.2f} | {r['top5']:.2f} | {r['protocol']} |") in md
    lvis = next(d for d in res["data"] if d["dataset"] == LVIS)     # a test-only catalog name
    assert not lvis["complete"] and lvis["differences"] == [
        "the release's size is not recorded here: not checked"]      # not ModelNet40's release
    assert res["run"]["command_line"].startswith("pointcalip benchmark --config openshape")


def test_tune_from_takes_and_records_another_runs_betas(planted, lvis, table, tiny_checkpoints,
                                                       tmp_path):
    res, tmp = table
    other = json.loads(json.dumps(res))         # another run's file, with the planted betas
    b2, b3 = P.planted_betas()
    other["datasets"][LVIS].update(beta2=b2, beta3=b3, view_weights=P.WEIGHTS)
    assert (b2, b3, P.WEIGHTS) != tuple(res["datasets"][LVIS][k] for k in ("beta2", "beta3", "view_weights"))
    source = tmp_path / "runs" / "results.json"
    source.parent.mkdir()
    source.write_text(json.dumps(other))
    argv = table_argv(planted, lvis[0], tiny_checkpoints["vit"], tmp / "store", tmp_path / "o",
                      "--set", f"datasets.{LVIS}.tune.from={source}")
    assert main(argv) == 0
    got = json.loads((tmp_path / "o" / "results.json").read_text())["datasets"][LVIS]
    assert (got["beta2"], got["beta3"], got["view_weights"]) == (b2, b3, P.WEIGHTS)
    assert got["tuning"]["rule"] == "from" and got["tuning"]["num_clouds"] is None
    assert got["tuning"]["from"] == {"path": str(source),
                                     "sha256": hashlib.sha256(source.read_bytes()).hexdigest()}
    _, labels, logits = lvis
    tuned = res["datasets"][LVIS]["tuning"]["test_rows"]       # the source run's slice: kept out
    assert got["tuning"]["test_rows"] == tuned and "leaving out the" in got["tuning"]["protocol"]
    check_scores(got, logits, labels, np.setdiff1d(np.arange(len(labels)), tuned), got)
    modelnet = json.loads((tmp_path / "o" / "results.json").read_text())["datasets"]["modelnet40"]
    assert modelnet == {**res["datasets"]["modelnet40"], "seconds": modelnet["seconds"],
                        "features": modelnet["features"]}     # the other dataset: as before


def test_tune_from_a_zeroshot_run_tuned_on_test_is_refused(planted, lvis, table, tiny_checkpoints,
                                                           tmp_path, capsys):
    _, tmp = table
    bad = tmp_path / "zeroshot.json"
    bad.write_text(json.dumps({"command": "zeroshot", "tuning": {"split": "test"}}))
    argv = table_argv(planted, lvis[0], tiny_checkpoints["vit"], tmp / "store", tmp_path / "o",
                      "--set", f"datasets.modelnet40.tune.from={bad}")
    assert main(argv) != 0
    assert f"tune.from {bad}: tuning.split is 'test'" in error_block(capsys.readouterr().err)


@pytest.mark.parametrize("key, change", [
    ("backbone_identity", lambda r: r.update(backbone_identity="ViT-L/14 sha256:0")),
    ("projector", lambda r: r["projector"].update(image_size=999)),
    ("views", lambda r: r.update(views=[0, 1])),
    ("classes", lambda r: r["datasets"][LVIS].update(classes_sha256="0" * 64)),
])
def test_tune_from_refuses_another_setup_naming_the_key(planted, lvis, table, tiny_checkpoints,
                                                        tmp_path, capsys, key, change):
    res, tmp = table
    other = json.loads(json.dumps(res))
    change(other)
    bad = tmp_path / "other.json"
    bad.write_text(json.dumps(other))
    argv = table_argv(planted, lvis[0], tiny_checkpoints["vit"], tmp / "store", tmp_path / "o",
                      "--set", f"datasets.{LVIS}.tune.from={bad}")
    assert main(argv) != 0
    err = error_block(capsys.readouterr().err)
    assert f"tune.from {bad}: {key} is" in err
    if key == "classes":                                   # the class counts, not a hash alone
        assert "classes is '3 classes, sha256 000000000000', this run's is '3 classes, sha256 " in err
    assert not (tmp_path / "o").exists()


def test_tuning_on_test_or_through_data_is_refused(planted, lvis, table, tiny_checkpoints,
                                                   tmp_path, capsys):
    argv = table_argv(planted, lvis[0], tiny_checkpoints["vit"], tmp_path / "s", tmp_path / "o")
    assert main([*argv, "--set", "tune.split=test"]) == 2
    assert "tune.split must be val" in error_block(capsys.readouterr().err)
    assert main([*argv, "--set", "data.num_points=512"]) == 2
    assert "data is not read by a table benchmark" in error_block(capsys.readouterr().err)
    assert main([*argv, "--set", "datasets.modelnet40.tune.form=x"]) == 2
    assert "datasets.modelnet40.tune.form is unknown" in error_block(capsys.readouterr().err)
    assert not (tmp_path / "o").exists()


def test_limit_per_dataset(planted, lvis, table, tiny_checkpoints, tmp_path):
    _, tmp = table
    argv = table_argv(planted, lvis[0], tiny_checkpoints["vit"], tmp / "store", tmp_path / "o",
                      "--limit", "12")
    assert main(argv) == 0
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    _, labels, logits = lvis
    got = res["datasets"][LVIS]
    tuned = np.asarray(got["tuning"]["test_rows"])
    assert len(tuned) == got["reported_clouds"] == 12 and res["limit"] == 12
    full_tuned, rest = tuning_slice(labels, FRACTION, 0)
    assert set(tuned) <= set(full_tuned)                               # never a reported cloud
    reported = rest[limit_rows(labels[rest], 12, 0)]
    check_scores(got, logits, labels, reported, got)
    assert res["datasets"]["modelnet40"]["tuning"]["num_clouds"] == 12


def test_tuning_slice_keeps_every_class_reported():
    labels = np.array([0] * 10 + [1] * 3 + [2] + [3] * 2)
    tuned, reported = tuning_slice(labels, 0.5, seed=0)
    assert np.intersect1d(tuned, reported).size == 0
    assert np.array_equal(np.union1d(tuned, reported), np.arange(len(labels)))
    assert np.bincount(labels[tuned], minlength=4).tolist() == [5, 2, 0, 1]
    assert np.bincount(labels[reported], minlength=4).min() >= 1       # the lone class 2 too
    assert np.array_equal(tuned, tuning_slice(labels, 0.5, seed=0)[0])
    assert not np.array_equal(tuned, tuning_slice(labels, 0.5, seed=1)[0])


def test_logits_store_gives_the_same_table(planted, lvis, table, tiny_checkpoints, tmp_path):
    res, _ = table
    cache = tmp_path / "store"
    argv = table_argv(planted, lvis[0], tiny_checkpoints["vit"], cache, tmp_path / "o",
                      "--set", "store=logits")
    assert main(argv) == 0
    got = json.loads((tmp_path / "o" / "results.json").read_text())
    assert got["store"] == "logits" and got["rows"] == res["rows"]
    assert len(list(cache.glob("*-logits-*"))) == 3        # modelnet40 train, test; planted_lvis
    assert not list(cache.glob("*/pieces/*/spatial.npy"))


def test_objaverse_lvis_end_to_end(tiny_checkpoints, tmp_path):
    """The registered Objaverse-LVIS entry, on OpenShape-layout files (tests/synthetic_objaverse.py):
    tuned on half of each category, reported on the other half, numbers equal PointCALIP's on
    the reported clouds as the dataset serves them."""
    from pointcalip.backbones import load_clip
    from pointcalip.datasets.objaverse_lvis import ObjaverseLVIS
    from pointcalip.model import PointCALIP
    from pointcalip.projection import PointCLIPProjector
    from synthetic_objaverse import write_objaverse_lvis

    folder = write_objaverse_lvis(tmp_path / "data", per_class=4, num_points=64)
    argv = ["benchmark", "--config", "openshape", "--set", "datasets.modelnet40=null",
            "--set", "datasets.scanobjectnn_obj_only=null",
            "--set", f"datasets.objaverse_lvis={{root: {folder}, num_points: 64}}",
            "--set", f"backbone={tiny_checkpoints['vit']}", "--set", f"cache_dir={tmp_path / 's'}",
            "--set", f"output_dir={tmp_path / 'o'}", "--set", "tune.grid=4",
            "--set", f"tune.val_fraction={FRACTION}"]
    assert main(argv) == 0
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    got = res["datasets"]["objaverse_lvis"]
    data = ObjaverseLVIS(folder, num_points=64)
    tuned = np.asarray(got["tuning"]["test_rows"])
    reported = np.setdiff1d(np.arange(len(data)), tuned)
    assert np.bincount(data.labels[tuned]).tolist() == [2, 2, 2, 2] and len(reported) == 8
    assert got["tuning"]["rule"] == "test_slice" and got["num_classes"] == 4
    model = PointCALIP(load_clip(tiny_checkpoints["vit"], device="cpu"), data.classnames,
                       PointCLIPProjector(), res["templates"], got["beta2"], got["beta3"],
                       got["view_weights"])
    with torch.no_grad():
        logits = model(data.points(reported)).double()
    assert within(got["calip"]["top1"], *P.accuracy_range(logits, data.labels[reported]))
    top3 = (logits.topk(3).indices == torch.as_tensor(data.labels[reported])[:, None]).any(1)
    assert got["calip"]["top3"] == pytest.approx(100.0 * top3.double().mean().item())
    assert [r["dataset"] for r in res["rows"]] == ["objaverse_lvis"] * 2


def test_extract_fills_what_the_table_reads(planted, lvis, tiny_checkpoints, tmp_path, capsys):
    cache = tmp_path / "store"
    argv = table_argv(planted, lvis[0], tiny_checkpoints["vit"], cache, tmp_path / "o")
    assert main(["extract", *argv[1:]]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("| modelnet40 ")]
    assert [line.split(" | ")[0] for line in lines] == ["| modelnet40 reported", "| modelnet40 tuning"] * 2
    tuned, reported = tuning_slice(lvis[1], FRACTION, 0)
    val = validation_indices(planted.labels["train"], FRACTION, 0)
    assert [line.split(" | ")[3:6] for line in lines] == [
        [str(n), str(n), "0"] for n in (P.N_TEST, len(val), len(reported), len(tuned))]
    assert main(argv) == 0
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    for d in res["datasets"].values():
        assert {k: f["encoded_now"] for k, f in d["features"].items()} == {"tuning": 0, "reported": 0}


# ------------------------------------------------------------- issue 27: tune.from cannot lie
@pytest.mark.parametrize("change, message", [
    (lambda d: d["tuning"].update(test_data="0" * 16),
     "tuning.test_data is '0000000000000000', this run's test data is"),
    (lambda d: d["tuning"].update(test_rows=None),
     "tuning.rule is 'test_slice' and datasets.planted_lvis.tuning.test_rows is missing"),
    (lambda d: d.update(view_weights="111111"), "view_weights is '111111', not a list"),
    (lambda d: d.update(beta2="1e3"), "datasets.planted_lvis.beta2 is '1e3', not a finite number"),
    (lambda d: d.update(beta3=True), "datasets.planted_lvis.beta3 is True, not a finite number"),
    (lambda d: d.update(view_weights=[0.0] * len(d["view_weights"])), "view_weights are all 0"),
    (lambda d: d.update(view_weights=[1, "2"] + d["view_weights"][2:]),
     "datasets.planted_lvis.view_weights[1] is '2'"),
])
def test_tune_from_values_and_rows_are_checked_naming_the_key(planted, lvis, table,
                                                              tiny_checkpoints, tmp_path,
                                                              capsys, change, message):
    """Rows that index other data, a test_slice source without its rows, and values of the
    wrong type (never coerced: "111111" is not six ones, "1e3" not 1000) are refused."""
    res, tmp = table
    other = json.loads(json.dumps(res))
    change(other["datasets"][LVIS])
    bad = tmp_path / "other.json"
    bad.write_text(json.dumps(other))
    argv = table_argv(planted, lvis[0], tiny_checkpoints["vit"], tmp / "store", tmp_path / "o",
                      "--set", f"datasets.{LVIS}.tune.from={bad}")
    assert main(argv) == 2
    err = error_block(capsys.readouterr().err)
    assert f"tune.from {bad}: " in err and message in err
    assert not (tmp_path / "o").exists()


def test_tune_from_rows_follow_object_ids_through_a_reordered_lvis_json(tmp_path):
    """A source made on lvis.json in one order, used on the same objects listed in another:
    the rows left out are the objects tuned on, found by uid, not by position."""
    from pointcalip.benchmark.table import source_test_rows, test_data_identity
    from pointcalip.datasets.objaverse_lvis import SPLIT_FILE, ObjaverseLVIS
    from synthetic_objaverse import write_objaverse_lvis

    folder = write_objaverse_lvis(tmp_path, per_class=3)
    first = ObjaverseLVIS(folder, num_points=64)
    tuned = [1, 4, 6]
    source = tmp_path / "results.json"
    source.write_text(json.dumps({"command": "benchmark", "datasets": {"objaverse_lvis": {
        "test_clouds": len(first), "tuning": {
            "rule": "test_slice", "test_rows": tuned, "test_ids": [first.uids[i] for i in tuned],
            "test_data": test_data_identity(first)}}}}))
    entries = json.loads((folder / SPLIT_FILE).read_text())
    (folder / SPLIT_FILE).write_text(json.dumps(entries[::-1]))       # same objects, reversed
    again = ObjaverseLVIS(folder, num_points=64)
    rows = source_test_rows(source, "objaverse_lvis", again)
    assert sorted(again.uids[i] for i in rows) == sorted(first.uids[i] for i in tuned)
    assert rows.tolist() == sorted(len(first) - 1 - i for i in tuned)
