"""`pointcalip fewshot`: every method at every shot count and seed, on stored features.

    prepare(cfg)          splits, features (encoded once into the feature store), text,
                          zero-shot view logits and the zero-shot search on validation
    run_method(ctx, ...)  one (method, shots, seed): train or search on validation, test once
    run_fewshot(cfg)      all of it -> FewShotResult (results.json, results.md, plots)

Protocol: validation is a class-stratified part of TRAIN disjoint from every shot
(fewshot/data.py); model selection, early stopping and every search (betas, view weights,
Tip-Adapter's alpha and beta) use it; TEST is evaluated once per run, with the selected model.
"""
from __future__ import annotations

import functools
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from ..backbone import ClipBackbone, load_clip
from ..data import build_split, resolve_data_root
from ..extract import SplitFeatures, extract
from ..head import CalipHead
from ..report.metrics import accuracy
from ..core.paths import ensure_writable
from ..prompts import class_prompts
from ..report.results import RunInfo, backbone_label, run_name
from ..search import SearchResult
from ..store import FeatureStore
from ..zeroshot import ViewLogits, compute_view_logits, tune
from .adapter import InterViewAdapter
from .calip_fs import CALIPFS
from .config import FewShotConfig
from .data import AugmentedSplit, bank_rows, shot_rows, stack_alternatives, validation_rows
from .report import FewShotResult, FewShotRun, plot_accuracy_vs_shots, plot_curves
from .tip import TipCache, default_grids, descriptors, search_alpha_beta
from .train import EvalSet, TrainSet, evaluate, fingerprint, fit

log = logging.getLogger(__name__)

#: settings that do not change the numbers of one (method, shots, seed) run
_NOT_IN_RUN_ID = ("shots", "seeds", "methods", "name", "output_dir", "cache_dir", "device",
                  "engine", "batch_size", "download")


@dataclass
class Context:
    """What every run of one invocation shares."""

    cfg: FewShotConfig
    backbone: ClipBackbone
    root: Path                          # the dataset folder
    train: object                       # the TRAIN split (dataset)
    test: object
    text: torch.Tensor                  # [K, C]
    val: np.ndarray                     # validation rows of TRAIN
    train_features: SplitFeatures       # stored features of validation and every shot
    test_features: SplitFeatures
    bank: Optional[SplitFeatures]       # augmented copies of every shot, or None
    bank_split: Optional[AugmentedSplit]
    view_logits: ViewLogits             # zero-shot per-view logits of `train_features.rows`
    test_logits: ViewLogits
    found: SearchResult                 # zero-shot CALIP search on validation
    device: torch.device
    out: Path
    resume: bool

    @property
    def num_classes(self) -> int:
        return self.text.shape[0]

    @property
    def num_views(self) -> int:
        return self.test_logits.l0.shape[1]

    def shots(self, k: int, seed: int) -> np.ndarray:
        return shot_rows(self.train.labels, self.val, k, seed)

    def at(self, rows: np.ndarray) -> np.ndarray:
        """Positions of TRAIN ``rows`` among the stored train rows."""
        return np.searchsorted(self.train_features.rows, rows)

    def base_logits(self, base: str, logits: ViewLogits, positions=None) -> torch.Tensor:
        """Zero-shot logits [N, K]: PointCLIP's (betas 0) or CALIP's (searched on val)."""
        head = CalipHead(self.text, num_views=self.num_views)
        if base == "calip":
            head.set_params(self.found.beta2, self.found.beta3, self.found.view_weights)
        views = logits.as_tuple() if positions is None else tuple(x[positions] for x in logits.as_tuple())
        return head.aggregate(*views)

    def base_weights(self, base: str):
        return self.found.view_weights if base == "calip" else None

    @functools.cached_property
    def val_tensors(self) -> Dict[str, torch.Tensor]:
        """:meth:`train_tensors` of the validation clouds (read once: every run evaluates on
        them)."""
        return self.train_tensors(self.val)

    @functools.cached_property
    def val_spatial(self) -> Dict[str, torch.Tensor]:
        """The validation clouds' global and spatial features in float32, and their labels
        (read once, for CALIP-FS; float32 once rather than in every batch of every epoch)."""
        return {name: x.float() if x.is_floating_point() else x
                for name, x in self.train_tensors(self.val, spatial=True).items()}

    @functools.cached_property
    def test_tensors(self) -> Dict[str, torch.Tensor]:
        """global and raw global features [N, V, C] and labels of every test cloud (no
        spatial tokens: those are streamed from the store)."""
        return _tensors(self.test_features.store, self.test_features.rows, self.test.labels, False)

    def train_tensors(self, rows: np.ndarray, spatial: bool = False) -> Dict[str, torch.Tensor]:
        """global [n, V, C] (float16), raw [n, V, C] (float32: global x norm), spatial
        [n, V, HW, C] (float16, if asked), labels [n] of TRAIN rows."""
        return _tensors(self.train_features.store, rows, self.train.labels, spatial)

    def bank_tensors(self, clouds: np.ndarray, spatial: bool = False) -> Optional[Dict[str, torch.Tensor]]:
        """The augmented copies of TRAIN ``clouds``: tensors [S, copies, ...], or None."""
        if self.bank is None:
            return None
        rows, shape = bank_rows(self.bank_split, clouds)
        t = _tensors(self.bank.store, rows, self.bank_split.labels, spatial)
        return {k: v.view(*shape, *v.shape[1:]) for k, v in t.items() if k != "labels"}

    def fit(self, method: str, k: int, seed: int, model, train: TrainSet, val: EvalSet, recipe,
            forward=None):
        """:func:`fit` in this run's folder, resumable, ``best.pt`` saying what it is."""
        about = {"method": method, "shots": k, "seed": seed, "config": self.cfg.to_dict(),
                 "classnames": list(self.train.classnames), "backbone": self.backbone.identity}
        return fit(model, train, val, recipe, self.run_dir(method, k, seed), seed, self.resume,
                   self.run_id(method, k, seed), desc=f"{method} {k}-shot seed {seed}",
                   forward=forward, about=about)

    def run_dir(self, method: str, k: int, seed: int) -> Path:
        return self.out / "runs" / method / f"{k}shot-seed{seed}"

    def run_id(self, method: str, k: int, seed: int) -> str:
        settings = {key: v for key, v in self.cfg.to_dict().items() if key not in _NOT_IN_RUN_ID}
        settings["data"] = {key: v for key, v in settings["data"].items() if key != "root"}
        stores = [f.store.meta["key"] for f in (self.train_features, self.test_features)]
        return fingerprint(settings, method, k, seed, self.backbone.identity, stores,
                           self.found.to_dict() | {"seconds": None})


