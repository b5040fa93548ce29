"""PointCLIP's adapter trains with its published recipe: the learning rate of every epoch and
the loss equal what the official code computes (tests/data/adapter_recipe_goldens.npz, written
by `scripts/make_goldens.py --pointclip-recipe` from a PointCLIP checkout)."""
from pathlib import Path

import numpy as np
import pytest
import torch

from pointcalip.config import load_config
from pointcalip.fewshot.config import FewShotConfig
from pointcalip.fewshot.train import _loss, _schedule

GOLDENS = np.load(Path(__file__).parent / "data" / "adapter_recipe_goldens.npz")


def adapter_recipe():
    return load_config(FewShotConfig, ["fewshot_defaults"]).adapter.train


def lr_of_every_batch(recipe, steps_per_epoch: int) -> np.ndarray:
    """[epochs, steps_per_epoch]: the learning rate each batch trains with, stepping as `fit` does."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=recipe.lr, momentum=recipe.momentum)
    schedule = _schedule(opt, recipe, steps_per_epoch)
    lrs = np.zeros((recipe.epochs, steps_per_epoch))
    for epoch in range(recipe.epochs):
        for step in range(steps_per_epoch):
            lrs[epoch, step] = opt.param_groups[0]["lr"]
            opt.step()
            schedule.step()
    return lrs


@pytest.mark.parametrize("steps_per_epoch", [1, 7])
def test_adapter_learning_rate_of_every_batch_is_pointclips(steps_per_epoch):
    """Dassl changes the rate once per epoch: every batch of an epoch has that epoch's rate."""
    recipe = adapter_recipe()
    assert recipe.lr == GOLDENS["adapter_base_lr"] and recipe.epochs == len(GOLDENS["adapter_lr_per_epoch"])
    want = np.repeat(GOLDENS["adapter_lr_per_epoch"][:, None], steps_per_epoch, axis=1)
    np.testing.assert_allclose(lr_of_every_batch(recipe, steps_per_epoch), want, rtol=1e-9, atol=1e-15)


def test_adapter_loss_is_pointclips_smooth_loss():
    logits = torch.from_numpy(GOLDENS["smooth_logits"])
    labels = torch.from_numpy(GOLDENS["smooth_labels"]).long()
    assert float(_loss(adapter_recipe())(logits, labels)) == pytest.approx(float(GOLDENS["smooth_loss"]), rel=1e-6)


def test_the_default_recipe_keeps_torchs_cosine_per_step_and_uniform_smoothing():
    """CALIP-FS and Tip-F keep what they had: cosine over every batch, torch's smoothing."""
    recipe = load_config(FewShotConfig, ["fewshot_defaults"]).calip_fs.train
    assert (recipe.smoothing, recipe.schedule_unit, recipe.warmup_epochs) == ("uniform", "step", 0)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=recipe.lr)
    assert isinstance(_schedule(opt, recipe, 5), torch.optim.lr_scheduler.CosineAnnealingLR)
    logits, labels = torch.randn(4, 3, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1, 2, 0])
    assert torch.equal(_loss(recipe)(logits, labels),
                       torch.nn.functional.cross_entropy(logits, labels, label_smoothing=recipe.label_smoothing))
