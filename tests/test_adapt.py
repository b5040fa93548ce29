"""`pointcalip adapt` end to end on the planted ModelNet folder and corrupted releases built
from its TEST clouds with the real per-set point counts (ModelNet40-C as measured from its
generator, ModelNet-C as its generator computes them): every stored point fed, zero-shot rows
equal to PointCALIP on those clouds at the betas found on clean validation, the full cache
far above zero-shot on a planted shift, `extract --config adapt/...` filling what adapt reads,
outputs and labels (online / NOT ONLINE) written, the cache tuned on validation only."""
import json

import numpy as np
import pytest
import torch

import planted as P
from pointcalip.backbones import load_clip
from pointcalip.benchmark.robustness import limit_rows
from pointcalip.cli import main
from pointcalip.datasets.modelnet40c import data_file
from pointcalip.model import PointCALIP
from pointcalip.projection import PointCLIPProjector
from planted_shift import anchors_and_shifts, shifted_set
from synthetic_corrupted_h5 import modelnet_c_points, write_modelnet_c
from synthetic_modelnet40c import release_counts, write_modelnet40c

LIMIT = 21
CORRUPTIONS = ["gaussian", "background", "cutout", "lidar", "upsampling"]   # 1,024 and not
SEVERITIES = [1, 5]


def argv(planted, c40, ckpt, tmp, out, *extra, config="modelnet40c", store="store", limit=LIMIT):
    return ["adapt", "--config", config, "--set", f"data.root={planted.root}",
            "--set", f"benchmark.root={c40}", "--set", f"backbone={ckpt}",
            "--set", f"cache_dir={tmp / store}", "--set", f"output_dir={out}",
            "--set", f"tune.grid={P.GRID}", "--set", "tune.val_fraction=0.8",
            *(["--set", f"benchmark.corruptions=[{','.join(CORRUPTIONS)}]",
               "--set", f"benchmark.severities={SEVERITIES}"] if config == "modelnet40c" else []),
            "--orders", "2", *(["--limit", str(limit)] if limit else []), *extra]


def calip_model(res, backbone):
    """PointCALIP at the run's betas and view weights (the library's model, not adapt's code)."""
    cal = res["calip"]
    return PointCALIP(backbone, P.CLASSES, PointCLIPProjector(), res["templates"],
                      cal["beta2"], cal["beta3"], cal["view_weights"])


