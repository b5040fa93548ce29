"""Tip-Adapter and Tip-Adapter-F against the official code (tests/data/tip_adapter_goldens.npz).

The goldens are the outputs of the official Tip-Adapter (`search_hp`, `run_tip_adapter_F`,
`run_tip_adapter`), run from its own checkout on fixed synthetic view features by
`python scripts/make_goldens.py --tip-adapter DIR` (scripts/official_code.py: how it is fed,
what is recorded), at 1 view and at 10 views with unequal view weights. Tip-Adapter sees a
cloud as f = normalise(concat_v(w_v F_v)) and zero-shot logits 100 f @ normalise(tile(text));
ours are ||w||_2 times those, and our alpha is Tip-Adapter's times ||w||_2 (fewshot/tip_cache.py).
Here our code runs on the same view features: the training-free search, Tip-Adapter-F's first
loss, gradient and key update, every epoch's loss and validation accuracy, the kept keys, the
search after training and the test accuracy must equal the official ones.
"""
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from pointcalip.fewshot.config import FewShotConfig
from pointcalip.fewshot.tip_cache import (TIP_F_EPS, TipCache, default_grids, descriptors, search_alpha_beta,
                                    tip_f_loss, tip_f_optimizer, tip_scale, train_tip_f)
from pointcalip.head import aggregate_views

GOLDENS = Path(__file__).parent / "data" / "tip_adapter_goldens.npz"
CASES = ("v1", "v10")


@pytest.fixture(scope="module")
def gold():
    with np.load(GOLDENS) as z:
        return {k: z[k] for k in z.files}


class Case:
    """Our inputs for one golden case: descriptors and base logits (PointCLIP's zero-shot
    logits with the case's view weights, on our scale) of the shots, validation and test."""

    def __init__(self, gold, name):
        self.gold = lambda key: gold[f"{name}_{key}"]
        self.weights = [float(w) for w in self.gold("weights")]
        self.views = len(self.weights)
        self.scale = tip_scale(self.weights, self.views)
        text = torch.from_numpy(self.gold("text"))
        self.split = {}
        for split in ("shots", "val", "test"):
            g = torch.from_numpy(self.gold(f"{split}_global"))
            l0 = 100.0 * g @ text.T                                        # [n, V, K]
            base = aggregate_views(l0, torch.zeros_like(l0), torch.zeros_like(l0), 0.0, 0.0, self.weights)
            self.split[split] = (descriptors(g, self.weights), base,
                                 torch.from_numpy(self.gold(f"{split}_labels")))
        self.recipe = dataclasses.replace(FewShotConfig().tip_f.train, lr=float(self.gold("lr")))

    def cache(self, learnable=False):
        feats, _, labels = self.split["shots"]
        return TipCache(feats, labels, 4, learnable=learnable)

    def search(self, cache):
        alphas, betas = default_grids(self.views, view_weights=self.weights)
        feats, base, labels = self.split["val"]
        return search_alpha_beta(cache, feats, base, labels, alphas, betas)


def test_default_recipe_is_tip_adapter_fs():
    r = FewShotConfig().tip_f.train
    assert (r.optimizer, r.lr, r.weight_decay, r.epochs, r.batch_size, r.schedule, r.label_smoothing) == \
        ("adamw", 1e-3, 0.01, 20, 256, "cosine", 0.0)       # torch's AdamW default decay, as Tip's
    assert TIP_F_EPS == 1e-4
    assert isinstance(tip_f_optimizer([torch.nn.Parameter(torch.zeros(2))], r), torch.optim.AdamW)


def test_alpha_is_tips_times_the_norm_of_the_view_weights():
    assert tip_scale(None, 10) == pytest.approx(10 ** 0.5)
    assert tip_scale([3.0, 4.0], 2) == pytest.approx(5.0)
    torch.testing.assert_close(default_grids(4, view_weights=[1.0, 1.0, 1.0, 1.0])[0], default_grids(4)[0])
    torch.testing.assert_close(default_grids(2, view_weights=[3.0, 4.0])[0], default_grids(1)[0] * 5.0)


