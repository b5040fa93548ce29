"""Training on cached features: model selection on validation, a checkpoint every epoch,
exact resumption, training curves.

    result = fit(model, train, val, recipe, run_dir, seed, resume=False)

``train`` is a :class:`TrainSet`: input tensors [S, A, ...] holding A alternatives of each of
the S samples (A = 1, or the original plus augmented copies) and labels [S]; each epoch draws
one alternative per sample and shuffles the samples with a generator seeded by (seed, epoch),
and gives the model's dropout layers (:class:`~.dropout.SeededDropout`) a second generator
seeded the same way, so an epoch does the same work whether the run was interrupted before it
or not, and no global random state is set. ``last.pt`` (model, optimiser, schedule,
epoch, curves) is written after every epoch and ``best.pt`` whenever the validation accuracy
improves, each all at once and durably (fsync, then rename: never half-written); ``resume=True``
continues from ``last.pt`` and ends with the same weights as an uninterrupted run. A damaged
``last.pt`` or ``best.pt`` is named; with ``resume`` it is set aside (``<name>.damaged``) and
the run trains again from the start. A model with BatchNorm layers never trains on a batch of
one sample: such a last batch joins the one before it (other batch sizes are unchanged).
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import nn
from tqdm import tqdm

from ..core.atomic import atomic_write
from ..core.words import count
from ..extract import Interrupted
from .dropout import use_generator
from .recipe import TrainConfig

log = logging.getLogger(__name__)


@dataclass
class TrainSet:
    """inputs: tensors [S, A, ...] (A alternatives per sample); labels [S]."""

    inputs: Tuple[torch.Tensor, ...]
    labels: torch.Tensor

    def __post_init__(self) -> None:
        s, a = self.inputs[0].shape[:2]
        if any(x.shape[:2] != (s, a) for x in self.inputs) or self.labels.shape != (s,):
            raise ValueError("every training input must be [S, A, ...] with S labels")

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class EvalSet:
    """inputs: tensors [N, ...]; labels [N]."""

    inputs: Tuple[torch.Tensor, ...]
    labels: torch.Tensor


@dataclass
class FitResult:
    best_epoch: int
    best_val_accuracy: float          # percent
    epochs_run: int
    seconds: float
    curves: List[dict] = field(default_factory=list)
    initial_val_accuracy: Optional[float] = None      # the untrained model's (epoch 0), percent


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch) % (2 ** 63)


def evaluate(model: nn.Module, data: EvalSet, batch_size: int = 256,
             forward: Optional[Callable] = None) -> float:
    """Top-1 accuracy in percent of ``model(*inputs)`` (or ``forward(model, *inputs)``)."""
    forward = forward or (lambda m, *x: m(*x))
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    hits = 0
    with torch.no_grad():
        for start in range(0, len(data.labels), batch_size):
            batch = [x[start:start + batch_size].to(device) for x in data.inputs]
            logits = forward(model, *batch)
            hits += int((logits.argmax(-1).cpu() == data.labels[start:start + batch_size].cpu()).sum())
    model.train(was_training)
    return 100.0 * hits / max(len(data.labels), 1)


def _optimizer(model: nn.Module, recipe: TrainConfig) -> torch.optim.Optimizer:
    """The recipe's optimiser, in torch's fused form where this torch has it for the device
    (the same update, 2-4x faster on CPU for large layers), else the default form."""
    params = [p for p in model.parameters() if p.requires_grad]
    if recipe.optimizer == "sgd":
        make = lambda **kw: torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum,  # noqa: E731
                                            weight_decay=recipe.weight_decay, **kw)
    else:
        make = lambda **kw: torch.optim.AdamW(params, lr=recipe.lr,  # noqa: E731
                                              weight_decay=recipe.weight_decay, **kw)
    try:
        return make(fused=True)
    except (RuntimeError, TypeError, ValueError):
        return make()


def _schedule(optimizer, recipe: TrainConfig, steps_per_epoch: int):
    """The learning-rate schedule; ``step()`` is called after every batch. Without warm-up and
    stepped per batch, torch's cosine over every step (the default); otherwise a factor of lr
    computed per unit (batch or epoch): ``warmup_lr / lr`` for the warm-up epochs, then the
    cosine (or constant) over ``epochs`` units counted from the end of the warm-up, as Dassl's
    ConstantWarmupScheduler around CosineAnnealingLR(max_epoch) steps it for PointCLIP."""
    per_epoch = recipe.schedule_unit == "epoch"
    if not recipe.warmup_epochs and not per_epoch:
        if recipe.schedule == "constant":
            return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(recipe.epochs * steps_per_epoch, 1))
    unit = steps_per_epoch if per_epoch else 1             # batches per unit of the schedule
    warmup = recipe.warmup_epochs * steps_per_epoch // unit
    length = max(recipe.epochs * steps_per_epoch // unit, 1)

    def factor(step: int) -> float:
        done = step // unit                                 # units finished before this batch
        if done < warmup:
            return recipe.warmup_lr / recipe.lr
        if recipe.schedule == "constant":
            return 1.0
        return 0.5 * (1.0 + math.cos(math.pi * (done - warmup) / length))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _loss(recipe: TrainConfig) -> Callable:
    """Cross-entropy with the recipe's label smoothing. "others" spreads it over the K - 1 wrong
    classes: torch's uniform smoothing s * K / (K - 1) gives exactly that target."""
    def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        k = logits.shape[-1]
        s = recipe.label_smoothing
        if recipe.smoothing == "others" and k > 1:
            s = s * k / (k - 1)
        return nn.functional.cross_entropy(logits, labels, label_smoothing=s)
    return loss


