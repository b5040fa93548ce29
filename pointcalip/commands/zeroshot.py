"""`pointcalip zeroshot`: zero-shot PointCLIP / CALIP accuracy on a dataset."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "zeroshot",
        help="zero-shot CALIP on a dataset (cached features, tuned betas, results table)",
        description="Project every cloud, encode the views with CLIP (cached), tune CALIP's "
                    "betas on a validation subset of TRAIN (or on test with --tune-on test), "
                    "and report PointCLIP and CALIP top-1 accuracy on TEST.",
    )
    p.add_argument("--config", nargs="+", required=True, metavar="YAML",
                   help="config file(s), merged left to right (e.g. configs/modelnet40.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set data.root=/data/modelnet40_ply_hdf5_2048 "
                        "--set backbone=ViT-B/16 --set tune.view_weights=true")
    p.add_argument("--tune-on", choices=["val", "test"], default=None,
                   help="tune betas on a validation subset of TRAIN (default) or on TEST "
                        "(the published protocol); same as --set tune.split=...")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..config import load_zeroshot_config
    from ..zeroshot import results_markdown, run_zeroshot, write_results

    overrides = list(args.overrides)
    if args.tune_on:
        overrides.append(f"tune.split={args.tune_on}")
    cfg = load_zeroshot_config(args.config, overrides)
    results = run_zeroshot(cfg)
    out = Path(cfg.output_dir) if cfg.output_dir else Path("outputs") / cfg.name
    json_path, md_path = write_results(results, out)
    print(results_markdown(results))
    print(f"wrote {json_path} and {md_path}")
    return 0
