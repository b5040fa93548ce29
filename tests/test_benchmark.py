"""`pointcalip benchmark --config modelnet40c` end to end on the planted ModelNet folder and a
ModelNet40-C folder whose clouds are its TEST clouds (data_original) and noisy copies of them.

The numbers are compared with recomputations outside the benchmark code: the tuning with the
library's search on the planted reference logits of the clean validation rows, the clean
accuracy with the reference CALIP logits, and a corrupted cell with PointCALIP on its clouds.
"""
import json

import numpy as np
import pytest
import torch

import planted as P
from pointcalip.backbones import load_clip
from pointcalip.benchmark.robustness import limit_rows
from pointcalip.cli import main
from pointcalip.datasets import validation_indices
from pointcalip.model import PointCALIP
from pointcalip.projection import PointCLIPProjector
from pointcalip.search import beta_grid, search
from pointcalip.datasets.modelnet40c import ModelNet40C
from synthetic_modelnet40c import release_counts, write_modelnet40c

VAL_FRACTION = 0.8
LIMIT = 21               # clouds per set (7 per planted class): a quick run, as --limit N


def within(value, lo, hi):
    """``lo <= value <= hi`` up to float rounding of a percentage."""
    return lo - 1e-9 <= value <= hi + 1e-9


def bench_argv(planted, c40, ckpt, store, out, *extra):
    return ["benchmark", "--config", "modelnet40c", "--set", f"data.root={planted.root}",
            "--set", f"benchmark.root={c40}", "--set", f"backbone={ckpt}",
            "--set", f"cache_dir={store}", "--set", f"output_dir={out}",
            "--set", f"tune.grid={P.GRID}", "--set", f"tune.val_fraction={VAL_FRACTION}",
            "--set", "tune.view_weights=true", "--set", "benchmark.corruptions=[rotation,background,cutout]",
            "--set", "benchmark.severities=[1,4]", "--set", "batch_size=16", "--limit", str(LIMIT),
            *extra]


