"""The stages of `pointcalip fewshot`, each with a typed result, built on the zero-shot stages.

    splits   = load_fewshot_splits(cfg)            # FewShotSplits: TRAIN, TEST, validation rows
    rows     = train_rows(cfg, splits.train)       # TrainRows: the TRAIN clouds the runs read
    features = encode(cfg, splits, rows, ...)      # StoredFeatures (feature store: encoded once)
    zero     = zero_shot_base(features, text, cfg) # ZeroShotBase: view logits, CALIP's search
    prepared = prepare(cfg)                        # all of the above -> Prepared

A method's runner reads what it needs from :class:`Prepared` as :class:`ViewFeatures` (global,
raw and spatial features and labels of some clouds), never as dicts of tensors.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from ..backbones import ClipBackbone, load_clip
from ..core.paths import ensure_writable
from ..datasets.base import H5CloudDataset
from ..extract import SplitFeatures, extract
from ..head import CalipHead
from ..report.metrics import Accuracy, accuracy
from ..report.results import backbone_label, display_name, run_name
from ..search import SearchResult
from ..store import SplitStore
from ..pipeline import (ViewLogits, class_text, compute_view_logits, data_key, load_data, open_store,
                        tune, validation_rows)
from .config import FewShotConfig
from .data import AugmentedSplit, bank_rows, check_shots, shot_rows
from .methods import METHODS
from .recipe import TrainConfig
from .result import FewShotRun, plot_curves, shots_words
from .train import EvalSet, FitResult, TrainSet, fingerprint, fit

#: settings that do not change the numbers of one (method, shots, seed) run
_NOT_IN_RUN_ID = ("shots", "seeds", "methods", "name", "output_dir", "cache_dir", "device",
                  "engine", "batch_size", "download")


# ------------------------------------------------------------------------------- features

@dataclass
class ViewFeatures:
    """The stored CLIP features of n clouds: ``global_`` [n, V, C] (unit rows, float16 as
    stored), ``raw`` [n, V, C] float32 (global x norm: CLIP's un-normalised features),
    ``labels`` [n] long, ``spatial`` [n, V, HW, C] (float16; None when not read)."""

    global_: torch.Tensor
    raw: torch.Tensor
    labels: torch.Tensor
    spatial: Optional[torch.Tensor] = None

    @classmethod
    def read(cls, store: SplitStore, rows: np.ndarray, labels: np.ndarray,
             spatial: bool = False) -> "ViewFeatures":
        """``rows`` of a split's ``store``; ``labels``: the split's labels (all of them)."""
        g, s, norms = store.read(rows, spatial=spatial)
        glob = torch.from_numpy(g)
        return cls(glob, glob.float() * torch.from_numpy(norms)[..., None],
                   torch.as_tensor(np.asarray(labels)[rows], dtype=torch.long),
                   torch.from_numpy(s) if spatial else None)

    def float32(self) -> "ViewFeatures":
        """Every feature in float32 (once, rather than in every batch of every epoch)."""
        return ViewFeatures(self.global_.float(), self.raw.float(), self.labels,
                            None if self.spatial is None else self.spatial.float())

    def grouped(self, shape) -> "ViewFeatures":
        """Rows regrouped as ``shape`` (e.g. (S, copies)): tensors [*shape, ...]."""
        view = lambda x: None if x is None else x.view(*shape, *x.shape[1:])  # noqa: E731
        return ViewFeatures(view(self.global_), view(self.raw), view(self.labels), view(self.spatial))


# --------------------------------------------------------------------------------- splits

@dataclass
class FewShotSplits:
    """The dataset folder, its TRAIN and TEST splits, and ``val``: the validation rows of
    TRAIN (class-stratified, seeded by ``tune``), disjoint from every shot."""

    root: Path
    train: H5CloudDataset
    test: H5CloudDataset
    val: np.ndarray

    def shots(self, k: int, seed: int) -> np.ndarray:
        """``k`` TRAIN rows per class outside validation, drawn with ``seed``; sorted. Every
        class must have ``k`` of them (:func:`check_shots`)."""
        check_shots(self.train.labels, self.val, k, self.train.classnames, self.test.labels)
        return shot_rows(self.train.labels, self.val, k, seed)


def load_fewshot_splits(cfg: FewShotConfig) -> FewShotSplits:
    data = load_data(cfg.data, cfg.download, train=True)
    return FewShotSplits(data.root, data.train, data.test, validation_rows(data.train, cfg.tune))


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


def train_rows(cfg: FewShotConfig, train: H5CloudDataset,
               test_labels: Optional[np.ndarray] = None) -> TrainRows:
    """Which clouds of ``train`` (the TRAIN split) the runs of ``cfg`` read; refused when a
    class (with clouds in TRAIN, or in TEST: ``test_labels``) has too few for the shots."""
    val = validation_rows(train, cfg.tune)
    check_shots(train.labels, val, max(cfg.shots), train.classnames, test_labels)
    shots = {seed: shot_rows(train.labels, val, max(cfg.shots), seed) for seed in cfg.seeds}
    picked = TrainRows(val, shots, np.unique(np.concatenate([val, *shots.values()])))
    if cfg.augment.copies and any(METHODS[m].augmented for m in cfg.methods):
        a = cfg.augment
        picked.augmented = AugmentedSplit(train, a.copies, a.seed, a.scale, a.shift)
        every_shot = np.unique(np.concatenate(list(shots.values())))
        picked.bank_rows = bank_rows(picked.augmented, every_shot)[0]
    return picked


# ------------------------------------------------------------------------ stored features

@dataclass
class StoredFeatures:
    """The stored features every run reads: ``train`` (validation and every shot), ``test``
    and ``bank`` (the augmented copies of every shot, in ``augmented``; None without)."""

    splits: FewShotSplits
    train: SplitFeatures
    test: SplitFeatures
    bank: Optional[SplitFeatures] = None
    augmented: Optional[AugmentedSplit] = None

    def of_train(self, rows: np.ndarray, spatial: bool = False) -> ViewFeatures:
        """Features of TRAIN ``rows`` (stored ones: validation and shots)."""
        return ViewFeatures.read(self.train.store, rows, self.splits.train.labels, spatial)

    def of_test(self, spatial: bool = False) -> ViewFeatures:
        return ViewFeatures.read(self.test.store, self.test.rows, self.splits.test.labels, spatial)

    def copies(self, clouds: np.ndarray, spatial: bool = False) -> Optional[ViewFeatures]:
        """The augmented copies of TRAIN ``clouds`` [S]: features [S, copies, ...], or None."""
        if self.bank is None:
            return None
        rows, shape = bank_rows(self.augmented, clouds)
        return ViewFeatures.read(self.bank.store, rows, self.augmented.labels, spatial).grouped(shape)

    def to_dict(self) -> dict:
        """What results.json says of the stores."""
        return {name: {"store": str(f.store.path), **f.stats.to_dict()}
                for name, f in (("train", self.train), ("test", self.test), ("augmented", self.bank))
                if f is not None}


def encode(cfg: FewShotConfig, splits: FewShotSplits, rows: TrainRows, store, projector,
           backbone: ClipBackbone) -> StoredFeatures:
    """Every cloud of ``rows`` and of TEST in the feature store (encoded when missing)."""
    def features_of(dataset, picked, desc):
        return extract(store.open(dataset, projector, backbone), dataset, picked, projector,
                       backbone, cfg.batch_size, desc=desc)

    train = features_of(splits.train, rows.rows, "encode train")
    test = features_of(splits.test, None, "encode test")
    bank = None if rows.augmented is None else features_of(rows.augmented, rows.bank_rows,
                                                           "encode copies")
    return StoredFeatures(splits, train, test, bank, rows.augmented)


# ---------------------------------------------------------------------- zero-shot base

@dataclass
class ZeroShotBase:
    """Zero-shot CALIP on the stored clouds: ``text`` [K, C], the per-view logits of the
    stored TRAIN ``rows`` (``train``) and of TEST, and ``found``: CALIP's betas and view
    weights searched on validation (CALIP-FS's initialisation and the ``calip`` base)."""

    text: torch.Tensor
    rows: np.ndarray
    train: ViewLogits
    test: ViewLogits
    found: SearchResult

    @property
    def num_classes(self) -> int:
        return self.text.shape[0]

    @property
    def num_views(self) -> int:
        return self.test.l0.shape[1]

    def of(self, rows: np.ndarray) -> ViewLogits:
        """The view logits of stored TRAIN ``rows``."""
        return self.train.take(np.searchsorted(self.rows, rows))

    def logits(self, base: str, logits: ViewLogits) -> torch.Tensor:
        """Zero-shot logits [N, K]: PointCLIP's (``base`` "pointclip": betas 0, equal view
        weights) or CALIP's (``base`` "calip": the search on validation)."""
        head = CalipHead(self.text, num_views=self.num_views)
        if base == "calip":
            head.set_params(self.found.beta2, self.found.beta3, self.found.view_weights)
        return head.aggregate(*logits.as_tuple())

    def weights(self, base: str) -> Optional[List[float]]:
        """The view weights of ``base``'s logits (None: equal)."""
        return self.found.view_weights if base == "calip" else None


def zero_shot_base(cfg: FewShotConfig, features: StoredFeatures, text: torch.Tensor,
                   device: torch.device) -> ZeroShotBase:
    train = compute_view_logits(features.train, text, None, device)
    test = compute_view_logits(features.test, text, None, device)
    at_val = np.searchsorted(features.train.rows, features.splits.val)
    return ZeroShotBase(text, features.train.rows, train, test, tune(train.take(at_val), cfg.tune))


# ------------------------------------------------------------------------------- training

@dataclass
class RunFolders:
    """Where one (method, shots, seed) run keeps its checkpoints, curves and result, and the
    identity that must match to resume it."""

    out: Path
    resume: bool
    settings: dict               # the config without the keys that do not change a run
    identity: tuple              # backbone, stores, zero-shot search: the data a run sees
    about: dict                  # what best.pt says it is (with method, shots, seed)

    def run_dir(self, method: str, k: int, seed: int) -> Path:
        return self.out / "runs" / method / f"{k}shot-seed{seed}"

    def run_id(self, method: str, k: int, seed: int) -> str:
        return fingerprint(self.settings, method, k, seed, *self.identity)

    def fit(self, method: str, k: int, seed: int, model, train: TrainSet, val: EvalSet,
            recipe: TrainConfig, forward=None) -> FitResult:
        """:func:`fit` in this run's folder, resumable, ``best.pt`` saying what it is."""
        about = {"method": method, "shots": k, "seed": seed, **self.about}
        return fit(model, train, val, recipe, self.run_dir(method, k, seed), seed, self.resume,
                   self.run_id(method, k, seed), desc=f"{method} {k}-shot seed {seed}",
                   forward=forward, about=about)


def run_folders(cfg: FewShotConfig, out: Path, resume: bool, features: StoredFeatures,
                zero: ZeroShotBase, backbone: ClipBackbone) -> RunFolders:
    settings = {key: v for key, v in cfg.to_dict().items() if key not in _NOT_IN_RUN_ID}
    settings["data"] = {key: v for key, v in settings["data"].items() if key != "root"}
    stores = [f.store.meta["key"] for f in (features.train, features.test)]
    identity = (backbone.identity, stores, zero.found.to_dict() | {"seconds": None})
    about = {"config": cfg.to_dict(), "classnames": list(features.splits.train.classnames),
             "backbone": backbone.identity}
    return RunFolders(out, resume, settings, identity, about)


@dataclass
class Outcome:
    """What one run of a method measured: accuracies in percent, the hyper-parameters it
    chose or was given, its trainable parameter count, its training (``fit``'s result, if it
    trained) and its run folder (if it has one)."""

    test_accuracy: Union[float, Accuracy]       # an Accuracy gives the mean class accuracy too
    val_accuracy: float
    hyperparameters: dict
    trainable: int = 0
    fitted: Optional[FitResult] = None
    run_dir: Optional[Path] = None

    def row(self, method: str, k: Optional[int], seed: Optional[int]) -> FewShotRun:
        """The results row; with a run folder and training curves, ``curves.png`` in it."""
        test = self.test_accuracy
        run = FewShotRun(method, k, seed, test.top1 if isinstance(test, Accuracy) else test,
                         self.val_accuracy, self.hyperparameters, int(self.trainable))
        if isinstance(test, Accuracy):
            run.test_mean_class_accuracy = test.mean_per_class
            if test.confusion is not None:
                run.test_confusion = test.confusion.tolist()
        fitted = self.fitted
        if fitted is not None:
            run.best_epoch, run.epochs_run, run.seconds = fitted.best_epoch, fitted.epochs_run, fitted.seconds
        if self.run_dir is not None:
            run.run_dir = str(self.run_dir)
            if fitted is not None and fitted.curves:
                plot_curves(fitted.curves, Path(self.run_dir) / "curves.png",
                            f"{display_name(method)}, {shots_words(k)}, seed {seed}", fitted.best_epoch,
                            getattr(fitted, "initial_val_accuracy", None))
        return run


def test_accuracy(model, data: EvalSet, forward=None, batch_size: int = 256) -> Accuracy:
    """Top-1, mean class accuracy and confusion of ``forward(model, *inputs)`` (default
    ``model(*inputs)``) on ``data`` (:func:`~pointcalip.report.metrics.accuracy`)."""
    forward = forward or (lambda m, *x: m(*x))
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    logits = []
    with torch.no_grad():
        for start in range(0, len(data.labels), batch_size):
            batch = [x[start:start + batch_size].to(device) for x in data.inputs]
            logits.append(forward(model, *batch).float().cpu())
    model.train(was_training)
    return accuracy(torch.cat(logits), data.labels.cpu().numpy())


# ------------------------------------------------------------------------------- prepared

def output_dir(cfg: FewShotConfig) -> Path:
    """``outputs/<dataset>-<projector>-<backbone>-fewshot-<hash>`` unless ``output_dir`` is
    set; shots, seeds and methods are not in the hash, so adding some reuses the folder; what
    the data files are is (:func:`~pointcalip.pipeline.data_key`), where they live is not."""
    if cfg.output_dir:
        return Path(cfg.output_dir).expanduser()
    config = {k: v for k, v in cfg.to_dict().items() if k not in ("shots", "seeds", "methods")}
    return Path("outputs") / run_name(config, cfg.data.label, cfg.projector.name,
                                      backbone_label(cfg.backbone), "fewshot",
                                      data=data_key(cfg.data))


@dataclass
class Prepared:
    """What every run of one invocation shares, as the stages produced it."""

    cfg: FewShotConfig
    backbone: ClipBackbone
    splits: FewShotSplits
    features: StoredFeatures
    zero: ZeroShotBase
    folders: RunFolders
    trust_checkpoint: bool = False       # the user's --trust-checkpoint: unpickle in full

    @property
    def device(self) -> torch.device:
        return self.backbone.device

    @functools.cached_property
    def val(self) -> ViewFeatures:
        """The validation clouds' global and raw features (read once: every run evaluates on
        them)."""
        return self.features.of_train(self.splits.val)

    @functools.cached_property
    def val_spatial(self) -> ViewFeatures:
        """The validation clouds' features with spatial tokens, in float32 (read once)."""
        return self.features.of_train(self.splits.val, spatial=True).float32()

    @functools.cached_property
    def test(self) -> ViewFeatures:
        """Every test cloud's global and raw features (no spatial tokens: those are streamed
        from the store)."""
        return self.features.of_test()


def prepare(cfg: FewShotConfig, backbone: Optional[ClipBackbone] = None, resume: bool = False,
            trust_checkpoint: bool = False) -> Prepared:
    """Splits, features of every cloud any run needs (encoded once), zero-shot logits and
    the zero-shot search on validation. Before anything is encoded: every class has enough
    TRAIN clouds for the shots, and each method's ``check`` passes (e.g. a released adapter
    checkpoint fits the projector and backbone)."""
    store = open_store(cfg.cache_dir)
    splits = load_fewshot_splits(cfg)
    out = ensure_writable(output_dir(cfg), "--set output_dir=DIR")   # named by the data files
    projector = cfg.projector.build()
    if backbone is None:
        backbone = load_clip(cfg.backbone, device=cfg.device, engine=cfg.engine)
    rows = train_rows(cfg, splits.train, splits.test.labels)
    for method in cfg.methods:
        check = METHODS[method].meta.get("check")
        if check is not None:
            check(cfg, projector.num_views, backbone.embed_dim, trust_checkpoint)
    text = class_text(backbone, splits.train.classnames, cfg.templates)
    features = encode(cfg, splits, rows, store, projector, backbone)
    zero = zero_shot_base(cfg, features, text, backbone.device)
    return Prepared(cfg, backbone, splits, features, zero,
                    run_folders(cfg, out, resume, features, zero, backbone), trust_checkpoint)


def feature_datasets(cfg: FewShotConfig, splits: Sequence[str]) -> list:
    """(label, dataset, rows) a few-shot run reads among ``splits`` (the task's ``datasets``,
    :mod:`pointcalip.plan`): TEST, and from TRAIN the validation rows, every seed's shots and,
    for methods that train on them, the shots' augmented copies."""
    from ..plan import split_datasets

    def val(train, test, whole_train):
        picked = train_rows(cfg, train, None if test is None else test.labels)   # as `fewshot` refuses
        out = [] if whole_train else [("val", train, picked.rows)]
        if picked.augmented is not None:
            out.append(("val (copies)", picked.augmented, picked.bank_rows))
        return out

    return split_datasets(cfg, splits, True, val)
