"""`pointcalip ablate`: multi-view ablation studies from the feature store."""
from __future__ import annotations

import argparse

from ..tasks import TASKS, Task
from . import COMMANDS
from .options import add_config_options, add_tune_on_option, add_figure_options
from ..core.words import count


TASKS.register("ablate", Task(config="pointcalip.ablation.config:AblationConfig",
                              run="pointcalip.ablation.run:run_ablation",
                              datasets="pointcalip.plan:tuned_datasets",
                              pairs="pointcalip.ablation.config:feature_pairs"), order=30)


@COMMANDS.register("ablate", order=30)
def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "ablate",
        help="ablation studies (views, CALIP terms, prompts, projectors, backbones, view "
             "weights) answered from the feature store; classification or part segmentation",
        description="Run the studies a config lists (studies: [views, terms, ...]) on stored "
                    "features: views are encoded once and every subset, prompt or beta is "
                    "evaluated from the store. Hyper-parameters are tuned on a validation "
                    "subset of TRAIN (or on test with --tune-on test) and reported on TEST. "
                    "Each study writes table.csv, table.md, PNGs and report.md into its own "
                    "folder under the output folder. With a segmentation config (--config "
                    "shapenetpart --set studies=[terms]) the views, terms, prompts, projectors "
                    "and backbones studies report instance and class mIoU, each point being a "
                    "`pointcalip segment` run kept under runs/.",
    )
    add_config_options(p, "config file(s) or shipped config names, merged left to right; their "
                          "`studies:` lists are joined, so `--config ablation_views "
                          "ablation_terms` runs both (e.g. configs/ablation_views.yaml "
                          "model/realistic_vitb16)",
                       "--set data.root=DIR --set backbone=ViT-B/16 --set studies=[views,terms]; "
                       "shapenetpart (a segment config) ablates part segmentation")
    add_tune_on_option(p)
    add_figure_options(p)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..ablation.config import SegAblationConfig, load_ablation_config

    overrides = list(args.overrides)
    if args.tune_on:
        overrides.append(f"tune.split={args.tune_on}")
    cfg = load_ablation_config(args.config, overrides)   # checked before torch loads
    from ..ablation.run import output_dir, run_ablation, write_ablation
    from .needs import check_needs, no_empty_output

    if not isinstance(cfg, SegAblationConfig):      # segment runs check their data themselves
        check_needs(cfg)
    folder = output_dir(cfg)
    with no_empty_output(folder):
        result = run_ablation(cfg, argv=args.argv)
    index = write_ablation(result, folder)
    for study in result.studies:
        print(f"## {study.title}  ({study.seconds:.1f} s)\n")
        print(study.table.to_markdown() if len(study.table.rows) <= 40 else
              f"({count(len(study.table.rows), 'row')}: see {folder / study.name / 'table.md'})\n")
        for note in study.notes:
            print(f"- {note}")
        print()
    print(f"Tuning protocol: {result.protocol}")
    print(f"wrote {index} and {len(result.studies)} study folder(s) in {folder}")
    return 0
