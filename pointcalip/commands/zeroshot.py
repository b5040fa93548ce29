"""`pointcalip zeroshot`: zero-shot PointCLIP / CALIP accuracy on a dataset."""
from __future__ import annotations

import argparse

from ..tasks import TASKS, Task
from . import COMMANDS
from .options import add_config_options, add_tune_on_option, add_figure_options


TASKS.register("zeroshot", Task(config="pointcalip.config:ZeroShotConfig",
                                run="pointcalip.zeroshot:run_zeroshot",
                                datasets="pointcalip.plan:tuned_datasets",
                                compact_stores=True), order=10)


@COMMANDS.register("zeroshot", order=10)
def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "zeroshot",
        help="zero-shot CALIP on a dataset (stored features, tuned betas, results table)",
        description="Project every cloud, encode the views with CLIP (kept in the feature "
                    "store), tune CALIP's betas on a validation subset of TRAIN (or on test "
                    "with --tune-on test), and report PointCLIP and CALIP top-1 accuracy on TEST.",
    )
    add_config_options(p, "config file(s) or shipped config names, merged left to right "
                          "(e.g. configs/modelnet40.yaml, or modelnet40 model/realistic_vitb16)",
                       "--set data.root=/data/modelnet40_ply_hdf5_2048 --set backbone=ViT-B/16 "
                       "--set tune.view_weights=true")
    add_tune_on_option(p)
    add_figure_options(p)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..config import load_config, ZeroShotConfig

    overrides = list(args.overrides)
    if args.tune_on:
        overrides.append(f"tune.split={args.tune_on}")
    cfg = load_config(ZeroShotConfig, args.config, overrides)   # checked before torch loads
    from ..report.results import write_results
    from ..zeroshot import output_dir, run_zeroshot
    from .needs import check_needs, no_empty_output

    check_needs(cfg)
    with no_empty_output(output_dir(cfg)):
        result = run_zeroshot(cfg, argv=args.argv)
    json_path, md_path = write_results(result, output_dir(cfg))
    print(result.to_markdown())
    print(f"wrote {json_path} and {md_path}")
    return 0
