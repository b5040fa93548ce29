"""`pointcalip segment`: zero-shot part segmentation with dense CALIP, on ShapeNetPart (a
config) or on your own file (a category and its part names)."""
from __future__ import annotations

import argparse

from ..tasks import TASKS, Task
from . import COMMANDS
from .options import add_figure_options, config_file, device, finite_float, int_between, shipped_configs

#: the most points `segment FILE` labels (memory measured at this size by
#: scripts/bench_hostile.py; see the bad-input docs)
MAX_POINTS = 200_000


def projector_presets() -> list:
    """The projector presets ``--projector`` offers: the YAML files of configs/projector/."""
    return [n.split("/", 1)[1] for n in shipped_configs() if n.startswith("projector/")]


def preset_projector(name: str):
    """The ProjectorConfig of configs/projector/<name>.yaml."""
    from ..config import ProjectorConfig
    from ..core.config import resolve_config_path
    from ..prompts import read_yaml

    return ProjectorConfig.from_mapping(dict(
        read_yaml(resolve_config_path(f"projector/{name}"))["projector"]))


TASKS.register("segment", Task(config="pointcalip.segmentation.config:SegmentConfig",
                               run="pointcalip.segmentation.run:run_segment",
                               datasets="pointcalip.segmentation.run:feature_datasets",
                               after_encode="pointcalip.segmentation.run:fill_locations",
                               encode_with="pointcalip.segmentation.run:location_cache"),
               order=45)


@COMMANDS.register("segment", order=45)
def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "segment",
        help="zero-shot part segmentation: ShapeNetPart (--config) or your own file",
        description="Dense CLIP and dense CALIP part segmentation. With --config: project "
                    "ShapeNetPart's shapes, encode the views (feature store), tune betas and "
                    "view weights per category on the official VAL split (or on TEST with "
                    "--tune-on test, PointCLIP V2's protocol, labelled as such), report "
                    "instance and class mIoU on TEST and write results.json, results.md, "
                    "predictions.npz and pictures. With FILE: label each point of your cloud "
                    "or mesh with one of --parts of --category.",
    )
    p.add_argument("file", nargs="?", metavar="FILE", help="a cloud or mesh to segment "
                   "(.ply/.pcd/.obj/.off/.npy ...); not with --config")
    p.add_argument("--config", nargs="+", type=config_file, default=None, metavar="YAML",
                   help="segmentation config(s), e.g. shapenetpart")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set backbone=RN50 --set "
                        "projector.name=pointclip --set data.categories=[chair,lamp]")
    p.add_argument("--tune-on", choices=["val", "test"], default=None,
                   help="tune on the official VAL split (default) or on TEST (V2's published "
                        "protocol, optimistic); same as --set tune.split=...")
    p.add_argument("--rotate", choices=["so3", "up"], default=None,
                   help="also run the rotated protocol (each shape turned by a seeded random "
                        "rotation: any, or about the up axis), reported beside the upright "
                        "one; same as --set rotation.mode=...")
    g = p.add_argument_group("one file")
    g.add_argument("--category", default=None, help="what the object is, e.g. chair")
    g.add_argument("--parts", nargs="+", default=None, metavar="PART",
                   help="its part names, e.g. back seat leg armrest")
    g.add_argument("-o", "--output", default=None, metavar="PLY",
                   help="write the cloud coloured by part (ASCII .ply with a 'part' property)")
    g.add_argument("--png", default=None, metavar="PNG", help="also draw it coloured by part")
    g.add_argument("--backbone", default="ViT-B/16", help="CLIP name or checkpoint (ViT-B/16)")
    g.add_argument("--projector", default="realistic_seg", choices=projector_presets(),
                   help="a projector preset (configs/projector/NAME.yaml): realistic_seg "
                        "(default: V2's segmentation projector, as configs/shapenetpart.yaml), "
                        "realistic (V2's classification one), pointclip, pointclip_fewshot")
    g.add_argument("--templates", nargs="+", default=None, metavar="TEMPLATE",
                   help="part templates with {part} and optionally {category}, or one "
                        "per-part sentence file (YAML/JSON {category: {part: [sentences]}})")
    g.add_argument("--beta2", type=finite_float, default=0.0, help="dense CALIP beta2 (0)")
    g.add_argument("--beta3", type=finite_float, default=0.0, help="dense CALIP beta3 (0)")
    g.add_argument("--num-points", type=int_between(1, MAX_POINTS, " (the memory of a "
                                                    "segmentation grows with it)"),
                   default=2048, metavar="N",
                   help=f"points to segment (default 2048, at most {MAX_POINTS:,})")
    g.add_argument("--up", choices=["y", "z"], default="y", help="up axis of the file")
    g.add_argument("--device", type=device, default=None, help="cpu, cuda, ...")
    add_figure_options(p)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    if args.config and args.file:
        raise ValueError("give either --config (a ShapeNetPart run) or FILE (your own cloud), "
                         "not both")
    if args.config:
        return run_config(args)
    if not args.file:
        raise ValueError("nothing to segment: give --config shapenetpart, or FILE with "
                         "--category and --parts")
    return run_file(args)


