"""`pointcalip extract`: fill the feature store with what a config's runs need, on one
process or on many (``torchrun --nproc_per_node=N -m pointcalip extract ...``)."""
from __future__ import annotations

import argparse

from . import COMMANDS
from .options import add_config_options

#: the choices of --splits: pointcalip.plan.SPLITS (which imports torch; a test keeps them equal)
SPLITS = ("test", "val", "train")


@COMMANDS.register("extract", order=40)
def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "extract",
        help="encode into the feature store what a zero-shot, few-shot, ablation, benchmark "
             "or segment config needs (one process, or many under torchrun)",
        description="Project and encode every cloud the runs of a config read, and store the "
                    "features; `pointcalip zeroshot/fewshot/ablate` with the same config then "
                    "encode nothing. Under `torchrun --nproc_per_node=N -m pointcalip extract "
                    "...` (also multi-node) every rank encodes its own share of the clouds "
                    "into the same store (NCCL on GPUs, gloo on CPUs).",
    )
    add_config_options(p, "config file(s) or shipped config names of any command, merged left "
                          "to right (e.g. modelnet40, modelnet40_fewshot, ablation_projectors)",
                       "--set data.root=DIR --set backbone=ViT-B/16 --set batch_size=64")
    p.add_argument("--splits", nargs="+", choices=SPLITS, default=["test", "val"],
                   metavar="SPLIT",
                   help="what to encode: test (the TEST split), val (the TRAIN clouds the "
                        "config's runs use: the validation subset; for few-shot configs also "
                        "the shots and their augmented copies), train (all of TRAIN); "
                        "default: test val")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..config import load_any_config

    cfg = load_any_config(args.config, args.overrides)      # checked before torch loads
    from ..core import distributed

    shard, device = distributed.start(cfg.device)
    try:
        rows = _extract(cfg, list(dict.fromkeys(args.splits)), shard, device)
    finally:
        distributed.stop()
    if shard.is_main:
        print(_table(rows))
    return 0


def _extract(cfg, splits, shard, device) -> list:
    """Every job of ``cfg`` (rank ``shard``'s share of each); -> summary rows of rank 0."""
    import logging

    import numpy as np

    from ..core import distributed
    from ..backbones import load_clip
    from ..extract import encode_missing
    from ..plan import feature_jobs
    from ..store import FeatureStore
    from ..tasks import resolve, task_of
    from ..pipeline import class_text, split_store

    if not shard.is_main:
        logging.getLogger("pointcalip").setLevel(logging.WARNING)   # rank 0 speaks for all
    store = FeatureStore(cfg.cache_dir)
    with distributed.main_first(shard):            # downloads happen once, on rank 0
        if shard.is_main:
            store.check()      # read-only is fine; written only if rows are missing
        jobs = feature_jobs(cfg, splits)
    mode = getattr(cfg, "store", "tokens")     # segment configs have no key: tokens
    task = task_of(cfg)
    after_encode = resolve(task.after_encode) if task.after_encode else None
    encode_with = resolve(task.encode_with) if task.encode_with else None
    summary, backbone, loaded, texts = [], None, None, {}
    for job in jobs:                                   # grouped by backbone: each loaded once
        if job.backbone != loaded:
            backbone, texts = None, {}                 # free the previous model first
            with distributed.main_first(shard):
                backbone = load_clip(job.backbone, device=device, engine=cfg.engine)
            loaded = job.backbone
        projector = job.projector.build()
        text = None
        if mode == "logits":      # the store is keyed on the run's class-text features
            names = tuple(job.dataset.classnames)
            if names not in texts:
                texts[names] = class_text(backbone, names, cfg.templates)
            text = texts[names]
        with distributed.main_first(shard):            # rank 0 creates the store folder
            job_store = split_store(store, mode, job.dataset, projector, backbone, text)
        rows = np.arange(len(job.dataset)) if job.rows is None else job.rows
        # what the task keeps from the render that makes the images (segment: locations)
        locations = encode_with(store.root, job.dataset, projector, cfg) if encode_with \
            else None
        stats = encode_missing(job_store, job.dataset, rows, projector, backbone,
                               cfg.batch_size, desc=f"encode {job.label}", shard=shard,
                               locations=locations)
        if after_encode:       # what the task keeps besides features (segment: locations of
            after_encode(store.root, job.dataset, projector, cfg, shard)   # clouds stored before)
        summary.append((job, backbone.name, job_store, stats))
        if hasattr(job.dataset, "close"):    # sets read on use (the robustness arrays) let
            job.dataset.close()               # their clouds go, h5 sets their handles
    return summary


def _table(summary) -> str:
    lines = ["| clouds | projector | backbone | rows | encoded now | already stored | "
             "clouds/s (rank 0) | store |", "|---|---|---|---|---|---|---|---|"]
    for job, backbone, split_store, stats in summary:
        seconds = stats.projection_s + stats.encoding_s
        speed = f"{stats.encoded / seconds:.1f}" if stats.encoded and seconds else "-"
        lines.append(f"| {job.dataset.name} {job.label} | {job.projector.name} | {backbone} | "
                     f"{stats.requested} | {stats.missing} | {stats.cached} | {speed} | "
                     f"{split_store.path} |")
    return "\n".join(lines)