@pytest.mark.parametrize("name", CASES)
def test_training_free_search_equals_the_official(gold, name):
    c = Case(gold, name)
    alpha, beta, _ = c.search(c.cache())
    assert beta == pytest.approx(float(c.gold("tip_beta")), abs=1e-6)
    assert alpha / c.scale == pytest.approx(float(c.gold("tip_alpha")), rel=1e-6)


@pytest.mark.parametrize("name", CASES)
def test_first_step_equals_the_officials(gold, name):
    """Loss, gradient and key update of Tip-Adapter-F's first step, whatever the views."""
    c = Case(gold, name)
    alpha, beta, _ = c.search(c.cache())
    cache = c.cache(learnable=True)
    torch.testing.assert_close(cache.keys.detach(), torch.from_numpy(c.gold("keys_before")), atol=1e-7, rtol=0)
    feats, base, labels = c.split["shots"]
    loss, _ = tip_f_loss(cache, feats, base, labels, alpha, beta, c.scale)
    assert float(loss.detach()) == pytest.approx(float(c.gold("losses")[0]), rel=1e-5)
    loss.backward()
    grad = cache.keys.grad.clone()
    want = torch.from_numpy(c.gold("first_grad"))
    assert (grad - want).abs().max() <= 1e-5 * want.abs().max()
    before = cache.keys.detach().clone()
    tip_f_optimizer([cache.keys], c.recipe).step()
    step = cache.keys.detach() - before
    official = torch.from_numpy(c.gold("keys_after_first") - c.gold("keys_before"))
    cosine = torch.nn.functional.cosine_similarity(step.flatten(), official.flatten(), dim=0)
    assert float(cosine) > 1 - 1e-5
    assert (step - official).abs().max() <= 1e-3 * official.abs().max()


@pytest.mark.parametrize("name", CASES)
def test_training_and_choices_equal_the_officials(gold, name):
    """Every epoch's loss and validation accuracy, the kept epoch and keys, the search after
    training and the test accuracy."""
    c = Case(gold, name)
    alpha, beta, _ = c.search(c.cache())
    cache = c.cache(learnable=True)
    fit = train_tip_f(cache, *c.split["shots"], *c.split["val"], alpha, beta, c.weights, c.views,
                      c.recipe, torch.Generator().manual_seed(0))
    losses = [row["loss"] for row in fit.curves]
    np.testing.assert_allclose(losses, c.gold("losses"), rtol=1e-4)
    accuracies = np.array([row["val_accuracy"] for row in fit.curves])
    np.testing.assert_array_equal(accuracies, c.gold("epoch_accuracies"))
    assert fit.best_epoch == int(np.argmax(c.gold("epoch_accuracies"))) + 1 not in (1, len(losses))
    torch.testing.assert_close(cache.keys.detach(), torch.from_numpy(c.gold("best_keys")), atol=1e-5, rtol=0)
    alpha, beta, _ = c.search(cache)
    assert beta == pytest.approx(float(c.gold("f_beta")), abs=1e-6)
    assert alpha / c.scale == pytest.approx(float(c.gold("f_alpha")), rel=1e-6)
    feats, base, labels = c.split["test"]
    with torch.no_grad():
        test = 100.0 * int((cache.logits(feats, base, alpha, beta).argmax(-1) == labels).sum()) / len(labels)
    assert test == pytest.approx(float(c.gold("test_accuracy")), abs=1e-9)


def test_goldens_say_where_they_come_from(gold):
    assert str(gold["meta_tip_adapter_url"]) == "https://github.com/gaopengcuhk/Tip-Adapter"
    assert len(str(gold["meta_tip_adapter_commit"])) == 40                 # a clean checkout
    assert str(gold["meta_command"]).startswith("python scripts/make_goldens.py --tip-adapter")


def test_a_wrong_tip_adapter_checkout_is_named(tmp_path):
    import sys
    sys.path.insert(0, str(Path(__file__).parent.parent / "scripts"))
    try:
        from official_code import OfficialCodeError, tip_adapter_root
    finally:
        sys.path.pop(0)
    with pytest.raises(OfficialCodeError, match=rf"Tip-Adapter checkout {tmp_path} lacks main.py \(clone "
                                                 r"https://github.com/gaopengcuhk/Tip-Adapter"):
        tip_adapter_root(tmp_path)
