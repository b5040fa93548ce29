"""What a researcher pastes into a paper (issue 31): true training times, spreads only where
there are several seeds, titles by what ran, partial data named, metrics the field reports."""
import time

import torch
import torch.nn.functional as F

from pointcalip.fewshot import InterViewAdapter
from pointcalip.fewshot.recipe import TrainConfig
from pointcalip.fewshot.train import EvalSet, TrainSet, fit


def _fit(run_dir, epochs, resume=False):
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(12, 1, 3, 8, generator=g)
    labels = torch.arange(12) % 3
    text = F.normalize(torch.randn(3, 8, generator=g), dim=-1)
    model = InterViewAdapter(3, 8, generator=torch.Generator().manual_seed(1))
    recipe = TrainConfig(epochs=epochs, batch_size=4, optimizer="sgd", lr=0.05)
    return fit(model, TrainSet((raw,), labels), EvalSet((raw[:, 0],), labels), recipe, run_dir,
               seed=1, resume=resume, run_id="r", forward=lambda m, x: m.logits(x, text))


def test_training_time_is_the_time_the_training_took(tmp_path):
    began = time.perf_counter()
    fitted = _fit(tmp_path / "run", epochs=3)
    took = time.perf_counter() - began
    assert 0 < fitted.seconds <= took
    saved = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["state"]["seconds"]
    assert saved == fitted.seconds


def test_a_resumed_run_adds_its_own_training_time(tmp_path):
    first = _fit(tmp_path / "run", epochs=2)
    began = time.perf_counter()
    resumed = _fit(tmp_path / "run", epochs=4, resume=True)
    took = time.perf_counter() - began
    assert first.seconds < resumed.seconds <= first.seconds + took