@pytest.fixture(scope="module")
def adapted(planted, tiny_checkpoints, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("adapt")
    c40 = write_modelnet40c(tmp / "c", planted.labels["test"], base=planted.points["test"].numpy(),
                            noise=0.04)
    assert main(argv(planted, c40, tiny_checkpoints["vit"], tmp, tmp / "out")) == 0
    return json.loads((tmp / "out" / "results.json").read_text()), tmp, c40


def test_rows_sets_and_outputs(adapted):
    res, tmp, _ = adapted
    assert [s["name"] for s in res["sets"]] == ["original"] + [
        f"{c}_{s}" for c in CORRUPTIONS for s in SEVERITIES]
    assert res["rows"] == ["PointCLIP", "CALIP", "+ positive", "+ positive + negative",
                           "+ local (full)", "PointCLIP + cache (full)"]
    assert res["online"] is True and res["cache"]["hyper_parameters"].startswith("fixed")
    for s in res["sets"]:
        assert s["clouds"] == LIMIT
        assert s["rows"]["CALIP"]["std"] == 0 and len(s["rows"]["CALIP"]["per_order"]) == 2
        assert len(s["curves"]["running_top1"]["+ local (full)"]) == 2
        assert s["curves"]["clouds_seen"][-1] == LIMIT
    for name in ("results.md", "gain.png", "curves.png"):
        assert (tmp / "out" / name).is_file()
    md = (tmp / "out" / "results.md").read_text()
    assert "| gaussian |" in md and "NOT ONLINE" not in md


def test_zero_shot_and_cache_rows_equal_a_recomputation(planted, adapted):
    res, _, _ = adapted
    rows = limit_rows(planted.labels["test"], LIMIT, 0)
    labels = planted.labels["test"][rows]
    calip = res["calip"]
    base = planted.logits("test", calip["beta2"], calip["beta3"], calip["view_weights"], rows)
    original = res["sets"][0]["rows"]
    lo, hi = P.accuracy_range(base, labels)
    assert lo - 1e-4 <= original["CALIP"]["mean"] <= hi + 1e-4          # results keep 4 decimals
    for s in res["sets"]:             # the cache rows are streams over the same orders
        for row in ("+ positive", "+ positive + negative", "+ local (full)"):
            assert len(s["rows"][row]["per_order"]) == 2 and s["rows"][row]["online"]


def test_mean_class_accuracy_and_confusion_per_set_summed_over_orders(adapted):
    res, tmp, _ = adapted
    confusion = tmp / "out" / "confusion"
    for i, s in enumerate(res["sets"]):
        for row, key in (("PointCLIP", "pointclip"), ("CALIP", "calip"), ("+ local (full)", "cache_full")):
            lines = (confusion / f"{s['name']}_{key}.csv").read_text().splitlines()
            assert lines[0].split(",")[1:] == list(P.CLASSES)
            m = np.array([[int(v) for v in line.split(",")[1:]] for line in lines[1:]])
            r = s["rows"][row]
            assert m.sum() == 2 * LIMIT                                  # 2 orders, summed
            assert 100 * np.trace(m) / m.sum() == pytest.approx(r["mean"], abs=1e-3), (s["name"], row)
            per_class = np.diag(m) / m.sum(axis=1)
            assert 100 * per_class.mean() == pytest.approx(r["macc"], abs=1e-3), (s["name"], row)
            assert len(r["macc_per_order"]) == 2
            assert (confusion / f"{s['name']}_{key}.png").is_file() == (i == 0)   # first set only
    # (--limit keeps 7 clouds of each class: balanced sets, so here mAcc equals top-1)
    md = (tmp / "out" / "results.md").read_text()
    assert "Mean class accuracy (mAcc, %), the mean over the orders:" in md
    assert f"| original | {res['sets'][0]['rows']['PointCLIP']['macc']:.2f} |" in md


def test_prefill_is_labelled_not_online(planted, adapted, tiny_checkpoints):
    _, tmp, c40 = adapted
    out = tmp / "prefill"
    assert main(argv(planted, c40, tiny_checkpoints["vit"], tmp, out,
                     "--set", "cache.prefill=true")) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["online"] is False and res["protocol"].startswith("NOT ONLINE")
    assert all(not s["rows"]["+ local (full)"]["online"] for s in res["sets"])
    assert "NOT ONLINE" in (out / "results.md").read_text()


def test_cache_tuned_on_clean_validation(planted, adapted, tiny_checkpoints):
    _, tmp, c40 = adapted
    out = tmp / "tuned"
    assert main(argv(planted, c40, tiny_checkpoints["vit"], tmp, out, "--set", "cache.tune=val",
                     "--set", "cache.alpha_grid=[0.0,4.0]", "--set", "cache.beta_grid=[3.0]")) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["cache"]["hyper_parameters"].startswith("val")
    assert [row[:2] for row in res["cache"]["grid"]] == [[0.0, 3.0], [4.0, 3.0]]
    best = max(res["cache"]["grid"], key=lambda r: r[2])
    assert res["cache"]["alpha"] == best[0]


def test_bad_adapt_configs_stop_before_work(planted, adapted, tiny_checkpoints, capsys):
    _, tmp, c40 = adapted
    base = argv(planted, c40, tiny_checkpoints["vit"], tmp, tmp / "bad")
    assert main([*base, "--set", "cache.neg_band=[0.5,0.2]"]) == 2
    assert "neg_band" in capsys.readouterr().err
    assert main([*base, "--set", "tune.split=test"]) == 2
    assert not (tmp / "bad").exists()


def test_every_stored_point_is_fed(adapted):
    """The sets differ in point count as released (ModelNet40-C's generator, measured)."""
    res, _, _ = adapted
    counts = release_counts()
    assert [s["points"] for s in res["sets"]] == [counts[("original", None)]] + [
        counts[(c, s)] for c in CORRUPTIONS for s in SEVERITIES]
    assert len({s["points"] for s in res["sets"]}) >= 6


@pytest.mark.parametrize("name", ["background_5", "cutout_5", "upsampling_5"])
def test_a_corrupted_zero_shot_row_is_pointcalip_on_every_stored_point(planted, adapted, tiny_vit,
                                                                        name):
    res, _, c40 = adapted
    rows = limit_rows(planted.labels["test"], LIMIT, 0)
    clouds = torch.from_numpy(np.load(c40 / f"data_{name}.npy")[rows])
    with torch.no_grad():
        logits = calip_model(res, tiny_vit)(clouds).double()
    lo, hi = P.accuracy_range(logits, planted.labels["test"][rows])
    got = next(s for s in res["sets"] if s["name"] == name)
    assert got["points"] == clouds.shape[1] != 1024
    assert lo - 1e-4 <= got["rows"]["CALIP"]["mean"] <= hi + 1e-4


def test_extract_fills_what_adapt_reads(planted, adapted, tiny_checkpoints, capsys):
    """`pointcalip extract --config adapt/modelnet40c` encodes the clean tuning set and every
    streamed set (the rows --limit keeps; clean TEST is not streamed); adapt then encodes
    nothing."""
    _, tmp, c40 = adapted
    run = argv(planted, c40, tiny_checkpoints["vit"], tmp, tmp / "after", store="store_x")
    assert run[-4:] == ["--orders", "2", "--limit", str(LIMIT)]
    capsys.readouterr()
    assert main(["extract", "--config", "adapt/modelnet40c", *run[3:-4],
                 "--set", f"limit={LIMIT}"]) == 0
    table = [line.strip("| ").split(" | ") for line in capsys.readouterr().out.splitlines()
             if line.startswith("| modelnet40")]
    assert [r[0] for r in table] == ["modelnet40 val"] + [
        f"modelnet40c/{name} test" for name in
        ["original"] + [f"{c}_{s}" for c in CORRUPTIONS for s in SEVERITIES]]
    assert all(r[3] == str(LIMIT) for r in table[1:])
    pieces = sorted(p.name for p in (tmp / "store_x").rglob("pieces/*"))
    assert main(run) == 0
    assert sorted(p.name for p in (tmp / "store_x").rglob("pieces/*")) == pieces


def plant_shift(res, backbone, planted, folder):
    """A ModelNet40-C release whose gaussian_5 is a planted shift (tests/planted_shift.py) at
    the run's own betas, half the rows of each class with a shifted copy moved. -> (folder,
    zero-shot top-1 % on the rows --limit keeps)."""
    labels, clouds = planted.labels["test"], planted.points["test"].numpy()
    anchors, shifted = anchors_and_shifts(calip_model(res, backbone), labels, clouds)
    assert len(shifted) >= 2, "the planted shift needs shifted copies of two classes"
    shift, moved = shifted_set(anchors, shifted, labels, 0.5)
    folder = write_modelnet40c(folder, labels, base=clouds, corruptions=["gaussian"])
    np.save(folder / data_file("gaussian", 5), shift)
    return folder, 100.0 * (1 - moved[limit_rows(labels, LIMIT, 0)].mean())


def test_the_full_cache_repairs_a_planted_shift(planted, adapted, tiny_checkpoints, tiny_vit):
    res, tmp, _ = adapted
    folder, zero_shot = plant_shift(res, tiny_vit, planted, tmp / "shift")
    out = tmp / "shift_out"
    assert main(argv(planted, folder, tiny_checkpoints["vit"], tmp, out, "--set",
                     "benchmark.corruptions=[gaussian]", "--set", "benchmark.severities=[5]")) == 0
    got = json.loads((out / "results.json").read_text())
    same = ("beta2", "beta3", "view_weights")            # tuned on the same clean validation
    assert [got["calip"][k] for k in same] == [res["calip"][k] for k in same]
    rows = got["sets"][1]["rows"]
    assert got["sets"][1]["clouds"] == LIMIT and zero_shot < 80
    assert rows["CALIP"]["mean"] == pytest.approx(zero_shot, abs=1e-4)
    assert rows["+ local (full)"]["mean"] >= zero_shot + 10          # by a wide margin
    assert min(rows["+ local (full)"]["per_order"]) > zero_shot      # in every order
    assert rows["+ positive"]["mean"] > zero_shot


def test_modelnet_c_streams_its_sets_with_their_point_counts(planted, adapted, tiny_checkpoints,
                                                              tiny_vit):
    """ModelNet-C (clean.h5 + {corruption}_{level}.h5, counts per file): its clean set holds
    ModelNet40-C's original clouds, so every row equals that set's in every order."""
    res40, tmp, _ = adapted
    mnc = write_modelnet_c(tmp / "mnc", planted.labels["test"], base=planted.points["test"].numpy())
    out = tmp / "mnc_out"
    assert main(argv(planted, mnc, tiny_checkpoints["vit"], tmp, out, "--set",
                     "benchmark.corruptions=[dropout_local,add_local]", "--set",
                     "benchmark.severities=[2]", config="modelnet_c")) == 0
    res = json.loads((out / "results.json").read_text())
    assert [(s["name"], s["points"]) for s in res["sets"]] == [
        ("clean", 1024), ("dropout_local_2", modelnet_c_points("dropout_local", 2)),
        ("add_local_2", modelnet_c_points("add_local", 2))]
    assert [res["calip"][k] for k in ("beta2", "beta3", "view_weights")] == \
        [res40["calip"][k] for k in ("beta2", "beta3", "view_weights")]
    for row, want in res40["sets"][0]["rows"].items():
        assert res["sets"][0]["rows"][row]["per_order"] == want["per_order"], row
    import h5py
    rows = limit_rows(planted.labels["test"], LIMIT, 0)
    with h5py.File(mnc / "add_local_2.h5", "r") as f:
        clouds = torch.from_numpy(np.asarray(f["data"], dtype=np.float32)[rows])
    with torch.no_grad():
        logits = calip_model(res, tiny_vit)(clouds).double()
    lo, hi = P.accuracy_range(logits, planted.labels["test"][rows])
    assert lo - 1e-4 <= res["sets"][2]["rows"]["CALIP"]["mean"] <= hi + 1e-4
