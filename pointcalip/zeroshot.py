"""Zero-shot PointCLIP and CALIP on a dataset: the zero-shot classification task.

    result = run_zeroshot(cfg)        # every stage of pointcalip.pipeline -> ZeroShotResult

The stages it composes (``load_splits``, ``class_text``, ``split_store``,
``compute_view_logits``, ``tune``, ``evaluate``, ``data_key``, ...) live in
:mod:`pointcalip.pipeline`, the data path every task shares; they are re-exported here so
``from pointcalip.zeroshot import load_splits, compute_view_logits, tune, evaluate`` keeps
working. Every result records which tuning protocol produced it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .backbones import ClipBackbone, load_clip
from .config import ZeroShotConfig
from .core.paths import ensure_writable
from .datasets.release import DataStatement, splits_statement, statements_text
from .extract import SplitFeatures, extract
from .pipeline import (TEMPERATURE, DataSplits, TuningSet, ViewLogits, ZeroShotSplits,
                       class_text, compute_view_logits, compute_view_logits_for, data_key,
                       evaluate, load_data, load_splits, open_store, split_store,
                       stored_view_logits, tune, tune_grids, validation_rows)
from .prompts import load_templates
from .report.metrics import Accuracy
from .report.results import RunInfo, backbone_label, run_name, run_title
from .search import SearchResult
from .core.words import count

#: the shared stages, re-exported from :mod:`pointcalip.pipeline` (documented imports)
__all__ = ["TEMPERATURE", "DataSplits", "TuningSet", "ViewLogits", "ZeroShotSplits",
           "ZeroShotResult", "class_text", "compute_view_logits", "compute_view_logits_for",
           "data_key", "default_output_dir", "evaluate", "load_data", "load_splits",
           "open_store", "output_dir", "run_zeroshot", "split_store", "stored_view_logits",
           "tune", "tune_grids", "validation_rows"]


@dataclass
class ZeroShotResult:
    """Everything one zero-shot run measured; ``to_dict()`` is results.json."""

    config: ZeroShotConfig
    run: RunInfo
    dataset: str
    classnames: List[str]
    num_test_clouds: int
    backbone_identity: str
    projector_settings: dict
    views: List[int]
    templates: List[str]
    tuning: TuningSet
    found: SearchResult
    pointclip: Accuracy
    calip: Accuracy
    features: Dict[str, SplitFeatures]
    timings: Dict[str, float] = field(default_factory=dict)
    data: List[DataStatement] = field(default_factory=list)   # complete release or not

    def to_dict(self) -> dict:
        cfg = self.config
        return {
            "command": "zeroshot",
            "data": [d.to_dict() for d in self.data],
            "config_name": cfg.name,
            "config": cfg.to_dict(),
            "run": self.run.to_dict(),
            "dataset": self.dataset,
            "split": "test",
            "num_test_clouds": self.num_test_clouds,
            "num_points": cfg.data.num_points,
            "sampling": cfg.data.sampling,
            "backbone": cfg.backbone,
            "backbone_identity": self.backbone_identity,
            "projector": self.projector_settings,
            "projector_config": cfg.projector.to_dict(),
            "views": list(self.views),
            "templates": list(self.templates),
            "tuning": {"protocol": self.tuning.protocol, "split": self.tuning.split,
                       "num_clouds": len(self.tuning.rows), "seed": cfg.tune.seed,
                       "val_fraction": cfg.tune.val_fraction if self.tuning.split == "val" else None,
                       "grid": [cfg.tune.grid, cfg.tune.grid], "beta2_max": cfg.tune.beta2_max,
                       "beta3_max": cfg.tune.beta3_max,
                       "searched_view_weights": cfg.tune.view_weights,
                       "tuning_accuracy": 100.0 * self.found.accuracy},
            "beta2": self.found.beta2,
            "beta3": self.found.beta3,
            "view_weights": list(self.found.view_weights),
            "accuracy": {"pointclip": self.pointclip.top1, "calip": self.calip.top1},
            "mean_class_accuracy": {"pointclip": self.pointclip.mean_per_class,
                                    "calip": self.calip.mean_per_class},
            "accuracy_topk": {"pointclip": self.pointclip.topk(), "calip": self.calip.topk()},
            "per_class": {name: {"n": self.calip.counts[k], "pointclip": self.pointclip.per_class[k],
                                 "calip": self.calip.per_class[k]}
                          for k, name in enumerate(self.classnames)},
            "features": {name: {"store": str(f.store.path), **f.stats.to_dict()}
                         for name, f in self.features.items()},
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }

    def confusions(self) -> dict:
        """TEST's confusion matrix per method: ``{name: (classnames, [K, K], draw)}``."""
        return {f"test_{m}": (self.classnames, getattr(self, m).confusion, True)
                for m in ("pointclip", "calip")}

    def to_markdown(self) -> str:
        cfg, r = self.config, self.to_dict()
        fmt = lambda x: "-" if x is None else f"{x:.1f}"  # noqa: E731
        lines = [
            f"# Zero-shot results: {run_title(self.dataset, cfg.projector.name, cfg.backbone)}",
            "",
            "| dataset | backbone | projector | views | PointCLIP top-1 | CALIP top-1 | "
            "PointCLIP mAcc | CALIP mAcc | beta2 | beta3 |",
            "|---|---|---|---|---|---|---|---|---|---|",
            f"| {self.dataset} ({self.num_test_clouds} test clouds) | {cfg.backbone} | "
            f"{cfg.projector.name} | {len(self.views)} | {self.pointclip.top1:.2f} | "
            f"{self.calip.top1:.2f} | {self.pointclip.mean_per_class:.2f} | "
            f"{self.calip.mean_per_class:.2f} | {self.found.beta2:.4g} | {self.found.beta3:.4g} |",
            "",
            "mAcc: the mean over classes of each class's top-1 (classes with test clouds); "
            "confusion matrices in confusion/ (CSV and figure).",
            "",
            f"- Top-3 / top-5 accuracy: PointCLIP {self.pointclip.top3:.2f} / "
            f"{self.pointclip.top5:.2f}, CALIP {self.calip.top3:.2f} / {self.calip.top5:.2f}",
            *statements_text(self.data),
            f"- Tuning protocol: {self.tuning.protocol}",
            f"- View weights: {', '.join(f'{w:g}' for w in self.found.view_weights)}",
            f"- Prompt templates: {'; '.join(repr(t) for t in self.templates)}",
            "- Features: " + "; ".join(
                f"{name} {count(s['rows'], 'cloud')} ({s['encoded_now']} encoded now, "
                f"{s['from_store']} "
                f"from the store)" for name, s in r["features"].items()),
            "- Timings (s): " + ", ".join(f"{k} {v:.2f}" for k, v in r["timings"].items()),
            f"- Command: `{self.run.command_line}` ({self.run.date}, {self.run.device}, "
            f"{self.run.precision})",
            "",
            "| class | n | PointCLIP | CALIP |",
            "|---|---|---|---|",
        ]
        absent = [name for name, c in r["per_class"].items() if not c["n"]]
        for name, c in r["per_class"].items():
            if c["n"]:                  # only the classes the test split has clouds of
                lines.append(f"| {name} | {c['n']} | {fmt(c['pointclip'])} | {fmt(c['calip'])} |")
        if absent:
            lines += ["", f"{len(absent)} of the {count(len(r['per_class']), 'class')} have no "
                          f"test cloud and are not listed (still candidates for every prediction)."]
        return "\n".join(lines) + "\n"