def _tensors(store, rows, labels, spatial: bool) -> Dict[str, torch.Tensor]:
    g, s, norms = store.read(rows, spatial=spatial)
    out = {"global": torch.from_numpy(g), "raw": torch.from_numpy(g).float() * torch.from_numpy(norms)[..., None],
           "labels": torch.as_tensor(np.asarray(labels)[rows], dtype=torch.long)}
    if spatial:
        out["spatial"] = torch.from_numpy(s)
    return out


# ---------------------------------------------------------------------------------- stages

def output_dir(cfg: FewShotConfig) -> Path:
    """``outputs/<dataset>-<projector>-<backbone>-fewshot-<hash>`` unless ``output_dir`` is
    set; shots, seeds and methods are not in the hash, so adding some reuses the folder."""
    if cfg.output_dir:
        return Path(cfg.output_dir).expanduser()
    config = {k: v for k, v in cfg.to_dict().items() if k not in ("shots", "seeds", "methods")}
    return Path("outputs") / run_name(config, cfg.data.label, cfg.projector.name,
                                      backbone_label(cfg.backbone), "fewshot")


@dataclass
class TrainRows:
    """The clouds of TRAIN the runs of a config use: ``val`` (validation), ``shots`` (per
    seed, the largest shot count; smaller counts are prefixes), ``rows`` (both, ascending)
    and, when some method trains on augmented copies, the ``augmented`` split and the
    ``bank_rows`` of every shot's copies in it."""

    val: np.ndarray
    shots: Dict[int, np.ndarray]
    rows: np.ndarray
    augmented: Optional[AugmentedSplit] = None
    bank_rows: Optional[np.ndarray] = None


def train_rows(cfg: FewShotConfig, train) -> TrainRows:
    """Which clouds of ``train`` (the TRAIN split) the runs of ``cfg`` read."""
    val = validation_rows(train.labels, cfg.tune.val_fraction, cfg.tune.seed)
    shots = {seed: shot_rows(train.labels, val, max(cfg.shots), seed) for seed in cfg.seeds}
    picked = TrainRows(val, shots, np.unique(np.concatenate([val, *shots.values()])))
    if cfg.augment.copies and set(cfg.methods) & {"adapter", "calip_fs"}:
        a = cfg.augment
        picked.augmented = AugmentedSplit(train, a.copies, a.seed, a.scale, a.shift)
        every_shot = np.unique(np.concatenate(list(shots.values())))
        picked.bank_rows = bank_rows(picked.augmented, every_shot)[0]
    return picked