def fingerprint(*parts) -> str:
    """Identity of what a run trains (settings, data), to refuse resuming another run."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class DamagedCheckpoint(ValueError):
    """A checkpoint or saved result that cannot be read (empty, truncated, not what it
    should hold): ``path``, ``reason``; the message names the file and says how to recover."""

    def __init__(self, path: Path, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"cannot read {self.path} ({reason}); run with --resume to set it "
                         f"aside and do this run again")


def _save(obj, path: Path) -> None:
    """``torch.save`` all at once or not at all, durably (fsync, then rename)."""
    with atomic_write(path) as f:
        torch.save(obj, f)


def load_checkpoint(path: Path, keys: Sequence[str] = ("model",)) -> dict:
    """A checkpoint ``fit`` wrote (tensors and plain values only: ``weights_only``), checked
    to hold ``keys``; anything unreadable is a :class:`DamagedCheckpoint` naming ``path``."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # noqa: BLE001 - empty, truncated, garbage: all "damaged"
        detail = str(err).split(". ")[0] if str(err) else type(err).__name__
        reason = ("it is empty" if path.is_file() and path.stat().st_size == 0 else
                  f"not a complete checkpoint: {detail}")
        raise DamagedCheckpoint(path, reason) from None
    missing = [k for k in keys if not isinstance(saved, dict) or k not in saved]
    if missing:
        raise DamagedCheckpoint(path, f"it holds no {', '.join(missing)}: not a checkpoint "
                                      f"`pointcalip fewshot` wrote")
    return saved


def set_aside(path: Path, err: Exception) -> Path:
    """Rename a damaged file to ``<name>.damaged`` (replacing an older one) and say so."""
    aside = path.with_name(path.name + ".damaged")
    os.replace(path, aside)
    log.warning("%s cannot be read (%s): set aside as %s; this run is done again from the start",
                path, getattr(err, "reason", err), aside.name)
    return aside


