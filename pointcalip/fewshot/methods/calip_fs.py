"""CALIP-FS, ours: CALIP's attention with trainable projections, initialised as zero-shot
CALIP with the betas and view weights searched on validation (fewshot/calip_fs_model.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ...config import Section, positive
from ..recipe import TrainConfig
from . import METHODS


@dataclass
class CalipFSConfig(Section):
    """CALIP-FS: rank null = full-rank projections, or r for I + U V^T."""

    rank: Optional[int] = positive(16)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=50, batch_size=32, optimizer="adamw", lr=1e-3, weight_decay=1e-4,
        label_smoothing=0.2))


@METHODS.register("calip_fs", section=CalipFSConfig, trains=True, augmented=True, order=4)
def run(prepared, k: int, seed: int):
    """-> the row of CALIP-FS trained on ``k`` shots drawn with ``seed`` (U drawn with it)."""
    import torch

    from ..calip_fs_model import CALIPFS
    from ..data import stack_alternatives
    from ...report.metrics import accuracy
    from ..stages import Outcome
    from ..train import EvalSet, TrainSet, evaluate

    cfg, zero, f = prepared.cfg.calip_fs, prepared.zero, prepared.zero.found
    rows = prepared.splits.shots(k, seed)
    shots = prepared.features.of_train(rows, spatial=True)
    copies = prepared.features.copies(rows, spatial=True)
    val = prepared.val_spatial
    model = CALIPFS(zero.text, f.beta2, f.beta3, f.view_weights, rank=cfg.rank, seed=seed).to(prepared.device)
    # float32 once, not per batch (2x the memory of float16)
    inputs = (stack_alternatives(shots.global_, None if copies is None else copies.global_).float(),
              stack_alternatives(shots.spatial, None if copies is None else copies.spatial).float())
    on_val = EvalSet((val.global_, val.spatial), val.labels)
    fitted = prepared.folders.fit("calip_fs", k, seed, model, TrainSet(inputs, shots.labels), on_val,
                                  cfg.train)
    val_acc = evaluate(model, on_val)
    model.eval()
    logits = []
    with torch.no_grad():
        for g, s, _ in prepared.features.test.batches(64, device=prepared.device):
            logits.append(model(g, s).float().cpu())
    test_acc = accuracy(torch.cat(logits), zero.test.labels)       # top-1 and mAcc
    with torch.no_grad():
        hp = {"rank": cfg.rank, "beta2": model.beta2.item(), "beta3": model.beta3.item(),
              "tau": model.tau.item(), "view_weights": [round(w, 4) for w in model.view_weights.tolist()]}
    return Outcome(test_acc, val_acc, hp, model.num_trainable(), fitted,
                   prepared.folders.run_dir("calip_fs", k, seed)).row("calip_fs", k, seed)
