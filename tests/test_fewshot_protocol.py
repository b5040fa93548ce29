"""The few-shot protocol: everything is chosen on validation (a part of TRAIN), never on TEST.

On the shape-family fixture of test_fewshot_cli.py zero-shot is at chance, so validation and
test pick the same values and a pipeline that tuned on TEST would pass. Here the clouds of
tests/planted.py keep their TRAIN labels (the tiny ViT's own CALIP predictions at the planted
betas and view weights) while their TEST labels are its predictions at OTHER betas
(`TEST_BETAS`): the zero-shot betas and Tip-Adapter's (alpha, beta) that are best on the
validation rows differ from those best on TEST (asserted, so that the tests keep their
power), and `pointcalip fewshot` must report the validation choices, recomputed here directly
(the library's searches on tests/planted.py's literal CALIP logits of the validation rows).
"""
import json

import numpy as np
import pytest
import torch

import planted as P
from pointcalip.cli import main
from pointcalip.fewshot.data import shot_rows, validation_rows
from pointcalip.fewshot.tip_cache import TipCache, default_grids, descriptors, search_alpha_beta
from pointcalip.projection import PointCLIPProjector
from pointcalip.search import beta_grid, search
from synthetic_data import write_modelnet_clouds

VAL_FRACTION, SHOTS, SEED = 0.5, 4, 1
TEST_BETAS = (1, 8)                     # indices into the tuning grids: TEST's labels
TIP_GRID = dict(alpha_max=10.0, alpha_steps=10, beta_max=50.0, beta_steps=20)


@pytest.fixture(scope="module")
def relabelled(planted, tiny_vit, tmp_path_factory):
    """(root, test labels, unit global view features [n, 6, C] of train and test as the store
    keeps them (float16))."""
    b2, b3 = float(beta_grid(2.0, P.GRID)[TEST_BETAS[0]]), float(beta_grid(0.1, P.GRID)[TEST_BETAS[1]])
    test_labels = planted.logits("test", b2, b3, P.WEIGHTS).argmax(-1).numpy()
    assert np.bincount(test_labels, minlength=len(P.CLASSES)).min() >= 5
    root = write_modelnet_clouds(tmp_path_factory.mktemp("fewshot_planted") / "modelnet", P.CLASSES,
                                 {"train": (planted.points["train"].numpy(), planted.labels["train"]),
                                  "test": (planted.points["test"].numpy(), test_labels)})
    feats = {}
    with torch.no_grad():
        for split, points in planted.points.items():
            g, _ = tiny_vit.encode_images(PointCLIPProjector()(points).flatten(0, 1))
            feats[split] = g.half().float().view(len(points), 6, -1)
    return root, test_labels, feats


@pytest.fixture(scope="module")
def result(relabelled, tiny_checkpoints, tmp_path_factory):
    root, _, _ = relabelled
    tmp = tmp_path_factory.mktemp("fewshot_protocol")
    argv = ["fewshot", "--config", "modelnet40_fewshot", "--set", f"data.root={root}",
            "--set", f"backbone={tiny_checkpoints['vit']}", "--set", f"cache_dir={tmp / 'store'}",
            "--set", f"output_dir={tmp / 'out'}", "--set", "projector.views=zeroshot",
            "--set", f"templates={json.dumps(P.TEMPLATES)}", "--set", f"tune.grid={P.GRID}",
            "--set", f"tune.val_fraction={VAL_FRACTION}", "--set", "tip.base=pointclip",
            *(x for k, v in TIP_GRID.items() for x in ("--set", f"tip.{k}={v}")),
            "--shots", str(SHOTS), "--seeds", str(SEED), "--method", "zeroshot", "tip"]
    assert main(argv) == 0
    res = json.loads((tmp / "out" / "results.json").read_text())
    return {(r["method"], r["shots"]): r for r in res["runs"]}


def betas_search(planted, split, labels, rows=None):
    """The library's beta search (uniform view weights, as `fewshot` tunes by default) on the
    literal CALIP logits of ``rows`` of ``split``."""
    l0, l1, l2 = planted.view_logits[split]
    if rows is not None:
        l0, l1, l2, labels = l0[rows], l1[rows], l2[rows], labels[rows]
    return search(l0, l1, l2, torch.as_tensor(labels), beta2_values=beta_grid(2.0, P.GRID),
                  beta3_values=beta_grid(0.1, P.GRID))


def test_zero_shot_betas_are_chosen_on_validation(planted, relabelled, result):
    _, test_labels, _ = relabelled
    val = validation_rows(planted.labels["train"], VAL_FRACTION, 0)
    want = betas_search(planted, "train", planted.labels["train"], val)
    on_test = betas_search(planted, "test", test_labels)
    assert (on_test.beta2, on_test.beta3) != (want.beta2, want.beta3)      # the test has power
    calip = result[("calip", 0)]
    assert calip["hyperparameters"]["beta2"] == pytest.approx(want.beta2, rel=1e-6)
    assert calip["hyperparameters"]["beta3"] == pytest.approx(want.beta3, rel=1e-6)
    assert calip["val_accuracy"] == pytest.approx(100 * want.accuracy)
    lo, hi = P.accuracy_range(planted.logits("test", want.beta2, want.beta3), test_labels)
    assert lo <= calip["test_accuracy"] <= hi


def test_tip_alpha_and_beta_are_chosen_on_validation(planted, relabelled, result):
    """Tip-Adapter over PointCLIP's logits: the cache of the 4-shot clouds, (alpha, beta)
    searched on the validation rows, TEST evaluated once at that choice."""
    _, test_labels, feats = relabelled
    train_labels = planted.labels["train"]
    val = validation_rows(train_labels, VAL_FRACTION, 0)
    shots = shot_rows(train_labels, val, SHOTS, SEED)
    cache = TipCache(descriptors(feats["train"][shots]), train_labels[shots], len(P.CLASSES))
    alphas, betas = default_grids(6, **TIP_GRID)

    def choose(split, labels, rows):
        base = planted.logits(split, 0.0, 0.0, rows=rows).float()
        f = descriptors(feats[split] if rows is None else feats[split][rows])
        return search_alpha_beta(cache, f, base, labels, alphas, betas)

    want = choose("train", train_labels[val], val)
    on_test = choose("test", test_labels, None)
    assert on_test[:2] != pytest.approx(want[:2])                           # the test has power
    tip = result[("tip", SHOTS)]
    assert tip["hyperparameters"]["base"] == "pointclip"
    assert tip["hyperparameters"]["alpha"] == pytest.approx(want[0], rel=1e-6)
    assert tip["hyperparameters"]["beta"] == pytest.approx(want[1], rel=1e-6)
    assert tip["val_accuracy"] == pytest.approx(100 * want[2])
    with torch.no_grad():
        logits = cache.logits(descriptors(feats["test"]), planted.logits("test", 0.0, 0.0).float(),
                              want[0], want[1])
    lo, hi = P.accuracy_range(logits, test_labels)
    assert lo <= tip["test_accuracy"] <= hi