def _batches(n: int, batch_size: int, min_batch: int = 1) -> List[Tuple[int, int]]:
    """(start, stop) of each batch of ``n`` shuffled samples. A last batch smaller than
    ``min_batch`` joins the one before it (BatchNorm cannot train on one sample); with
    ``min_batch`` 1 these are the plain consecutive batches."""
    bounds = [(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < min_batch:
        bounds[-2:] = [(bounds[-2][0], n)]
    return bounds


def _min_batch(model: nn.Module) -> int:
    """2 when ``model`` holds BatchNorm layers (their batch statistics need two samples)."""
    return 2 if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()) else 1


def _resume_state(run_dir: Path, run_id: str) -> Optional[dict]:
    """``last.pt`` when it can be resumed (and ``best.pt`` is readable), else None: damaged
    files are set aside (the run trains again from the start)."""
    last, best = run_dir / "last.pt", run_dir / "best.pt"
    if not last.is_file():
        return None
    try:
        saved = load_checkpoint(last, ("model", "optimizer", "schedule", "state"))
    except DamagedCheckpoint as err:
        set_aside(last, err)
        return None
    if saved.get("run_id") != run_id:
        raise ValueError(f"{last} belongs to another run (other settings or data); "
                         f"remove {run_dir} or run without --resume")
    try:
        load_checkpoint(best)
    except (DamagedCheckpoint, FileNotFoundError) as err:
        if best.is_file():
            set_aside(best, err)
        set_aside(last, DamagedCheckpoint(last, f"its {best.name} is missing or damaged"))
        return None
    return saved


def _initial_state(model: nn.Module, val: EvalSet, forward: Callable, best_path: Path,
                   run_id: str, about: Optional[dict]) -> dict:
    """A fresh run's state: the untrained model (e.g. CALIP-FS = zero-shot CALIP) is the
    first candidate, saved as ``best_path``."""
    state = {"epoch": 0, "best_epoch": 0, "best": -1.0, "curves": [], "seconds": 0.0}
    state["best"] = state["initial"] = evaluate(model, val, forward=forward)
    _save({"model": model.state_dict(), "epoch": 0, "val_accuracy": state["best"],
           "run_id": run_id, "about": about}, best_path)
    return state


def _train_epoch(model: nn.Module, train: TrainSet, batches, forward: Callable, loss_fn,
                 optimizer, schedule, epoch_seed: int, device) -> Tuple[float, float]:
    """One epoch over ``train`` in the order (and augmented copy per cloud) ``epoch_seed``
    draws -> (mean loss, train accuracy in %)."""
    g = torch.Generator().manual_seed(epoch_seed)
    use_generator(model, torch.Generator(device).manual_seed(epoch_seed))
    order = torch.randperm(len(train), generator=g)
    pick = torch.randint(train.inputs[0].shape[1], (len(train),), generator=g)
    model.train()
    total, hits = 0.0, 0
    for start, stop in batches:
        idx = order[start:stop]
        batch = [x[idx, pick[idx]].to(device) for x in train.inputs]
        labels = train.labels[idx].to(device)
        logits = forward(model, *batch)
        loss = loss_fn(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        total += float(loss.detach()) * len(idx)
        hits += int((logits.argmax(-1) == labels).sum())
    return total / len(train), 100.0 * hits / len(train)


def fit(model: nn.Module, train: TrainSet, val: EvalSet, recipe: TrainConfig, run_dir: Path,
        seed: int, resume: bool = False, run_id: str = "", desc: str = "train",
        forward: Optional[Callable] = None, about: Optional[dict] = None) -> FitResult:
    """Train ``model`` on ``train`` by ``recipe``; keep the epoch best on ``val``.

    ``best.pt`` holds the best weights with ``about`` (e.g. the run's settings and config),
    so that it says what it is.

    ``forward(model, *inputs) -> logits`` (default ``model(*inputs)``). Afterwards ``model``
    holds the best epoch's weights. ``run_id`` (e.g. a :func:`fingerprint`) must match to
    resume from ``run_dir/last.pt``.
    """
    forward = forward or (lambda m, *x: m(*x))
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    loss_fn = _loss(recipe)
    batches = _batches(len(train), recipe.batch_size, _min_batch(model))
    optimizer = _optimizer(model, recipe)
    schedule = _schedule(optimizer, recipe, len(batches))
    last, best_path = run_dir / "last.pt", run_dir / "best.pt"
    saved = _resume_state(run_dir, run_id) if resume else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["schedule"])
        state = saved["state"]
        log.info("resuming %s after epoch %d of %d", run_dir.name, state["epoch"], recipe.epochs)
    else:
        state = _initial_state(model, val, forward, best_path, run_id, about)
    device = next(model.parameters()).device
    began = time.perf_counter() - state["seconds"]      # training time, over resumed parts too
    bar = tqdm(range(state["epoch"] + 1, recipe.epochs + 1), desc=desc, unit="epoch",
               disable=None, leave=False)
    try:
        for epoch in bar:
            loss, train_acc = _train_epoch(model, train, batches, forward, loss_fn, optimizer,
                                           schedule, _epoch_seed(seed, epoch), device)
            val_acc = evaluate(model, val, forward=forward)
            state["curves"].append({"epoch": epoch, "loss": loss, "train_accuracy": train_acc,
                                    "val_accuracy": val_acc, "lr": schedule.get_last_lr()[0]})
            if val_acc > state["best"]:
                state["best"], state["best_epoch"] = val_acc, epoch
                _save({"model": model.state_dict(), "epoch": epoch, "val_accuracy": val_acc,
                       "run_id": run_id, "about": about}, best_path)
            state["epoch"] = epoch
            state["seconds"] = time.perf_counter() - began
            _save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                   "schedule": schedule.state_dict(), "state": state, "run_id": run_id}, last)
            bar.set_postfix(loss=f"{loss:.3f}", val=f"{val_acc:.1f}")
            if bar.disable and (epoch % max(recipe.epochs // 10, 1) == 0 or epoch == recipe.epochs):
                log.info("%s: epoch %d of %d, loss %.4f, validation %.2f%% (best %.2f%% at epoch %d)",
                         desc, epoch, recipe.epochs, loss, val_acc, state["best"],
                         state["best_epoch"])   # no progress bar (not a terminal): a steady line
            if recipe.patience and epoch - state["best_epoch"] >= recipe.patience:
                log.info("%s: no better validation accuracy for %s; stopping at epoch %d",
                         run_dir.name, count(recipe.patience, "epoch"), epoch)
                break
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted while training {desc} after epoch {state['epoch']} of "
                          f"{recipe.epochs}; it is kept in {last}: run the same command with "
                          f"--resume to continue") from None
    finally:
        bar.close()
        use_generator(model, None)
    write_curves(state["curves"], run_dir / "curves.csv")
    model.load_state_dict(load_checkpoint(best_path)["model"])
    return FitResult(state["best_epoch"], state["best"], state["epoch"], state["seconds"],
                     list(state["curves"]), state.get("initial"))


def write_curves(curves: Sequence[dict], path: Path) -> None:
    """One CSV row per epoch: epoch, loss, train_accuracy, val_accuracy, lr."""
    with atomic_write(path, "w") as f:
        writer = csv.DictWriter(f, fieldnames=["epoch", "loss", "train_accuracy", "val_accuracy", "lr"])
        writer.writeheader()
        writer.writerows(curves)
