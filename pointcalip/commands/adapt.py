"""`pointcalip adapt`: the online test-time cache over zero-shot CALIP on every corruption x
severity of a robustness benchmark (or on a clean dataset), mean +- std over seeded orders."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..tasks import TASKS, Task
from . import COMMANDS
from .options import config_file, positive_int

TASKS.register("adapt", Task(config="pointcalip.adapt.config:AdaptConfig",
                             run="pointcalip.adapt.run:run_adapt",
                             datasets="pointcalip.adapt.task:feature_datasets"), order=48)

#: shipped adapt configs live in configs/adapt/ (their names are also benchmark configs')
ADAPT_FOLDER = "adapt"


def adapt_config_path(name: str) -> str:
    """``name`` as given when it is a file, else the shipped ``configs/adapt/<name>.yaml``
    when there is one, else ``name`` (the config loader then says what it cannot find)."""
    from ..prompts import configs_root

    if Path(name).expanduser().is_file():
        return name
    shipped = configs_root() / ADAPT_FOLDER / f"{name.removesuffix('.yaml')}.yaml"
    return str(shipped) if shipped.is_file() else config_file(name)


@COMMANDS.register("adapt", order=48)
def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "adapt",
        help="online test-time cache over zero-shot CALIP per corruption x severity "
             "(modelnet40c, modelnet_c, scanobjectnn_c) or on a clean set (modelnet40)",
        description="CALIP's betas tuned once on clean validation (TRAIN); then, for every set, "
                    "zero-shot PointCLIP and CALIP from the feature store and the online cache "
                    "(+ positive, + negative, + local) over S seeded stream orders (the same "
                    "for every row): mean +- std of top-1 and the cache's time per cloud. "
                    "Writes results.json, results.md, gain.png and curves.png.",
    )
    p.add_argument("--config", nargs="+", required=True, type=adapt_config_path, metavar="YAML",
                   help="config file(s) or shipped adapt config names (configs/adapt/), merged "
                        "left to right: modelnet40c, modelnet_c, scanobjectnn_c, modelnet40")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set cache.tune=val --set orders=3")
    p.add_argument("--orders", type=positive_int, default=None, metavar="S",
                   help="seeded stream orders per set (default 5); same as --set orders=S")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N",
                   help="at most N clouds per set (class-stratified, seeded) for a quick run")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..adapt.config import AdaptConfig
    from ..config import load_config

    overrides = list(args.overrides)
    if args.orders is not None:
        overrides.append(f"orders={args.orders}")
    if args.limit is not None:
        overrides.append(f"limit={args.limit}")
    cfg = load_config(AdaptConfig, [adapt_config_path(c) for c in args.config], overrides)
    from ..adapt.report import write_plots
    from ..adapt.run import output_dir, run_adapt
    from ..report.results import write_results
    from .needs import check_needs, no_empty_output

    check_needs(cfg)
    with no_empty_output(output_dir(cfg)):
        result = run_adapt(cfg, argv=args.argv)
    json_path, md_path = write_results(result, output_dir(cfg))
    write_plots(result, output_dir(cfg))
    print(result.to_markdown())
    print(f"wrote {json_path}, {md_path} and plots in {output_dir(cfg)}")
    return 0
