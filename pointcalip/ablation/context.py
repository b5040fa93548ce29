"""What the studies of one `pointcalip ablate` run share, each made once and kept.

    ctx = AblationContext(cfg)
    ctx.features(projector_cfg, backbone)     # {"test", "tune"}: SplitFeatures from the store
    ctx.text(prompts, backbone)               # [K, C] class-text features
    ctx.logits(projector_cfg, backbone, prompts)   # PairLogits: per-view l0, l1, l2 [N, V, K]

Features come from the whole-split feature store (:mod:`pointcalip.store`): rows the store
lacks are encoded once, for every view of the projector; a view subset is then an index into
the per-view logits (:meth:`PairLogits.select`), never a new encoding or a new CALIP pass.
The tuning set is a validation subset of TRAIN by default (``tune.split: val``) or the test
split itself (``tune.split: test``), exactly as ``pointcalip zeroshot`` chooses it.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch

from ..backbones import ClipBackbone, load_clip
from ..config import ProjectorConfig
from ..extract import SplitFeatures, extract
from ..prompts import class_prompts
from ..report.results import backbone_label
from ..store import FeatureStore
from ..pipeline import ViewLogits, ZeroShotSplits, compute_view_logits_for, load_splits
from .config import AblationConfig
from ..core.words import count

log = logging.getLogger(__name__)

Prompts = Union[str, List[str]]


@dataclass
class PairLogits:
    """Per-view logits of the test split and of the tuning set (the same object when tuning
    on test): ``l0, l1, l2`` [N, V, K] each."""

    test: ViewLogits
    tune: ViewLogits

    @property
    def num_views(self) -> int:
        return self.test.l0.shape[1]

    @property
    def tuned_on_test(self) -> bool:
        return self.tune is self.test

    def select(self, views: Sequence[int]) -> "PairLogits":
        """The same logits for a subset of the views (an index, no computation)."""
        idx = list(views)

        def sub(v: ViewLogits) -> ViewLogits:
            return ViewLogits(v.l0[:, idx], v.l1[:, idx], v.l2[:, idx], v.labels)

        test = sub(self.test)
        return PairLogits(test, test if self.tuned_on_test else sub(self.tune))


def projector_key(pcfg: ProjectorConfig) -> str:
    """Identity of a projector's pixels (its settings), for caching."""
    return json.dumps(pcfg.build().settings, sort_keys=True, default=str)


def projector_label(pcfg: ProjectorConfig) -> str:
    """A projector as a short phrase: ``pointclip (6 views)``, ``realistic views=[0, 4]``."""
    options = ", ".join(f"{k}={v}" for k, v in pcfg.options.items() if k != "views")
    views = pcfg.options.get("views")
    label = f"{pcfg.name} ({count(pcfg.build().num_views, 'view')}"
    if views is not None and not isinstance(views, str):
        label += f": {views}"
    elif isinstance(views, str):
        label += f", {views}"
    return label + (f"; {options})" if options else ")")


