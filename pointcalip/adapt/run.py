"""`pointcalip adapt`: zero-shot CALIP + the online cache on every set of a benchmark.

    splits = load_splits(cfg)                       # clean TEST + validation rows of clean TRAIN
    found  = tune(logits of the validation rows)    # CALIP's betas, once (as `benchmark`)
    cache  = cfg.cache, or chosen by streaming the validation rows (cache.tune: val)
    for each set (benchmark: original + corruption x severity; else clean TEST):
        inputs = set_inputs(features from the store)      # base logits, keys, centres
        rows   = zero-shot PointCLIP / CALIP, + positive, + negative, + local, PointCLIP + cache
                 over the same S seeded stream orders

Nothing is encoded when the store holds the features. Labels are read only to score.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from ..backbones import ClipBackbone
from ..benchmark.robustness import benchmark_key, benchmark_root, limit_rows, set_up
from ..extract import SplitFeatures
from ..fewshot.tip_cache import descriptors, tip_scale
from ..head import CalipHead
from ..report.metrics import accuracy
from ..report.results import RunInfo, backbone_label, run_name
from ..search import SearchResult
from ..testtime import OnlineCache, StreamInputs, kmeans_centres, run_stream, stream_orders
from ..testtime.stream import StreamSummary, summarize
from ..pipeline import TEMPERATURE, ViewLogits, compute_view_logits, data_key, tune
from .config import AdaptConfig, CacheConfig
from .report import ROWS, AdaptResult, SetResult
from .task import adapt_sets

log = logging.getLogger(__name__)

#: points kept of each running-accuracy curve in results.json
CURVE_POINTS = 50
#: salt of the pre-fill pass's own order (not online)
_PREFILL_SALT = 1000


@dataclass
class SetInputs:
    """One set's stream inputs: per base ("pointclip": betas 0, equal weights; "calip": the
    tuned betas and view weights) a :class:`StreamInputs`, and the base's scale ||w||_2."""

    inputs: Dict[str, StreamInputs]
    scales: Dict[str, float]
    kmeans_s: float                 # seconds spent on k-means for the whole set


def set_inputs(features: SplitFeatures, text: torch.Tensor, found: SearchResult,
               views: Optional[Sequence[int]], m: int, seed: int, device,
               batch_size: int = 64) -> SetInputs:
    """One pass over the stored features of a set: per-view CALIP logits, both bases, the
    descriptors (Tip's keys, :func:`pointcalip.fewshot.tip.descriptors`) and the k-means
    centres of the spatial tokens (:func:`pointcalip.testtime.kmeans_centres`)."""
    v = features.num_views if views is None else len(views)
    head = CalipHead(text, num_views=v, temperature=TEMPERATURE).to(device)
    parts: Dict[str, list] = {k: [] for k in ("l0", "l1", "l2", "pc", "calip", "centres")}
    kmeans_s = 0.0
    for g, s, _ in features.batches(batch_size, views, device):
        for name, x in zip(("l0", "l1", "l2"), head.view_logits(g, s)):
            parts[name].append(x.cpu())
        parts["pc"].append(descriptors(g, None).cpu())
        parts["calip"].append(descriptors(g, found.view_weights).cpu())
        t0 = time.perf_counter()
        parts["centres"].append(kmeans_centres(s, m, seed).cpu())
        kmeans_s += time.perf_counter() - t0
    cat = {k: torch.cat(x) for k, x in parts.items()}
    logits = ViewLogits(cat["l0"], cat["l1"], cat["l2"], features.labels)
    head = CalipHead(text, num_views=v)
    base_pc = head.aggregate(*logits.as_tuple())
    head.set_params(found.beta2, found.beta3, found.view_weights)
    base_calip = head.aggregate(*logits.as_tuple())
    labels = np.asarray(features.labels)
    return SetInputs(
        {"pointclip": StreamInputs(base_pc, cat["pc"], labels, cat["centres"]),
         "calip": StreamInputs(base_calip, cat["calip"], labels, cat["centres"])},
        {"pointclip": tip_scale(None, v), "calip": tip_scale(found.view_weights, v)}, kmeans_s)


def cache_factory(cache: CacheConfig, rule: str, num_classes: int, scale: float
                  ) -> Callable[[], OnlineCache]:
    """A new cache of ``rule`` (positive / negative / full) with ``cache``'s settings."""
    negative = rule in ("negative", "full")

    def make() -> OnlineCache:
        return OnlineCache(num_classes, capacity=cache.capacity, alpha=cache.alpha,
                           beta=cache.beta, neg_capacity=cache.neg_capacity if negative else 0,
                           neg_alpha=cache.neg_alpha if negative else 0.0,
                           neg_beta=cache.neg_beta, neg_band=tuple(cache.neg_band),
                           neg_mask=tuple(cache.neg_mask), scale=scale, local=rule == "full",
                           score_first=cache.score_first)
    return make


def curve_points(n: int) -> np.ndarray:
    """The cloud positions (0-based) a stored running-accuracy curve keeps."""
    return np.unique(np.linspace(0, n - 1, min(n, CURVE_POINTS)).round().astype(np.int64))


