"""`pointcalip classify`: top-k classes for your own point clouds or meshes."""
from __future__ import annotations

import argparse
import sys

from . import COMMANDS
from .model_options import add_model_options, build_projector, model_settings, settings_line
from .options import positive_int
from ..core.words import count


@COMMANDS.register("classify", order=50)
def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "classify",
        help="classify your own .ply/.pcd/.obj/.off/.npy... files among given class names",
        description="Zero-shot classification of point-cloud or mesh files with CALIP. "
                    "Probabilities are the softmax of the view-aggregated logits. Every file "
                    "is read and checked first; bad files are reported by name and the good "
                    "ones classified (exit code 1 if any file failed).",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="point clouds or meshes")
    p.add_argument("--classes", nargs="+", required=True, metavar="NAME", help="candidate class names")
    p.add_argument("--top-k", type=positive_int, default=5, metavar="K",
                   help="print the K most probable classes of each file (default 5; at most "
                        "the number of --classes)")
    add_model_options(p)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    import torch

    from ..backbones import load_clip
    from ..datasets import load_point_cloud
    from ..model import PointCALIP
    from ..prompts import check_classnames

    s = model_settings(args)                # every check before CLIP is loaded
    classes = check_classnames(args.classes)
    projector, _ = build_projector(s)

    clouds, good, failed = [], [], []
    for path in args.files:                 # read and check every file before loading CLIP
        try:
            clouds.append(load_point_cloud(path, num_points=args.num_points, up=args.up))
            good.append(path)
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            failed.append(path)
            print(f"pointcalip classify: error: {err}", file=sys.stderr)
    if not good:
        return 1

    print(settings_line(s, args, "classify"), file=sys.stderr)
    backbone = load_clip(s["backbone"], device=args.device)
    model = PointCALIP(backbone=backbone, classnames=classes, projector=projector,
                       templates=s["templates"], beta2=s["beta2"], beta3=s["beta3"],
                       view_weights=s["view_weights"])
    with torch.no_grad():
        probs = model(torch.stack(clouds).to(backbone.device)).float().softmax(-1).cpu()
    if len(classes) == 1:
        print(f"pointcalip classify: warning: only one class ({classes[0]!r}): its probability "
              f"is 100% whatever the cloud, a softmax over one class means nothing; give two "
              f"or more --classes to compare", file=sys.stderr)
    k = min(args.top_k, len(classes))
    for path, p in zip(good, probs):
        values, idx = p.topk(k)
        ranked = ", ".join(f"{classes[i]} {v:.1%}" for v, i in zip(values.tolist(), idx.tolist()))
        print(f"{path}: {ranked}")
    if failed:
        print(f"pointcalip classify: {len(failed)} of {count(len(args.files), 'file')} could not "
              f"be read (see above)", file=sys.stderr)
    return 1 if failed else 0
