"""PointCLIP's inter-view adapter trained on the shots' raw global features (fewshot/inter_view_adapter.py),
or a released checkpoint of it evaluated as it is."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ...config import Section, ruled
from ..recipe import TrainConfig
from . import METHODS


@dataclass
class AdapterConfig(Section):
    """PointCLIP's inter-view adapter, its published recipe. ``checkpoint``: evaluate a
    released ``model-best.pth.tar`` instead of training."""

    ratio: float = ruled(0.6, lambda v: 0 <= v <= 1, "a number in [0, 1]")
    fusion_init: float = 0.5
    dropout: float = ruled(0.075, lambda v: 0 <= v < 1, "a number in [0, 1)")
    checkpoint: Optional[str] = None
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=250, batch_size=32, optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=5e-4,
        label_smoothing=0.2, smoothing="others", schedule_unit="epoch", warmup_epochs=1,
        warmup_lr=1e-5))


def _evaluates_a_checkpoint(cfg) -> bool:
    return bool(cfg.adapter.checkpoint)


def _check_checkpoint(cfg, num_views: int, channels: int, trust: bool = False) -> None:
    """Before anything is encoded: ``adapter.checkpoint`` must be a readable PointCLIP adapter
    (allow-listed contents unless ``trust``) for ``num_views`` views of ``channels``."""
    if cfg.adapter.checkpoint:
        from ..inter_view_adapter import check_checkpoint_fits

        check_checkpoint_fits(cfg.adapter.checkpoint, num_views, channels,
                              f"projector {cfg.projector.name}, backbone {cfg.backbone}", trust)


@METHODS.register("adapter", section=AdapterConfig, trains=True, augmented=True, order=3,
                  once=_evaluates_a_checkpoint, check=_check_checkpoint)
def run(prepared, k: Optional[int], seed: Optional[int]):
    """-> the row of the adapter trained on ``k`` shots drawn with ``seed`` (its initial
    weights drawn with ``seed``), or, with ``adapter.checkpoint``, the list of the one row of
    the released adapter (no shots, no seed)."""
    import torch

    from ..inter_view_adapter import InterViewAdapter
    from ..data import stack_alternatives
    from ..stages import Outcome, test_accuracy
    from ..train import EvalSet, TrainSet, evaluate

    cfg, text = prepared.cfg.adapter, prepared.zero.text
    forward = lambda m, raw: m.logits(raw, text)  # noqa: E731
    val, test = prepared.val, prepared.test
    if cfg.checkpoint:
        model = InterViewAdapter.from_pointclip_checkpoint(cfg.checkpoint, prepared.trust_checkpoint,
                                                         ratio=cfg.ratio).to(prepared.device)
        fitted, hp, run_dir = None, {"checkpoint": cfg.checkpoint}, None
    else:
        rows = prepared.splits.shots(k, seed)
        shots, copies = prepared.features.of_train(rows), prepared.features.copies(rows)
        inputs = stack_alternatives(shots.raw, None if copies is None else copies.raw)
        model = InterViewAdapter(prepared.zero.num_views, text.shape[1], cfg.ratio, cfg.fusion_init,
                                 cfg.dropout, generator=torch.Generator().manual_seed(seed)
                                 ).to(prepared.device)
        fitted = prepared.folders.fit("adapter", k, seed, model, TrainSet((inputs,), shots.labels),
                                      EvalSet((val.raw,), val.labels), cfg.train, forward)
        hp, run_dir = {"ratio": cfg.ratio}, prepared.folders.run_dir("adapter", k, seed)
    val_acc = evaluate(model, EvalSet((val.raw,), val.labels), forward=forward)
    test_acc = test_accuracy(model, EvalSet((test.raw,), test.labels), forward)
    outcome = Outcome(test_acc, val_acc, hp, model.num_trainable(), fitted, run_dir)
    if cfg.checkpoint:
        return [outcome.row("adapter", None, None)]
    return outcome.row("adapter", k, seed)
