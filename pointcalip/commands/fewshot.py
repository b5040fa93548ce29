"""`pointcalip fewshot`: CALIP-FS, PointCLIP's adapter and Tip-Adapter caches at K shots."""
from __future__ import annotations

import argparse

from ..fewshot.methods import method_names
from ..tasks import TASKS, Task
from . import COMMANDS
from .options import add_config_options, non_negative_int, positive_int, add_figure_options

#: `--method` choices: `all` and every registered few-shot method (no torch imported)
METHOD_CHOICES = ["all", *method_names()]


TASKS.register("fewshot", Task(config="pointcalip.fewshot.config:FewShotConfig",
                               run="pointcalip.fewshot.run:run_fewshot",
                               datasets="pointcalip.fewshot.stages:feature_datasets"), order=20)


@COMMANDS.register("fewshot", order=20)
def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "fewshot",
        help="few-shot CALIP-FS, PointCLIP's adapter, Tip-Adapter caches over shots and seeds",
        description="Train (or search) each method on K shots per class from TRAIN for each "
                    "seed, select on a validation part of TRAIN disjoint from every shot, and "
                    "report TEST accuracy: one row per (method, shots, seed) and mean +- std "
                    "over seeds. Features come from the feature store (encoded once).",
    )
    add_config_options(p, "config file(s) or shipped names, e.g. configs/modelnet40_fewshot.yaml",
                       "--set backbone=RN101 --set calip_fs.rank=null")
    p.add_argument("--shots", nargs="+", type=positive_int, metavar="K", help="shots per class (config: shots)")
    p.add_argument("--seeds", nargs="+", type=non_negative_int, metavar="S", help="seeds (config: seeds)")
    p.add_argument("--method", nargs="+", choices=METHOD_CHOICES, metavar="METHOD",
                   help=f"methods to run, among {', '.join(METHOD_CHOICES)} (config: methods)")
    p.add_argument("--resume", action="store_true",
                   help="reuse finished runs and continue interrupted trainings from their last epoch")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="load adapter.checkpoint in full even when it holds Python objects "
                        "besides PointCLIP's released contents (unpickling can run any code: "
                        "only for a file you trust)")
    add_figure_options(p)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..config import load_config
    from ..fewshot.config import FewShotConfig
    from ..fewshot.run import output_dir, run_fewshot, write_fewshot_results

    overrides = list(args.overrides)
    if args.shots:
        overrides.append(f"shots={list(args.shots)}")
    if args.seeds:
        overrides.append(f"seeds={list(args.seeds)}")
    if args.method:
        methods = method_names() if "all" in args.method else list(dict.fromkeys(args.method))
        overrides.append(f"methods={methods}")
    cfg = load_config(FewShotConfig, args.config, overrides)
    result = run_fewshot(cfg, argv=args.argv, resume=args.resume,
                         trust_checkpoint=args.trust_checkpoint)
    paths = write_fewshot_results(result, output_dir(cfg))
    print(result.to_markdown())
    print("wrote " + ", ".join(str(p) for p in paths if p is not None))
    return 0
