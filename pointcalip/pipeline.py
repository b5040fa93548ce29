"""The data path every task shares, as stages with typed results.

    data     = load_data(cfg.data, cfg.download, train=True)     # TEST (+ TRAIN, same classes)
    val      = validation_rows(data.train, cfg.tune)              # the validation rows of TRAIN
    splits   = load_splits(cfg)                                  # test + tuning set
    text     = class_text(backbone, splits.classnames, templates) # [K, C]
    store    = split_store(open_store(cfg.cache_dir), cfg.store, dataset, projector,
                           backbone, text)                        # tokens, tokens8 or logits
    features = extract(store, dataset, rows, projector, backbone) # from the feature store
    logits   = compute_view_logits(features, text, views, device) # per-view l0, l1, l2
    found    = tune(logits_of_tuning_set, cfg.tune)              # SearchResult
    acc      = evaluate(test_logits, found)                      # PointCLIP and CALIP accuracy
    key      = data_key(cfg.data)                                # what the data files are

Zero-shot classification (:mod:`pointcalip.zeroshot`), few-shot, the benchmarks, the
ablations, segmentation and ``extract``'s plan compose these stages; none of them lives in a
task's module. The tuning protocol is honest by default: betas (and optionally view weights)
are chosen on a seeded, class-stratified validation subset of the TRAIN split, and accuracy is
reported on TEST. ``tune.split: test`` reproduces the published protocol (tuning on test).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from tqdm import tqdm

from .backbones import ClipBackbone
from .config import DataConfig, TuneConfig, ZeroShotConfig
from .core.identity import check_disjoint, data_identity
from .data import build_split, resolve_data_root
from .datasets import build_dataset, validation_indices
from .datasets.base import H5CloudDataset
from .extract import SplitFeatures
from .head import CalipHead
from .prompts import class_prompts
from .report.metrics import Accuracy, accuracy
from .search import WEIGHT_CHOICES, SearchResult, beta_grid, search
from .store import FeatureStore, SplitStore, StoreModeError, text_identity
from .core.words import count

log = logging.getLogger(__name__)

#: CALIP's attention temperature in zero-shot runs (``A = 2 F_s F_t^T``); part of the key of
#: a ``logits`` store
TEMPERATURE = 0.5


# ------------------------------------------------------------------------------- stage types

@dataclass
class DataSplits:
    """A dataset folder's TEST split and, when asked for, its TRAIN split (the same classes)."""

    root: Path
    test: H5CloudDataset
    train: Optional[H5CloudDataset] = None


@dataclass
class TuningSet:
    """The clouds hyper-parameters are tuned on: ``rows`` of ``dataset``."""

    dataset: H5CloudDataset
    rows: np.ndarray
    split: str          # "val" (a subset of TRAIN) or "test"
    protocol: str       # one sentence for results


@dataclass
class ZeroShotSplits:
    root: Path
    test: H5CloudDataset
    tuning: TuningSet

    @property
    def classnames(self) -> List[str]:
        return list(self.test.classnames)


@dataclass
class ViewLogits:
    """Per-view CALIP logits of a set of clouds: l0, l1, l2 [N, V, K] float32, labels [N]."""

    l0: torch.Tensor
    l1: torch.Tensor
    l2: torch.Tensor
    labels: np.ndarray

    def as_tuple(self) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.l0, self.l1, self.l2

    def take(self, positions: np.ndarray) -> "ViewLogits":
        """The logits of the clouds at ``positions`` [n] among these."""
        return ViewLogits(*(x[positions] for x in self.as_tuple()), self.labels[positions])


# ------------------------------------------------------------------------------------ stages

def load_data(data: DataConfig, download: bool, train: bool = True) -> DataSplits:
    """The dataset folder (downloaded if allowed and missing), its TEST split and, if
    ``train``, its TRAIN split, whose class list must be the test split's. Every command
    loads its splits here (zero-shot, few-shot, ablations through :func:`load_splits`, and
    ``extract``'s plan)."""
    root = resolve_data_root(data, download)
    test = build_split(data, root, "test")
    if not train:
        return DataSplits(root, test)
    train_split = build_split(data, root, "train")
    if list(train_split.classnames) != list(test.classnames):
        raise ValueError(f"the train and test splits in {root} have different class lists")
    check_disjoint(train_split.settings["files"], test.settings["files"], "TRAIN", "TEST", root)
    return DataSplits(root, test, train_split)