def stream_set(data: SetInputs, cache: CacheConfig, orders: np.ndarray, prefill_seed: int,
               num_classes: int) -> Tuple[Dict[str, StreamSummary], Dict[str, list]]:
    """Every row of :data:`ROWS` over ``orders`` [S, n]: row -> summary, row -> curves."""
    n = orders.shape[1]
    at = curve_points(n)
    kmeans_per_cloud = data.kmeans_s / max(n, 1)
    rows, curves = {}, {}
    for label, base, rule in ROWS:
        inputs = data.inputs[base]
        if rule is None:                          # order-free: the same in every order
            acc = accuracy(inputs.base, inputs.labels, num_classes)
            rows[label] = StreamSummary([acc.top1] * len(orders), 0.0,
                                        mean_class=[acc.mean_per_class] * len(orders),
                                        confusion=acc.confusion * len(orders))
            continue
        make = cache_factory(cache, rule, num_classes, data.scales[base])
        runs = []
        for s, order in enumerate(orders):
            pre = (stream_orders(n, 1, prefill_seed + _PREFILL_SALT + s)[0]
                   if cache.prefill else None)
            runs.append(run_stream(inputs, order, make, prefill_order=pre))
        summary = summarize(runs)
        scored = [accuracy(r.logits.float().cpu(), np.asarray(inputs.labels)[r.order], num_classes)
                  for r in runs]
        summary.mean_class = [a.mean_per_class for a in scored]
        summary.confusion = np.sum([a.confusion for a in scored], axis=0)
        if rule == "full":
            summary.seconds_per_cloud += kmeans_per_cloud
        rows[label] = summary
        curves[label] = [[round(float(x), 3) for x in r.running[at]] for r in runs]
    return rows, curves


def tune_cache(data: SetInputs, cache: CacheConfig, orders: np.ndarray, num_classes: int
               ) -> Tuple[CacheConfig, list]:
    """``cache`` with the (alpha, beta) of its grids whose full method has the best mean
    top-1 streaming the clean validation rows (first in grid order on ties); -> (settings,
    [[alpha, beta, mean], ...])."""
    table, best = [], None
    for alpha in cache.alpha_grid:
        for beta in cache.beta_grid:
            trial = CacheConfig.from_mapping({**cache.to_dict(), "alpha": alpha, "beta": beta})
            make = cache_factory(trial, "full", num_classes, data.scales["calip"])
            mean = summarize([run_stream(data.inputs["calip"], o, make) for o in orders]).mean
            table.append([alpha, beta, round(mean, 4)])
            if best is None or mean > best[0]:
                best = (mean, trial)
    return best[1], table


def output_dir(cfg: AdaptConfig) -> Path:
    """``output_dir``, else ``outputs/adapt-<set>-<projector>-<backbone>-<hash>``, the hash
    covering the settings and what the clean and benchmark files are (not where)."""
    if cfg.output_dir:
        return Path(cfg.output_dir).expanduser()
    settings = cfg.to_dict()
    data = data_key(cfg.data)
    if settings.get("benchmark"):
        settings["benchmark"] = {k: v for k, v in settings["benchmark"].items() if k != "root"}
        data = f"{data}|{benchmark_key(cfg)}"
    what = cfg.benchmark.name if cfg.benchmark is not None else cfg.data.label
    return Path("outputs") / run_name(settings, f"adapt-{what}", cfg.projector.name,
                                      backbone_label(cfg.backbone), data=data)


def run_adapt(cfg: AdaptConfig, backbone: Optional[ClipBackbone] = None,
              argv: Optional[Sequence[str]] = None):
    """Every stage for ``cfg`` -> :class:`pointcalip.adapt.report.AdaptResult`."""
    t_start = time.perf_counter()
    setup = set_up(cfg, output_dir(cfg), backbone)
    templates, splits, projector, text = setup.templates, setup.splits, setup.projector, setup.text
    backbone, tune_rows, features_of = setup.backbone, setup.tune_rows, setup.features
    root = benchmark_root(cfg) if cfg.benchmark is not None else splits.root
    device = backbone.device
    seed, k = cfg.tune.seed, len(splits.classnames)

    def inputs_of(features) -> SetInputs:
        return set_inputs(features, text, found, cfg.views, cfg.cache.centres, cfg.order_seed,
                          device)

    val = features_of(splits.tuning.dataset, tune_rows, "clean val")
    found = tune(compute_view_logits(val, text, cfg.views, device), cfg.tune)
    cache, grid = cfg.cache, None
    if cfg.cache.tune == "val":
        val_orders = stream_orders(len(tune_rows), cfg.orders, cfg.order_seed)
        cache, grid = tune_cache(inputs_of(val), cfg.cache, val_orders, k)
        log.info("cache tuned on clean validation: alpha %g, beta %g", cache.alpha, cache.beta)

    if cfg.benchmark is not None:       # every stored point; one set read at a time
        sets = [(s.name, lambda s=s: s.open(splits.classnames), s.corruption, s.severity)
                for s in adapt_sets(cfg)]
    else:
        sets = [(f"{cfg.data.label} test", lambda: splits.test, None, None)]
    results = []
    for name, open_set, corruption, severity in sets:
        data = open_set()
        rows = limit_rows(data.labels, cfg.limit, seed)
        inputs = inputs_of(features_of(data, rows, name))
        orders = stream_orders(len(rows), cfg.orders, cfg.order_seed)
        summaries, curves = stream_set(inputs, cache, orders, cfg.order_seed, k)
        points = int(getattr(data, "served_points", None)        # what each cloud was fed
                     or data.points(rows[:1]).shape[1])
        results.append(SetResult(name, len(rows), corruption, severity, summaries, curves,
                                 (curve_points(len(rows)) + 1).tolist(), points))
        log.info("%s: CALIP %.2f, + cache %.2f", name, summaries["CALIP"].mean,
                 summaries["+ local (full)"].mean)
    views = list(cfg.views) if cfg.views is not None else list(range(projector.num_views))
    return AdaptResult(
        config=cfg, run=RunInfo.collect(device, backbone.precision, root, argv),
        backbone_identity=backbone.identity, projector_settings=projector.settings,
        views=views, templates=templates, found=found, cache=cache, cache_grid=grid,
        tuning_clouds=len(tune_rows), sets=results,
        total_s=time.perf_counter() - t_start, classnames=list(splits.classnames))