def prepare(cfg: FewShotConfig, backbone: Optional[ClipBackbone] = None, resume: bool = False
            ) -> Context:
    """Splits, features of every cloud any run needs (encoded once), zero-shot logits and
    the zero-shot search on validation."""
    out = ensure_writable(output_dir(cfg), "--set output_dir=DIR")
    store = FeatureStore(cfg.cache_dir)
    ensure_writable(store.root, "--set cache_dir=DIR")
    root = resolve_data_root(cfg.data, cfg.download)
    train, test = build_split(cfg.data, root, "train"), build_split(cfg.data, root, "test")
    if list(train.classnames) != list(test.classnames):
        raise ValueError(f"the train and test splits in {root} have different class lists")
    projector = cfg.projector.build()
    if backbone is None:
        backbone = load_clip(cfg.backbone, device=cfg.device, engine=cfg.engine)
    device = backbone.device
    text = backbone.encode_prompts(class_prompts(train.classnames, cfg.templates))

    picked = train_rows(cfg, train)
    val, rows = picked.val, picked.rows
    train_features = extract(store.open(train, projector, backbone), train, rows, projector,
                             backbone, cfg.batch_size, desc="encode train")
    test_features = extract(store.open(test, projector, backbone), test, None, projector,
                            backbone, cfg.batch_size, desc="encode test")
    bank = None
    augmented = picked.augmented
    if augmented is not None:
        bank = extract(store.open(augmented, projector, backbone), augmented, picked.bank_rows,
                       projector, backbone, cfg.batch_size, desc="encode copies")

    view_logits = compute_view_logits(train_features, text, None, device)
    test_logits = compute_view_logits(test_features, text, None, device)
    at_val = np.searchsorted(rows, val)
    val_logits = ViewLogits(*(x[at_val] for x in view_logits.as_tuple()), view_logits.labels[at_val])
    found = tune(val_logits, cfg.tune)
    return Context(cfg, backbone, root, train, test, text, val, train_features, test_features, bank,
                   augmented, view_logits, test_logits, found, device, out, resume)


def zero_shot_runs(ctx: Context) -> List[FewShotRun]:
    """PointCLIP and CALIP at 0 shots (CALIP's betas and view weights searched on val)."""
    at_val = ctx.at(ctx.val)
    runs = []
    for method in ("pointclip", "calip"):
        test = accuracy(ctx.base_logits(method, ctx.test_logits), ctx.test_logits.labels).top1
        val = accuracy(ctx.base_logits(method, ctx.view_logits, at_val), ctx.train.labels[ctx.val]).top1
        hp = {} if method == "pointclip" else {
            "beta2": ctx.found.beta2, "beta3": ctx.found.beta3, "view_weights": ctx.found.view_weights}
        runs.append(FewShotRun(method, 0, None, test, val, hp))
    return runs