def run_config(args) -> int:
    from ..config import config_class, load_config

    overrides = list(args.overrides)
    if args.tune_on:
        overrides.append(f"tune.split={args.tune_on}")
    if args.rotate:
        overrides.append(f"rotation.mode={args.rotate}")
    cfg = load_config(config_class("segment"), args.config, overrides)   # before torch
    from ..report.results import write_results
    from ..segmentation.run import data_root, output_dir, run_segment
    from .needs import no_empty_output

    out = output_dir(cfg, data_root(cfg))
    with no_empty_output(out):
        result = run_segment(cfg, argv=args.argv, out=out)
    json_path, md_path = write_results(result, out)
    print(result.to_markdown())
    print(f"wrote {json_path}, {md_path} and {out / 'predictions.npz'}")
    return 0


def run_file(args) -> int:
    missing = [o for o, v in (("--category", args.category), ("--parts", args.parts)) if not v]
    if missing:
        raise ValueError(f"segmenting {args.file} needs {' and '.join(missing)} (e.g. "
                         f"--category chair --parts back seat leg armrest)")
    from ..config import check_backbone
    from ..core.paths import check_output_file
    from ..prompts import check_classnames
    from ..segmentation.config import DEFAULT_PART_TEMPLATES, check_part_templates

    templates = args.templates or DEFAULT_PART_TEMPLATES
    if len(templates) == 1 and "{part}" not in templates[0]:
        templates = templates[0]                # a per-part sentence file
    try:
        check_part_templates(templates)
    except (ValueError, OSError) as err:
        raise ValueError(f"--templates {err}") from None
    check_backbone(args.backbone)
    if len(args.parts) < 2:
        raise ValueError(f"--parts needs two or more part names; got {args.parts}")
    try:
        check_classnames(args.parts)
    except ValueError as err:
        raise ValueError(f"--parts: {str(err).replace('class names', 'part names')}") from None
    for option, path in (("-o/--output", args.output), ("--png", args.png)):
        if path:                                  # before the model runs, not after
            check_output_file(path, option)
    projector = preset_projector(args.projector).build()
    from ..backbones import load_clip
    from ..datasets import load_point_cloud
    from ..segmentation.pictures import draw_parts, write_ply
    from ..segmentation.run import segment_cloud

    points = load_point_cloud(args.file, num_points=args.num_points, up=args.up)
    backbone = load_clip(args.backbone, device=args.device)
    seg = segment_cloud(points, args.category, args.parts, backbone, projector, templates,
                        args.beta2, args.beta3)
    counts = {name: int((seg.labels == k).sum()) for k, name in enumerate(seg.parts)}
    print(f"{args.file}: " + ", ".join(f"{n} {c}" for n, c in counts.items()) +
          f" points ({100 * seg.unseen_share:.1f}% seen in no view, labelled by their nearest "
          f"visible point)")
    if args.output:
        print(f"wrote {write_ply(args.output, seg.points, seg.labels)}")
    if args.png:
        print(f"wrote {draw_parts(args.png, seg.points, [('predicted', seg.labels)], seg.parts, args.category)}")
    return 0