def default_output_dir(cfg: ZeroShotConfig) -> Path:
    """``outputs/<dataset>-<projector>-<backbone>-tune_<split>-<hash>``: the hash of the other
    settings and of what the data files are (:func:`data_key`), not where they are."""
    return Path("outputs") / run_name(cfg.to_dict(), cfg.data.label, cfg.projector.name,
                                      backbone_label(cfg.backbone), f"tune_{cfg.tune.split}",
                                      data=data_key(cfg.data))


def output_dir(cfg: ZeroShotConfig) -> Path:
    return Path(cfg.output_dir).expanduser() if cfg.output_dir else default_output_dir(cfg)


def run_zeroshot(cfg: ZeroShotConfig, backbone: Optional[ClipBackbone] = None,
                 argv: Optional[Sequence[str]] = None) -> ZeroShotResult:
    """Every stage for ``cfg``; ``argv`` is the command line recorded in the result."""
    t_start = time.perf_counter()
    timings: Dict[str, float] = {}
    store = open_store(cfg.cache_dir)
    templates = load_templates(cfg.templates)
    splits = load_splits(cfg)
    ensure_writable(output_dir(cfg), "--set output_dir=DIR")     # named by the data: once it is here
    projector = cfg.projector.build()
    if backbone is None:
        backbone = load_clip(cfg.backbone, device=cfg.device, engine=cfg.engine)
    device = backbone.device

    t0 = time.perf_counter()
    text = class_text(backbone, splits.classnames, cfg.templates)
    timings["text_s"] = time.perf_counter() - t0

    def features_of(dataset, rows, name):
        return extract(split_store(store, cfg.store, dataset, projector, backbone, text),
                       dataset, rows, projector, backbone, cfg.batch_size,
                       desc=f"encode {name}")

    features = {"test": features_of(splits.test, None, "test")}
    if splits.tuning.split == "val":
        features["tune"] = features_of(splits.tuning.dataset, splits.tuning.rows, "val")

    t0 = time.perf_counter()
    test_logits = compute_view_logits(features["test"], text, cfg.views, device)
    tune_logits = (compute_view_logits(features["tune"], text, cfg.views, device)
                   if "tune" in features else test_logits)
    timings["calip_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    found = tune(tune_logits, cfg.tune)
    timings["search_s"] = time.perf_counter() - t0

    pointclip, calip = evaluate(test_logits, text, found)
    timings["total_s"] = time.perf_counter() - t_start
    views = list(cfg.views) if cfg.views is not None else list(range(projector.num_views))
    return ZeroShotResult(
        config=cfg, run=RunInfo.collect(device, backbone.precision, splits.root, argv),
        dataset=cfg.data.label, classnames=splits.classnames,
        num_test_clouds=len(splits.test), backbone_identity=backbone.identity,
        projector_settings=projector.settings, views=views, templates=templates,
        tuning=splits.tuning, found=found, pointclip=pointclip, calip=calip,
        features=features, timings=timings, data=[splits_statement(cfg.data.label, splits)])