def _tip(ctx: Context, k: int, seed: int, learnable: bool) -> FewShotRun:
    cfg = ctx.cfg.tip_f if learnable else ctx.cfg.tip
    method = "tip_f" if learnable else "tip"
    shots = ctx.shots(k, seed)
    weights = ctx.base_weights(cfg.base)
    train = ctx.train_tensors(shots)
    val = ctx.val_tensors
    keys = descriptors(train["global"], weights)
    val_f, test_f = descriptors(val["global"], weights), descriptors(ctx.test_tensors["global"], weights)
    val_base = ctx.base_logits(cfg.base, ctx.view_logits, ctx.at(ctx.val))
    test_base = ctx.base_logits(cfg.base, ctx.test_logits)
    t = ctx.cfg.tip
    alphas, betas = default_grids(ctx.num_views, t.alpha_max, t.alpha_steps, t.beta_max, t.beta_steps)
    cache = TipCache(keys, train["labels"], ctx.num_classes, learnable=learnable).to(ctx.device)
    alpha, beta, _ = search_alpha_beta(cache, val_f.to(ctx.device), val_base.to(ctx.device),
                                       val["labels"], alphas, betas)
    hp = {"base": cfg.base}
    fitted = None
    if learnable:
        # trained with the (alpha, beta) found for the fixed cache, then searched again; the
        # cache is built from the shots themselves (no augmented copies)
        base_train = ctx.base_logits(cfg.base, ctx.view_logits, ctx.at(shots))
        trainset = TrainSet((keys.unsqueeze(1), base_train.unsqueeze(1)), train["labels"])
        forward = lambda m, f, b: m.logits(f, b, alpha, beta)  # noqa: E731
        fitted = ctx.fit(method, k, seed, cache, trainset, EvalSet((val_f, val_base), val["labels"]),
                         cfg.train, forward)
        hp.update(train_alpha=alpha, train_beta=beta)
        alpha, beta, _ = search_alpha_beta(cache, val_f.to(ctx.device), val_base.to(ctx.device),
                                           val["labels"], alphas, betas)
    with torch.no_grad():
        val_acc = accuracy(cache.logits(val_f.to(ctx.device), val_base.to(ctx.device), alpha, beta),
                           val["labels"]).top1
        test_acc = accuracy(cache.logits(test_f.to(ctx.device), test_base.to(ctx.device), alpha, beta),
                            ctx.test_logits.labels).top1
    hp.update(alpha=alpha, beta=beta)
    return _run(method, k, seed, test_acc, val_acc, hp, cache.keys.numel() if learnable else 0, fitted,
                ctx.run_dir(method, k, seed) if learnable else None)


def _adapter(ctx: Context, k: int, seed: int) -> FewShotRun:
    cfg = ctx.cfg.adapter
    forward = lambda m, raw: m.logits(raw, ctx.text)  # noqa: E731
    val = ctx.val_tensors
    if cfg.checkpoint:
        model = InterViewAdapter.from_pointclip_checkpoint(cfg.checkpoint, ratio=cfg.ratio).to(ctx.device)
        fitted, hp = None, {"checkpoint": cfg.checkpoint}
    else:
        shots = ctx.shots(k, seed)
        train = ctx.train_tensors(shots)
        bank = ctx.bank_tensors(shots)
        inputs = stack_alternatives(train["raw"], None if bank is None else bank["raw"])
        torch.manual_seed(seed)
        model = InterViewAdapter(ctx.num_views, ctx.text.shape[1], cfg.ratio, cfg.fusion_init,
                                 cfg.dropout).to(ctx.device)
        fitted = ctx.fit("adapter", k, seed, model, TrainSet((inputs,), train["labels"]),
                         EvalSet((val["raw"],), val["labels"]), cfg.train, forward)
        hp = {"ratio": cfg.ratio}
    val_acc = evaluate(model, EvalSet((val["raw"],), val["labels"]), forward=forward)
    test = EvalSet((ctx.test_tensors["raw"],), ctx.test_tensors["labels"])
    test_acc = evaluate(model, test, forward=forward)
    return _run("adapter", None if cfg.checkpoint else k, None if cfg.checkpoint else seed,
                test_acc, val_acc, hp, model.num_trainable(), fitted,
                None if cfg.checkpoint else ctx.run_dir("adapter", k, seed))


def _calip_fs(ctx: Context, k: int, seed: int) -> FewShotRun:
    cfg = ctx.cfg.calip_fs
    shots = ctx.shots(k, seed)
    train = ctx.train_tensors(shots, spatial=True)
    bank = ctx.bank_tensors(shots, spatial=True)
    val = ctx.val_spatial
    f = ctx.found
    model = CALIPFS(ctx.text, f.beta2, f.beta3, f.view_weights, rank=cfg.rank, seed=seed).to(ctx.device)
    # float32 once, not per batch (2x the memory of float16)
    inputs = (stack_alternatives(train["global"], None if bank is None else bank["global"]).float(),
              stack_alternatives(train["spatial"], None if bank is None else bank["spatial"]).float())
    fitted = ctx.fit("calip_fs", k, seed, model, TrainSet(inputs, train["labels"]),
                     EvalSet((val["global"], val["spatial"]), val["labels"]), cfg.train)
    val_acc = evaluate(model, EvalSet((val["global"], val["spatial"]), val["labels"]))
    model.eval()
    preds = []
    with torch.no_grad():
        for g, s, _ in ctx.test_features.batches(64, device=ctx.device):
            preds.append(model(g, s).argmax(-1).cpu())
    test_acc = 100.0 * float((torch.cat(preds).numpy() == ctx.test_logits.labels).mean())
    with torch.no_grad():
        hp = {"rank": cfg.rank, "beta2": model.beta2.item(), "beta3": model.beta3.item(),
              "tau": model.tau.item(), "view_weights": [round(w, 4) for w in model.view_weights.tolist()]}
    return _run("calip_fs", k, seed, test_acc, val_acc, hp, model.num_trainable(), fitted,
                ctx.run_dir("calip_fs", k, seed))