@pytest.fixture(scope="module")
def bench(planted, tiny_checkpoints, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    c40 = write_modelnet40c(tmp / "c", planted.labels["test"], base=planted.points["test"].numpy(),
                            noise=0.04)
    assert main(bench_argv(planted, c40, tiny_checkpoints["vit"], tmp / "store", tmp / "out")) == 0
    return json.loads((tmp / "out" / "results.json").read_text()), tmp, c40


def test_tuned_once_on_clean_validation(planted, bench):
    res, _, _ = bench
    val = validation_indices(planted.labels["train"], VAL_FRACTION, 0)
    val = val[limit_rows(planted.labels["train"][val], LIMIT, 0)]
    l0, l1, l2 = (x[val] for x in planted.view_logits["train"])
    want = search(l0, l1, l2, torch.as_tensor(planted.labels["train"][val]), search_weights=True,
                  beta2_values=beta_grid(2.0, P.GRID), beta3_values=beta_grid(0.1, P.GRID))
    assert (res["beta2"], res["beta3"], res["view_weights"]) == \
        (want.beta2, want.beta3, list(want.view_weights))
    assert res["tuning"]["num_clouds"] == len(val) and res["tuning"]["split"] == "val"
    assert "never on corrupted or test data" in res["tuning"]["protocol"]


def test_clean_and_original_accuracy_equal_the_reference(planted, bench):
    res, _, _ = bench
    rows = limit_rows(planted.labels["test"], LIMIT, 0)
    labels = planted.labels["test"][rows]
    lo, hi = P.accuracy_range(planted.logits("test", res["beta2"], res["beta3"], res["view_weights"], rows), labels)
    assert within(res["clean"]["calip"]["top1"], lo, hi)
    lo, hi = P.accuracy_range(planted.logits("test", 0.0, 0.0, rows=rows), labels)
    assert within(res["clean"]["pointclip"]["top1"], lo, hi)
    assert res["clean"]["calip"]["top3"] == 100.0          # 3 classes: every label in the top 3
    assert res["original"] == {k: res["clean"][k] for k in ("n", "points", "pointclip", "calip")}
    evaluated = 1 + sum(len(by_severity) for by_severity in res["corruptions"].values())
    assert res["labels_vs_clean_test"] == {"agree": True, "sets_checked": evaluated,
                                           "differing_sets": 0, "first": None}
    assert res["original"]["points"] == 1024
    assert res["clean"]["n"] == len(labels) == LIMIT and np.bincount(labels).tolist() == [7, 7, 7]


@pytest.mark.parametrize("corruption, points", [("rotation", 1024), ("background", 1058),
                                                 ("cutout", 814)])
def test_a_corrupted_cell_equals_pointcalip_on_every_stored_point(planted, bench, tiny_checkpoints,
                                                                  corruption, points):
    """Severity 4 as released: background appends 34 points after the clean ones (reading the
    first 1,024 would evaluate the clean points), cutout keeps 814 (a 1,024-point read refuses)."""
    res, _, c40 = bench
    model = PointCALIP(load_clip(tiny_checkpoints["vit"], device="cpu"), P.CLASSES, PointCLIPProjector(),
                       res["templates"], res["beta2"], res["beta3"], res["view_weights"])
    rows = limit_rows(planted.labels["test"], LIMIT, 0)
    clouds = torch.from_numpy(np.load(c40 / f"data_{corruption}_4.npy")[rows])
    assert clouds.shape[1] == points
    with torch.no_grad():
        logits = model(clouds)
    lo, hi = P.accuracy_range(logits.double(), planted.labels["test"][rows])
    cell = res["corruptions"][corruption]["4"]
    assert within(cell["calip"]["top1"], lo, hi) and cell["n"] == LIMIT and cell["points"] == points
    if corruption == "rotation":
        assert cell["calip"]["top1"] != res["clean"]["calip"]["top1"]     # the noise changes answers


def test_means_per_corruption_severity_and_overall(bench):
    res, tmp, _ = bench
    assert list(res["corruptions"]) == ["rotation", "background", "cutout"]
    cells = [res["corruptions"][c][s] for c in ("rotation", "background", "cutout")
             for s in ("1", "4")]
    for m in ("pointclip", "calip"):
        assert res["overall"][m]["top1"] == pytest.approx(np.mean([c[m]["top1"] for c in cells]))
        assert res["mean_per_corruption"]["rotation"][m]["top1"] == pytest.approx(
            np.mean([res["corruptions"]["rotation"][s][m]["top1"] for s in ("1", "4")]))
        assert res["mean_per_severity"]["4"][m]["top1"] == pytest.approx(
            np.mean([res["corruptions"][c]["4"][m]["top1"]
                     for c in ("rotation", "background", "cutout")]))
    md = (tmp / "out" / "results.md").read_text()
    g = res["corruptions"]["cutout"]
    assert (f"| cutout | {g['1']['calip']['top1']:.2f} | {g['4']['calip']['top1']:.2f} | "
            f"{res['mean_per_corruption']['cutout']['calip']['top1']:.2f} |") in md
    assert f"**{res['overall']['calip']['top1']:.2f}**" in md and f"clean modelnet40 TEST | {LIMIT}" in md
    for name in ("heatmap_calip.png", "severity.png"):
        assert (tmp / "out" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_limit_is_class_stratified_and_seeded(bench):
    labels = np.array([0] * 10 + [1] * 5 + [2] * 2)
    rows = limit_rows(labels, 7, seed=0)
    assert len(rows) == 7 and np.bincount(labels[rows]).tolist() == [3, 2, 2]
    assert np.array_equal(rows, limit_rows(labels, 7, seed=0))
    assert not np.array_equal(rows, limit_rows(labels, 7, seed=1))
    assert np.array_equal(limit_rows(labels, None, 0), np.arange(17))
    res = bench[0]
    assert res["clean"]["n"] == res["original"]["n"] == res["corruptions"]["cutout"]["1"]["n"] == LIMIT
    assert res["tuning"]["num_clouds"] == LIMIT and res["limit"] == LIMIT


def test_bad_benchmark_configs_stop_before_work(planted, bench, tiny_checkpoints, tmp_path, capsys):
    _, tmp, c40 = bench
    argv = bench_argv(planted, c40, tiny_checkpoints["vit"], tmp_path / "s", tmp_path / "o")
    assert main([*argv, "--set", "tune.split=test"]) == 2
    assert "tune.split must be val" in capsys.readouterr().err
    assert main([*argv, "--set", "benchmark.severities=[0]"]) == 2
    assert "benchmark.severities must list distinct severities" in capsys.readouterr().err
    assert main([*argv, "--set", f"benchmark.root={tmp_path / 'none'}"]) == 2
    err = capsys.readouterr().err
    assert "pointcalip download modelnet40c --from PATH" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_default_output_folder_is_named_by_the_files_not_their_place(planted, bench, tmp_path):
    import shutil

    from pointcalip.benchmark.config import BenchmarkConfig
    from pointcalip.benchmark.robustness import output_dir
    from pointcalip.config import load_config

    _, _, c40 = bench
    moved = shutil.copytree(c40, tmp_path / "elsewhere" / "modelnet40_c")
    name = lambda root: output_dir(load_config(BenchmarkConfig, ["modelnet40c"], [  # noqa: E731
        f"data.root={planted.root}", f"benchmark.root={root}"]))
    assert name(c40) == name(moved)
    np.save(moved / "label.npy", np.load(moved / "label.npy")[::-1].copy())
    assert name(c40) != name(moved)


def test_extract_fills_every_set_the_benchmark_reads(planted, bench, tiny_checkpoints, tmp_path,
                                                      capsys, monkeypatch):
    """`pointcalip extract --config modelnet40c` encodes clean TEST, the clean tuning set and
    every evaluated set (the rows --limit keeps); the benchmark then encodes nothing and reads
    no corrupted cloud (its sets' clouds are read on use), yet records each set's points."""
    _, _, c40 = bench
    cache = tmp_path / "store"
    argv = bench_argv(planted, c40, tiny_checkpoints["vit"], cache, tmp_path / "o")
    extract = ["extract", *argv[1:-2], "--set", f"limit={LIMIT}"]        # --limit is benchmark's
    assert argv[-2:] == ["--limit", str(LIMIT)] and main(extract) == 0
    rows = [line.strip("| ").split(" | ") for line in capsys.readouterr().out.splitlines()
            if line.startswith("| modelnet40")]
    val = validation_indices(planted.labels["train"], VAL_FRACTION, 0)
    assert [(r[0], r[3]) for r in rows] == [
        ("modelnet40 test", str(P.N_TEST)), ("modelnet40 val", str(len(val))),
        *[(f"modelnet40c/{s} test", str(LIMIT))
          for s in ("original", "rotation_1", "rotation_4",
                    "background_1", "background_4", "cutout_1", "cutout_4")]]
    pieces = sorted(p.name for p in cache.rglob("pieces/*"))

    def no_read(self):
        raise AssertionError(f"{self.name} read its clouds")

    monkeypatch.setattr(ModelNet40C, "_read_clouds", no_read)
    assert main(argv) == 0
    assert sorted(p.name for p in cache.rglob("pieces/*")) == pieces      # nothing encoded
    sets = json.loads((tmp_path / "o" / "results.json").read_text())["corruptions"]
    counts = release_counts()
    assert {(c, int(s), cell["points"]) for c, by in sets.items() for s, cell in by.items()} == {
        (c, s, counts[(c, s)]) for c in ("rotation", "background", "cutout") for s in (1, 4)}


def test_a_label_file_that_disagrees_with_clean_test_is_recorded(planted, bench, tiny_checkpoints,
                                                                 tmp_path):
    """Before: a log line only; results.json and results.md said nothing."""
    import shutil

    _, tmp, c40 = bench
    other = tmp_path / "c"
    shutil.copytree(c40, other)
    labels = np.load(other / "label.npy")
    labels[[4, 17]] = (labels[[4, 17]] + 1) % 3
    np.save(other / "label.npy", labels)
    argv = bench_argv(planted, other, tiny_checkpoints["vit"], tmp / "store", tmp_path / "out",
                      "--set", "benchmark.corruptions=[gaussian]", "--set",
                      "benchmark.severities=[1]")
    assert main(argv) == 0
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    n = len(planted.labels["test"])
    assert res["labels_vs_clean_test"] == {
        "agree": False, "sets_checked": 2, "differing_sets": 2, "first": {
            "set": "original", "file": str(other / "label.npy"), "clouds": n, "clean_clouds": n,
            "differing": 2, "first_rows": [4, 17]}}
    assert ("**Warning:** the labels of 2 of 2 modelnet40c sets differ from the clean modelnet40 "
            f"TEST labels; first original ({other / 'label.npy'}): 2 of {n} clouds (rows 4, 17)") in (tmp_path / "out" / "results.md").read_text()


def test_error_rates_confusions_and_the_data_against_the_release(planted, bench):
    res, tmp, _ = bench
    for m in ("pointclip", "calip"):
        e = res["error_rates"][m]
        cell = res["corruptions"]["rotation"]["4"][m]["top1"]
        assert e["cells"]["rotation"]["4"] == pytest.approx(100.0 - cell)
        assert e["mean"] == pytest.approx(100.0 - res["overall"][m]["top1"])
        assert e["clean"] == pytest.approx(100.0 - res["clean"][m]["top1"])
        assert e["dgcnn_normalised"] is None              # ModelNet-C's references: other corruptions
        assert e["mean_vs_dgcnn"]["ratio"] == pytest.approx(e["mean"] / 25.9)
        assert res["clean"][m]["macc"] is not None
    md = (tmp / "out" / "results.md").read_text()
    assert "### CALIP error rate (%)" in md and "mCE / RmCE" in md and "not computed" in md
    clean, c40 = res["data"]
    assert clean["dataset"] == "modelnet40" and not clean["complete"]
    assert c40["dataset"] == "modelnet40c" and not c40["complete"]
    n = len(planted.labels["test"])
    assert f"test holds {n} clouds; the release has 2,468" in c40["differences"]
    assert not any("files are missing" in d for d in c40["differences"])   # all 77 written
    evaluated = sum(len(by_severity) for by_severity in res["corruptions"].values())
    assert 0 < evaluated < 75
    assert any(f"evaluated {evaluated} of its 75 corrupted sets" in d for d in c40["differences"])
    confusion = (tmp / "out" / "confusion" / "modelnet40_test_calip.csv").read_text().splitlines()
    assert len(confusion) == 1 + len(P.CLASSES)
    assert (tmp / "out" / "confusion" / "modelnet40_test_calip.png").is_file()
    assert (tmp / "out" / "confusion" / "rotation_4_calip.csv").is_file()
    assert not (tmp / "out" / "confusion" / "rotation_4_calip.png").exists()


#: DGCNN's overall accuracy on ModelNet-C (Ren et al. 2022, Table 2; jiawei-ren/ModelNet-C
#: modelnetc_utils/eval.py): clean and each corruption's mean over its 5 levels
DGCNN_OA = {"clean": 0.926, "jitter": 0.684, "add_local": 0.725}


@pytest.fixture(scope="module")
def modelnet_c_run(planted, bench, tiny_checkpoints):
    """`benchmark --config modelnet_c` on 2 corruptions x all 5 levels; its clean.h5 holds
    each test cloud's neighbour (labels kept), so its accuracy differs from clean TEST's."""
    import h5py

    from synthetic_corrupted_h5 import write_modelnet_c

    _, tmp, _ = bench
    mnc = write_modelnet_c(tmp / "mnc", planted.labels["test"], base=planted.points["test"].numpy())
    with h5py.File(mnc / "clean.h5", "r+") as f:
        f["data"][...] = np.roll(np.asarray(f["data"]), 1, axis=0)
    out = tmp / "mnc_out"
    argv = bench_argv(planted, mnc, tiny_checkpoints["vit"], tmp / "store", out,
                      "--set", "benchmark.corruptions=[jitter,add_local]",
                      "--set", "benchmark.severities=[0,1,2,3,4]")
    argv[argv.index("modelnet40c")] = "modelnet_c"
    assert main(argv) == 0
    return json.loads((out / "results.json").read_text()), out


def test_modelnet_c_mce_and_rmce_by_hand(modelnet_c_run):
    """ModelNet-C's CE_c = E_c / E_c^DGCNN and RCE_c = (E_c - E_clean) / (E_c^DGCNN -
    E_clean^DGCNN), E_c the mean error over the 5 levels, E_clean on the release's own clean
    set (clean.h5, as ModelNet-C's evaluation does); mCE / RmCE their means."""
    res, out = modelnet_c_run
    assert res["benchmark"] == "modelnet_c"
    for m in ("pointclip", "calip"):
        clean_error = 100.0 - res["original"][m]["top1"]
        assert res["original"][m]["top1"] != res["clean"][m]["top1"]     # the fixture's point
        ce, rce = {}, {}
        for c in ("jitter", "add_local"):
            cells = res["corruptions"][c]
            assert sorted(cells) == ["0", "1", "2", "3", "4"]
            error = np.mean([100.0 - cells[s][m]["top1"] for s in cells])
            dgcnn = 100.0 * (1 - DGCNN_OA[c])
            ce[c] = error / dgcnn
            rce[c] = (error - clean_error) / (dgcnn - 100.0 * (1 - DGCNN_OA["clean"]))
        n = res["error_rates"][m]["dgcnn_normalised"]
        assert n["corruptions"] == ["jitter", "add_local"]
        assert n["ce"] == pytest.approx(ce) and n["rce"] == pytest.approx(rce)
        assert n["mce"] == pytest.approx(np.mean(list(ce.values())))
        assert n["rmce"] == pytest.approx(np.mean(list(rce.values())))
        assert n["clean_set"] == "clean" and n["comparable"] is False     # 2 of 7 corruptions
        assert res["error_rates"][m]["mean_vs_dgcnn"] is None       # ModelNet40-C's, not this one's
    md = (out / "results.md").read_text()
    n = res["error_rates"]["calip"]["dgcnn_normalised"]
    assert f"mCE {n['mce']:.3f}, RmCE {n['rmce']:.3f}" in md
    assert "on ModelNet40-C" not in md
