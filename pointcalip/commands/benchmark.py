"""`pointcalip benchmark`: zero-shot PointCLIP / CALIP on a benchmark (ModelNet40-C)."""
from __future__ import annotations

import argparse

from . import COMMANDS
from .options import add_config_options, positive_int


@COMMANDS.register("benchmark", order=47)
def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "benchmark",
        help="zero-shot PointCLIP and CALIP on ModelNet40-C (corruption x severity table)",
        description="Tune CALIP's betas once on clean ModelNet40 validation (TRAIN), then "
                    "report PointCLIP and CALIP top-1/3/5 on clean ModelNet40 TEST and on every "
                    "ModelNet40-C corruption x severity (features kept in the store): "
                    "results.json, results.md, a heatmap and accuracy against severity.",
    )
    add_config_options(p, "config file(s) or shipped config names, merged left to right "
                          "(e.g. modelnet40c)",
                       "--set benchmark.corruptions=[gaussian,lidar] --set backbone=ViT-B/16")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N",
                   help="at most N clouds per set (class-stratified, seeded with tune.seed) "
                        "for a quick run; same as --set limit=N")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..config import load_config
    from ..benchmark.config import BenchmarkConfig

    overrides = list(args.overrides)
    if args.limit is not None:
        overrides.append(f"limit={args.limit}")
    cfg = load_config(BenchmarkConfig, args.config, overrides)   # checked before torch loads
    from ..benchmark.report import write_plots
    from ..benchmark.robustness import benchmark_root, output_dir, run_modelnet40c
    from ..report.results import write_results
    from .needs import check_needs, no_empty_output

    check_needs(cfg)
    benchmark_root(cfg)                      # a missing benchmark folder fails before encoding
    with no_empty_output(output_dir(cfg)):
        result = run_modelnet40c(cfg, argv=args.argv)
    json_path, md_path = write_results(result, output_dir(cfg))
    write_plots(result, output_dir(cfg))
    print(result.to_markdown())
    print(f"wrote {json_path}, {md_path} and plots in {output_dir(cfg)}")
    return 0