class AblationContext:
    """The splits, backbones, stored features, text features and per-view logits of one run
    (see the module doc). ``backbone``: an already loaded main backbone (else loaded on first
    use from ``cfg.backbone``); ``splits``: the test split and tuning set (default:
    :func:`pointcalip.pipeline.load_splits` of ``cfg``)."""

    def __init__(self, cfg: AblationConfig, backbone: Optional[ClipBackbone] = None,
                 splits: Optional[ZeroShotSplits] = None):
        self.cfg = cfg
        self.store = FeatureStore(cfg.cache_dir)
        self.splits = splits if splits is not None else load_splits(cfg)
        self._backbones: Dict[str, ClipBackbone] = {}
        if backbone is not None:
            self._backbones[cfg.backbone] = backbone
        self._features: Dict[Tuple[str, str], Dict[str, SplitFeatures]] = {}
        self._text: Dict[Tuple[str, str], torch.Tensor] = {}
        self._logits: Dict[Tuple[str, str, str], PairLogits] = {}
        self.feature_log: List[dict] = []     # what each extraction did, for results.json

    # --------------------------------------------------------------------------- basics
    @property
    def classnames(self) -> List[str]:
        return self.splits.classnames

    @property
    def protocol(self) -> str:
        """The tuning protocol in words (as `pointcalip zeroshot` states it)."""
        return self.splits.tuning.protocol

    @property
    def tune_split(self) -> str:
        return self.splits.tuning.split

    @property
    def tuned_on(self) -> str:
        """The protocol in two words, for figure titles."""
        return "tuned on val" if self.tune_split == "val" else "tuned on TEST (optimistic)"

    def caption(self, projector: bool = True, backbone: bool = True) -> str:
        """``modelnet40, pointclip, RN50; tuned on val``: what a figure shows, briefly."""
        parts = [self.cfg.data.label]
        if projector:
            parts.append(self.cfg.projector.name)
        if backbone:
            parts.append(backbone_label(self.cfg.backbone))
        return f"{', '.join(parts)}; {self.tuned_on}"

    def backbone(self, spec: Optional[str] = None) -> ClipBackbone:
        spec = spec or self.cfg.backbone
        if spec not in self._backbones:
            self._backbones[spec] = load_clip(spec, device=self.cfg.device,
                                              engine=self.cfg.engine)
        return self._backbones[spec]

    def loaded_backbone(self, spec: str) -> Optional[ClipBackbone]:
        """The backbone ``spec`` if this run has loaded it already, else None."""
        return self._backbones.get(spec)

    # ------------------------------------------------------------------------- features
    def features(self, projector: Optional[ProjectorConfig] = None,
                 backbone: Optional[str] = None) -> Dict[str, SplitFeatures]:
        """{"test": every test cloud, "tune": the tuning rows of TRAIN (absent when tuning
        on test)}, every view of ``projector``; rows the store lacks are encoded now."""
        pcfg = projector or self.cfg.projector
        spec = backbone or self.cfg.backbone
        key = (projector_key(pcfg), spec)
        if key not in self._features:
            bb, proj = self.backbone(spec), pcfg.build()
            wanted = [("test", self.splits.test, None)]
            if self.tune_split == "val":
                wanted.append(("tune", self.splits.tuning.dataset, self.splits.tuning.rows))
            feats = {}
            for name, dataset, rows in wanted:
                split_store = self.store.open(dataset, proj, bb)
                feats[name] = extract(split_store, dataset, rows, proj, bb, self.cfg.batch_size,
                                      desc=f"encode {name} ({pcfg.name}, {bb.name})")
                self.feature_log.append({"split": name, "projector": pcfg.to_dict(),
                                         "backbone": spec, "store": str(split_store.path),
                                         **feats[name].stats.to_dict()})
            self._features[key] = feats
        return self._features[key]

    # ----------------------------------------------------------------------------- text
    def text(self, prompts: Optional[Prompts] = None, backbone: Optional[str] = None
             ) -> torch.Tensor:
        """[K, C] class-text features of ``prompts`` (default: the config's templates)."""
        prompts = self.cfg.templates if prompts is None else prompts
        spec = backbone or self.cfg.backbone
        key = (spec, json.dumps(prompts))
        if key not in self._text:
            sentences = class_prompts(self.classnames, prompts)
            self._text[key] = self.backbone(spec).encode_prompts(sentences)
        return self._text[key]

    # --------------------------------------------------------------------------- logits
    def logits(self, projector: Optional[ProjectorConfig] = None, backbone: Optional[str] = None,
               prompts: Optional[Prompts] = None) -> PairLogits:
        """Per-view logits of every view of ``projector`` for the test split and the tuning
        set, computed once per (projector, backbone, prompts)."""
        return self.logits_many([prompts], projector, backbone)[0]

    def logits_many(self, prompt_sets: Sequence[Optional[Prompts]],
                    projector: Optional[ProjectorConfig] = None,
                    backbone: Optional[str] = None) -> List[PairLogits]:
        """:meth:`logits` for several prompt sets, reading the stored features once."""
        pcfg = projector or self.cfg.projector
        spec = backbone or self.cfg.backbone
        sets = [self.cfg.templates if p is None else p for p in prompt_sets]
        keys = [(projector_key(pcfg), spec, json.dumps(p)) for p in sets]
        todo = [i for i, k in enumerate(keys) if k not in self._logits]
        todo = [i for n, i in enumerate(todo) if keys[i] not in [keys[j] for j in todo[:n]]]
        if todo:
            feats = self.features(pcfg, spec)
            texts = [self.text(sets[i], spec) for i in todo]
            device = self.backbone(spec).device
            per_split = {name: compute_view_logits_for(f, texts, None, device, desc=f"CALIP {name}")
                         for name, f in feats.items()}
            for n, i in enumerate(todo):
                test = per_split["test"][n]
                tune = per_split["tune"][n] if "tune" in per_split else test
                self._logits[keys[i]] = PairLogits(test, tune)
        return [self._logits[k] for k in keys]