def validation_rows(train: H5CloudDataset, tune: TuneConfig) -> np.ndarray:
    """The validation rows of ``train`` (the TRAIN split): a class-stratified ``tune.val_fraction``
    drawn with ``tune.seed``, sorted. The zero-shot tuning set and few-shot validation."""
    return validation_indices(train.labels, tune.val_fraction, tune.seed)


def load_splits(cfg: ZeroShotConfig) -> ZeroShotSplits:
    """The test split and the tuning set (a validation subset of TRAIN, or TEST itself)."""
    data = load_data(cfg.data, cfg.download, train=cfg.tune.split != "test")
    root, test = data.root, data.test
    if cfg.tune.split == "test":
        log.warning("tuning on the test split (tune.split=test): accuracies are optimistic")
        tuning = TuningSet(test, np.arange(len(test), dtype=np.int64), "test",
                           "test: tuned on the TEST split itself (published protocol; optimistic)")
        return ZeroShotSplits(root, test, tuning)
    rows = validation_rows(data.train, cfg.tune)
    protocol = (f"val: class-stratified {cfg.tune.val_fraction:.0%} of TRAIN "
                f"(seed {cfg.tune.seed}, {count(len(rows), 'cloud')}); reported on TEST")
    return ZeroShotSplits(root, test, TuningSet(data.train, rows, "val", protocol))


def open_store(cache_dir: Optional[str]) -> FeatureStore:
    """The feature store in ``cache_dir`` (None: the default folder), its folder made."""
    store = FeatureStore(cache_dir)
    store.check()          # read-only is fine; written only if rows are missing
    return store


def split_store(store: FeatureStore, mode: str, dataset, projector, backbone,
                text: Optional[torch.Tensor]) -> SplitStore:
    """The store of ``dataset`` under ``projector`` and ``backbone`` keeping ``mode`` (the
    config's ``store``): a ``logits`` store is keyed on the class-text features ``text``
    [K, C] too (unused by token stores), so another prompt set or class list gets another
    store. The zero-shot commands (``zeroshot``, ``benchmark``, ``extract``) open their
    stores here."""
    host_text = text.detach().float().cpu().numpy() if mode == "logits" else None
    return store.open(dataset, projector, backbone, mode, host_text, TEMPERATURE)


def class_text(backbone: ClipBackbone, classnames: Sequence[str],
               templates: Union[str, List[str]]) -> torch.Tensor:
    """The classes' text features [K, C] (unit rows): every template filled with each class
    name, encoded and averaged by ``backbone``."""
    return backbone.encode_prompts(class_prompts(classnames, templates))


def compute_view_logits(features: SplitFeatures, text: torch.Tensor,
                        views: Optional[Sequence[int]] = None,
                        device: torch.device | str = "cpu", batch_size: int = 64) -> ViewLogits:
    """Per-view CALIP logits of stored features: -> l0, l1, l2 [N, V', K] (on the CPU),
    computed by a :class:`CalipHead` on ``device``; ``views`` selects stored views."""
    return compute_view_logits_for(features, [text], views, device, batch_size)[0]


def compute_view_logits_for(features: SplitFeatures, texts: Sequence[torch.Tensor],
                            views: Optional[Sequence[int]] = None,
                            device: torch.device | str = "cpu", batch_size: int = 64,
                            desc: str = "CALIP") -> List[ViewLogits]:
    """:func:`compute_view_logits` for several text sets [K, C] in one pass over the store.
    A ``logits`` store is read, not computed: each text set must be the one it was keyed on
    (else a :class:`~pointcalip.store.StoreModeError` says tokens are needed)."""
    if features.store.mode == "logits":
        return [stored_view_logits(features, t, views, batch_size) for t in texts]
    num_views = features.num_views if views is None else len(views)
    heads = [CalipHead(t, num_views=num_views, temperature=TEMPERATURE).to(device)
             for t in texts]
    parts: List[List[Tuple[torch.Tensor, ...]]] = [[] for _ in heads]
    with tqdm(total=len(features), desc=desc, unit="cloud", disable=None, leave=False) as bar:
        for g, s, _ in features.batches(batch_size, views, device):
            for head, out in zip(heads, parts):
                out.append(tuple(x.cpu() for x in head.view_logits(g, s)))
            bar.update(len(g))
    return [ViewLogits(*(torch.cat([p[i] for p in out]) for i in range(3)), features.labels)
            for out in parts]


