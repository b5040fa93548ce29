"""A few seconds of real training for the tests of `fewshot.train.fit`: PointCLIP's adapter on
12 random one-view clouds of 3 classes, seeded, SGD, batches of 4."""
import torch
import torch.nn.functional as F

from pointcalip.fewshot import InterViewAdapter
from pointcalip.fewshot.recipe import TrainConfig
from pointcalip.fewshot.train import EvalSet, TrainSet, fit


def adapter_fit(run_dir, resume: bool = False, epochs: int = 3):
    """-> (the fit's result, the adapter's final weights), checkpoints in ``run_dir``."""
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(12, 1, 3, 8, generator=g)
    labels = torch.arange(12) % 3
    text = F.normalize(torch.randn(3, 8, generator=g), dim=-1)
    model = InterViewAdapter(3, 8, generator=torch.Generator().manual_seed(1))
    recipe = TrainConfig(epochs=epochs, batch_size=4, optimizer="sgd", lr=0.05)
    fitted = fit(model, TrainSet((raw,), labels), EvalSet((raw[:, 0],), labels), recipe, run_dir,
                 seed=1, resume=resume, run_id="r", forward=lambda m, x: m.logits(x, text))
    return fitted, {k: v.clone() for k, v in model.state_dict().items()}