def _run(method, k, seed, test_acc, val_acc, hp, trainable, fitted, run_dir) -> FewShotRun:
    run = FewShotRun(method, k, seed, test_acc, val_acc, hp, int(trainable))
    if fitted is not None:
        run.best_epoch, run.epochs_run, run.seconds = fitted.best_epoch, fitted.epochs_run, fitted.seconds
    if run_dir is not None:
        run.run_dir = str(run_dir)
        if fitted is not None and fitted.curves:
            plot_curves(fitted.curves, Path(run_dir) / "curves.png", f"{method}, {k} shots, seed {seed}")
    return run


RUNNERS = {"tip": lambda ctx, k, s: _tip(ctx, k, s, False), "tip_f": lambda ctx, k, s: _tip(ctx, k, s, True),
           "adapter": _adapter, "calip_fs": _calip_fs}


# ------------------------------------------------------------------------------------- run

def protocol(ctx: Context) -> str:
    c = ctx.cfg.tune
    return (f"validation: class-stratified {c.val_fraction:.0%} of TRAIN (seed {c.seed}, "
            f"{len(ctx.val)} clouds), disjoint from every shot; shots drawn per seed from the rest "
            f"of TRAIN. Model selection (best epoch), early stopping, the zero-shot betas and "
            f"view weights (CALIP-FS init, CALIP base) and Tip-Adapter's alpha and beta are all "
            f"chosen on validation; TEST is evaluated once per run, with the selected model")


def run_one(ctx: Context, method: str, k: int, seed: int) -> FewShotRun:
    """One (method, shots, seed), or its saved result when resuming a finished run."""
    folder = ctx.run_dir(method, k, seed)
    saved, run_id = folder / "result.json", ctx.run_id(method, k, seed)
    if ctx.resume and saved.is_file():
        data = json.loads(saved.read_text())
        if data.get("run_id") == run_id:
            log.info("%s %d-shot seed %d: finished before; reusing %s", method, k, seed, saved)
            return FewShotRun(**data["run"])
    log.info("%s %d-shot seed %d", method, k, seed)
    run = RUNNERS[method](ctx, k, seed)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = saved.with_name(f".result.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"run_id": run_id, "run": run.to_dict()}, indent=1))
    os.replace(tmp, saved)
    return run


def run_fewshot(cfg: FewShotConfig, backbone: Optional[ClipBackbone] = None,
                argv: Optional[Sequence[str]] = None, resume: bool = False) -> FewShotResult:
    """Every requested method x shots x seed (and the zero-shot rows) -> FewShotResult."""
    ctx = prepare(cfg, backbone, resume)
    runs: List[FewShotRun] = zero_shot_runs(ctx) if "zeroshot" in cfg.methods else []
    for method in (m for m in cfg.methods if m != "zeroshot"):
        if method == "adapter" and cfg.adapter.checkpoint:
            runs.append(_adapter(ctx, max(cfg.shots), cfg.seeds[0]))
            continue
        for k in sorted(cfg.shots):
            for seed in cfg.seeds:
                runs.append(run_one(ctx, method, k, seed))
    features = {name: {"store": str(f.store.path), **f.stats.to_dict()}
                for name, f in (("train", ctx.train_features), ("test", ctx.test_features),
                                ("augmented", ctx.bank)) if f is not None}
    return FewShotResult(config=cfg.to_dict(), run=RunInfo.collect(ctx.device, ctx.backbone.precision,
                                                                    ctx.root, argv),
                         dataset=cfg.data.label, num_test_clouds=len(ctx.test),
                         num_val_clouds=len(ctx.val), protocol=protocol(ctx), runs=runs,
                         features=features)


def write_fewshot_results(result: FewShotResult, out: Path):
    """results.json, results.md and accuracy_vs_shots.png in ``out``."""
    from ..report.results import write_results

    json_path, md_path = write_results(result, out)
    png = plot_accuracy_vs_shots(result.summary(), Path(out) / "accuracy_vs_shots.png",
                                 f"{result.dataset}, {result.config['backbone']}")
    return json_path, md_path, png