def stored_view_logits(features: SplitFeatures, text: torch.Tensor,
                       views: Optional[Sequence[int]] = None, batch_size: int = 64) -> ViewLogits:
    """The per-view CALIP logits a ``logits`` store keeps for ``features``' rows: l0, l1, l2
    [N, V', K] on the CPU, the same as :func:`compute_view_logits` on tokens. ``text`` [K, C]
    must be the class-text matrix the store was keyed on."""
    store = features.store
    if text_identity(text.detach().float().cpu().numpy(), TEMPERATURE) != store.meta["text"]:
        raise StoreModeError(
            f"feature store {store.path} keeps CALIP logits for other class texts (store: "
            f"logits); these prompts or classes need the tokens: run with --set store=tokens "
            f"(or store=tokens8)")
    parts = [store.read_logits(features.rows[start:start + batch_size], views)
             for start in range(0, len(features), batch_size)]
    l0, l1, l2 = (torch.from_numpy(np.concatenate([p[i] for p in parts])) for i in range(3))
    return ViewLogits(l0, l1, l2, features.labels)


def tune_grids(cfg: TuneConfig) -> Tuple[torch.Tensor, torch.Tensor]:
    """CALIP's beta2 and beta3 grids as the config sets them: [G], [G] float64."""
    return beta_grid(cfg.beta2_max, cfg.grid), beta_grid(cfg.beta3_max, cfg.grid)


def tune(logits: ViewLogits, cfg: TuneConfig, beta2_values=None, beta3_values=None,
         search_weights: Optional[bool] = None,
         choices: Sequence[float] = WEIGHT_CHOICES) -> SearchResult:
    """CALIP's beta2 x beta3 grid (and, if asked, the view weights) on the tuning logits;
    grids and ``search_weights`` default to the config's."""
    b2, b3 = tune_grids(cfg)
    b2 = b2 if beta2_values is None else torch.as_tensor(beta2_values, dtype=torch.float64)
    b3 = b3 if beta3_values is None else torch.as_tensor(beta3_values, dtype=torch.float64)
    weights = cfg.view_weights if search_weights is None else search_weights
    return search(*logits.as_tuple(), torch.as_tensor(logits.labels), search_weights=weights,
                  beta2_values=b2, beta3_values=b3, choices=choices)


def evaluate(logits: ViewLogits, text: torch.Tensor, found: SearchResult
             ) -> Tuple[Accuracy, Accuracy]:
    """-> (PointCLIP accuracy: betas 0 and equal weights; CALIP accuracy: ``found``)."""
    head = CalipHead(text, num_views=logits.l0.shape[1])
    pointclip = accuracy(head.aggregate(*logits.as_tuple()), logits.labels, head.num_classes)
    head.set_params(found.beta2, found.beta3, found.view_weights)
    calip = accuracy(head.aggregate(*logits.as_tuple()), logits.labels, head.num_classes)
    return pointclip, calip


def data_key(data: DataConfig) -> Optional[str]:
    """What the data of ``data`` is, wherever it lives: the data identity
    (:func:`~pointcalip.core.identity.data_identity`: every byte of every file each split
    reads, ``dataset.settings["files"]``). None when no split can be read yet (not
    downloaded, missing: the run itself says what is wrong)."""
    try:
        root = resolve_data_root(data, download=False)
    except (OSError, ValueError, KeyError):
        return None
    if not root.exists():
        return None
    kwargs = {**data.dataset_kwargs(), "in_memory": False}
    files = {}
    for split in ("train", "test"):
        try:
            dataset = build_dataset(data.name, root, split, **kwargs)
        except Exception:  # noqa: BLE001 - an unreadable split is the run's error to report
            continue
        files[split] = dataset.settings["files"]
        dataset.close()
    return data_identity(files)
