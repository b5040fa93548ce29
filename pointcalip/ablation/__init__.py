"""`pointcalip ablate`: multi-view ablation studies answered from the feature store.

    from pointcalip.ablation import load_ablation_config, run_ablation, write_ablation
    cfg = load_ablation_config(["ablation_views"], ["backbone=ViT-B/16"])   # AblationConfig
    result = run_ablation(cfg)                 # AblationResult: .studies, .to_dict()
    write_ablation(result, output_dir(cfg))    # per study: table.csv, table.md, PNGs, report.md

    cfg = load_ablation_config(["shapenetpart"], ["studies=[terms]"])      # SegAblationConfig:
    result = run_ablation(cfg)                 # part segmentation, mIoU (segment runs)

Modules: ``config`` (AblationConfig and the study sections), ``context`` (features, text and
per-view logits, each computed once per run and shared by the studies), ``tuning`` (tune on
the tuning set, report on test), ``tables`` and ``output_files`` (files), and one module per study
(``views``, ``terms``, ``prompts``, ``projectors``, ``backbones``, ``weights``); ``segment``
holds the segmentation studies, each point a `pointcalip segment` run.

Names are imported lazily, so loading a config does not import torch.
"""
from ..core.lazy import lazy_attribute, renamed_modules

renamed_modules(__name__, {"report": "output_files"})   # apart from pointcalip/report/

_EXPORTS = {
    "AblationConfig": "config",
    "SegAblationConfig": "config",
    "load_ablation_config": "config",
    "STUDIES": "config",
    "AblationContext": "context",
    "AblationResult": "run",
    "run_ablation": "run",
    "write_ablation": "run",
    "output_dir": "run",
    "default_output_dir": "run",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    return lazy_attribute(__name__, _EXPORTS, name)
