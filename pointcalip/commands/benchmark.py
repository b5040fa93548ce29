"""`pointcalip benchmark`: zero-shot PointCLIP / CALIP on a benchmark: a table over several
datasets (OpenShape's protocol) or ModelNet40-C's corruption x severity grid."""
from __future__ import annotations

import argparse
from types import SimpleNamespace

from ..tasks import TASKS, Task
from . import COMMANDS
from .options import add_config_options, positive_int, add_figure_options


TASKS.register("benchmark", Task(config="pointcalip.benchmark.config:BenchmarkConfig",
                                 run="pointcalip.benchmark.task:run_benchmark",
                                 datasets="pointcalip.benchmark.task:feature_datasets",
                                 compact_stores=True), order=47)


@COMMANDS.register("benchmark", order=47)
def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "benchmark",
        help="zero-shot PointCLIP and CALIP on OpenShape's datasets (one table) or on "
             "ModelNet40-C (corruption x severity)",
        description="`--config openshape`: PointCLIP and CALIP top-1/3/5 on every dataset the "
                    "config lists (ModelNet40, ScanObjectNN, Objaverse-LVIS), one row per "
                    "dataset and method with the protocol it was tuned by (TRAIN validation; "
                    "a test slice kept out of the reported clouds when a dataset has no TRAIN "
                    "split; or tune.from another run's results.json). `--config modelnet40c`: "
                    "betas tuned once on clean ModelNet40 validation (TRAIN), then top-1/3/5 on "
                    "clean ModelNet40 TEST and every ModelNet40-C corruption x severity, with a "
                    "heatmap and accuracy against severity. Writes results.json and results.md "
                    "(features kept in the store).",
    )
    add_config_options(p, "config file(s) or shipped config names, merged left to right "
                          "(openshape, modelnet40c)",
                       "--set datasets.objaverse_lvis.tune.from=runs/lvis/results.json "
                       "--set backbone=ViT-B/16")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N",
                   help="at most N clouds per set (per dataset and per tuning set; "
                        "class-stratified, seeded with tune.seed) for a quick run; same as "
                        "--set limit=N")
    add_figure_options(p)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..config import load_config
    from ..benchmark.config import BenchmarkConfig

    overrides = list(args.overrides)
    if args.limit is not None:
        overrides.append(f"limit={args.limit}")
    cfg = load_config(BenchmarkConfig, args.config, overrides)   # checked before torch loads
    from ..report.results import write_results
    from .needs import check_needs, no_empty_output

    if cfg.table:
        from ..benchmark.table import output_dir, run_table

        for entry in cfg.table.values():     # every dataset and the weights, before encoding
            check_needs(SimpleNamespace(data=entry, download=cfg.download, backbone=cfg.backbone))
        with no_empty_output(output_dir(cfg)):
            result = run_table(cfg, argv=args.argv)
        json_path, md_path = write_results(result, output_dir(cfg))
        print(result.to_markdown())
        print(f"wrote {json_path} and {md_path}")
        return 0

    from ..benchmark.result import write_plots
    from ..benchmark.robustness import benchmark_root, output_dir, run_robustness

    check_needs(cfg)
    benchmark_root(cfg)                      # a missing benchmark folder fails before encoding
    with no_empty_output(output_dir(cfg)):
        result = run_robustness(cfg, argv=args.argv)
    json_path, md_path = write_results(result, output_dir(cfg))
    write_plots(result, output_dir(cfg))
    print(result.to_markdown())
    print(f"wrote {json_path}, {md_path} and plots in {output_dir(cfg)}")
    return 0
