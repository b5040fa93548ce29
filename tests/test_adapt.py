"""`pointcalip adapt --config modelnet40c` end to end on the planted ModelNet folder and a
ModelNet40-C folder built from its TEST clouds: zero-shot rows equal the planted reference
logits at the betas found on clean validation, every cache row is streamed over the orders,
outputs and labels (online / NOT ONLINE) are written, the cache tuned on validation only."""
import json

import pytest

import planted as P
from pointcalip.benchmark.robustness import limit_rows
from pointcalip.cli import main
from synthetic_modelnet40c import write_modelnet40c

LIMIT = 21


def argv(planted, c40, ckpt, tmp, out, *extra):
    return ["adapt", "--config", "modelnet40c", "--set", f"data.root={planted.root}",
            "--set", f"benchmark.root={c40}", "--set", f"backbone={ckpt}",
            "--set", f"cache_dir={tmp / 'store'}", "--set", f"output_dir={out}",
            "--set", f"tune.grid={P.GRID}", "--set", "tune.val_fraction=0.8",
            "--set", "benchmark.corruptions=[gaussian]", "--set", "benchmark.severities=[1,4]",
            "--orders", "2", "--limit", str(LIMIT), *extra]


@pytest.fixture(scope="module")
def adapted(planted, tiny_checkpoints, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("adapt")
    c40 = write_modelnet40c(tmp / "c", planted.labels["test"], base=planted.points["test"].numpy(),
                            noise=0.04)
    assert main(argv(planted, c40, tiny_checkpoints["vit"], tmp, tmp / "out")) == 0
    return json.loads((tmp / "out" / "results.json").read_text()), tmp, c40


def test_rows_sets_and_outputs(adapted):
    res, tmp, _ = adapted
    assert [s["name"] for s in res["sets"]] == ["original", "gaussian_1", "gaussian_4"]
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
