"""`pointcalip explain`: one PNG of a cloud's views with CALIP's spatial attention over them."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..config import CLASSIFICATION_DATASETS
from . import COMMANDS
from .model_options import add_model_options, build_projector, model_settings, settings_line
from .options import add_figure_options, non_negative_int, user_folder
from ..core.words import count


@COMMANDS.register("explain", order=60)
def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "explain",
        help="PNG of a cloud's depth maps with CALIP's attention for the predicted and a chosen class",
        description="Project one cloud (a file, or a dataset item with --dataset/--index), "
                    "encode its views with CLIP and draw, over each view's depth map, CALIP's "
                    "spatial attention (softmax over positions of 2 F_s F_t^T) for the "
                    "predicted class and for a chosen class (--target; default: the true label "
                    "of a dataset item, else the runner-up), titled with the top-3 "
                    "probabilities.",
    )
    p.add_argument("file", nargs="?", metavar="FILE", help="a point cloud or mesh file")
    p.add_argument("--classes", nargs="+", metavar="NAME",
                   help="candidate class names (required with FILE; a dataset item uses its "
                        "dataset's classes)")
    p.add_argument("--dataset", choices=CLASSIFICATION_DATASETS,
                   help="explain an item of this dataset instead of a file")
    p.add_argument("--index", type=non_negative_int, default=None, help="the item's index")
    p.add_argument("--split", choices=["train", "test"], default="test",
                   help="the split the --dataset item comes from (default test)")
    p.add_argument("--root", default=None, type=user_folder,
                   help="the dataset folder (default: the installed copy)")
    p.add_argument("--variant", default=None, help="ScanObjectNN variant (OBJ_BG, OBJ_ONLY, PB_T50_RS)")
    p.add_argument("--target", default=None, metavar="NAME", help="the chosen class to show")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="figure to write, in the format its extension names: .png, .jpg/"
                        ".jpeg, .pdf or .svg (default: <file stem>_attention.png or "
                        "<dataset>_<split>_<index>_attention.png)")
    add_model_options(p, cloud_word="FILE")
    add_figure_options(p)
    p.set_defaults(func=run)
    return p


def _cloud(args):
    """-> (points [N, 3], class names, true label or None, default output, title)."""
    if args.dataset is not None:
        from ..config import DataConfig
        from ..data import build_split, resolve_data_root

        if args.file is not None or args.classes:
            raise ValueError("give either FILE with --classes, or --dataset with --index (a "
                             "dataset item uses its dataset's classes)")
        if args.index is None:
            raise ValueError("--dataset needs --index (which item to explain)")
        data = DataConfig(name=args.dataset, root=args.root, variant=args.variant,
                          num_points=args.num_points)
        ds = build_split(data, resolve_data_root(data, download=False), args.split)
        if args.index >= len(ds):
            raise ValueError(f"--index {args.index} is out of range: {data.label} {args.split} "
                             f"has {count(len(ds), 'cloud')}")
        points, label = ds[args.index]
        name = f"{data.label}_{args.split}_{args.index}"
        title = f"{data.label} {args.split}[{args.index}] (label: {ds.classnames[label]})"
        return points, list(ds.classnames), int(label), Path(f"{name}_attention.png"), title
    from ..datasets import load_point_cloud

    if args.file is None:
        raise ValueError("give a cloud FILE (with --classes), or --dataset NAME --index I")
    if not args.classes:
        raise ValueError("FILE needs --classes (the candidate class names)")
    if args.index is not None:
        raise ValueError("--index belongs to --dataset; a FILE holds one cloud")
    points = load_point_cloud(args.file, num_points=args.num_points, up=args.up)
    return points, list(args.classes), None, Path(f"{Path(args.file).stem}_attention.png"), \
        Path(args.file).name


def run(args) -> int:
    from ..backbones import load_clip
    from ..core.paths import ensure_writable
    from ..explain import explain_cloud, image_format, render
    from ..prompts import check_classnames

    s = model_settings(args)                 # every check before CLIP is loaded
    if args.output is not None:
        image_format(args.output)
    projector, views = build_projector(s)
    points, classes, label, default_out, title = _cloud(args)
    classes = check_classnames(classes)
    if len(classes) == 1:
        print(f"pointcalip explain: warning: only one class ({classes[0]!r}): its probability "
              f"is 100% whatever the cloud, a softmax over one class means nothing; give two "
              f"or more --classes to compare", file=sys.stderr)
    if args.target is not None and args.target not in classes:
        raise ValueError(f"--target {args.target!r} is not among the classes: {', '.join(classes)}")

    print(settings_line(s, args, "explain"), file=sys.stderr)
    out = args.output or default_out
    ensure_writable(Path(out).expanduser().parent, "-o/--output")   # before CLIP runs
    backbone = load_clip(s["backbone"], device=args.device)
    expl = explain_cloud(points, backbone, projector, classes, s["templates"], s["beta2"],
                         s["beta3"], s["view_weights"])
    if args.target is not None:
        target = classes.index(args.target)
    elif label is not None:
        target = label
    else:                                                     # the runner-up
        target = classes.index(expl.top(2)[-1][0]) if len(classes) > 1 else None
    from ..report.plots import view_name

    tilts = projector.view_set.tilts or (0.0,) * len(views)
    render(expl, out, target, title, [view_name(v, a, t) for v, a, t in
                                      zip(views, projector.view_set.angles, tilts)])
    ranked = ", ".join(f"{name} {p:.1%}" for name, p in expl.top(3))
    print(f"{title}: {ranked}")
    print(f"wrote {out}")
    return 0
