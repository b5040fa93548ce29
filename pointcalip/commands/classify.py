"""`pointcalip classify`: top-k classes for your own point clouds or meshes."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .options import device, finite_float, positive_int

log = logging.getLogger(__name__)


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
    p.add_argument("--backbone", default=None, help="CLIP name or checkpoint path (default RN50)")
    p.add_argument("--projector", default=None, choices=["pointclip", "realistic"],
                   help="projector with its published defaults (default pointclip)")
    p.add_argument("--templates", default=None,
                   help="template set name from configs/prompts.yaml (default pointclip)")
    p.add_argument("--beta2", type=finite_float, default=None, help="CALIP beta2 (default 0: PointCLIP)")
    p.add_argument("--beta3", type=finite_float, default=None, help="CALIP beta3 (default 0: PointCLIP)")
    p.add_argument("--results", type=Path, default=None,
                   help="results.json of a zeroshot run: reuse its backbone, projector, views, "
                        "templates, betas and view weights (explicit options still win)")
    p.add_argument("--num-points", type=positive_int, default=1024)
    p.add_argument("--up", choices=["y", "z"], default="y", help="up axis of your files (ModelNet is y-up)")
    p.add_argument("--top-k", type=positive_int, default=5)
    p.add_argument("--device", type=device, default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.set_defaults(func=run)
    return p


def _settings(args) -> dict:
    """Backbone, projector, views, templates, betas, weights: defaults (PointCLIP's zero-shot
    setting), then a results.json, then explicit options."""
    from ..prompts import check_classnames, load_templates
    from ..results import read_results

    s = {"backbone": "RN50", "projector": {"name": "pointclip"}, "templates": "pointclip",
         "beta2": 0.0, "beta3": 0.0, "views": None, "view_weights": None}
    if args.results:
        saved = read_results(args.results)
        keys = {"backbone": "backbone", "projector": "projector_config", "views": "views",
                "view_weights": "view_weights", "templates": "templates", "beta2": "beta2",
                "beta3": "beta3"}
        missing = [v for v in keys.values() if v not in saved]
        if missing:
            raise ValueError(f"--results {args.results} is not a zeroshot results.json "
                             f"(missing {', '.join(missing)})")
        s.update({k: saved[v] for k, v in keys.items()})
    if args.projector and args.projector != s["projector"].get("name"):
        s.update(projector={"name": args.projector}, views=None, view_weights=None)
    for key in ("backbone", "templates", "beta2", "beta3"):
        if getattr(args, key) is not None:
            s[key] = getattr(args, key)
    s["templates"] = load_templates(s["templates"])
    s["classes"] = check_classnames(args.classes)
    return s


def run(args) -> int:
    import torch

    from ..backbone import load_clip
    from ..config import ProjectorConfig, check_backbone, check_views
    from ..datasets import load_point_cloud
    from ..model import PointCALIP

    s = _settings(args)
    check_backbone(s["backbone"])
    projector = ProjectorConfig.from_mapping(s["projector"]).build()
    if s["views"] is not None:
        check_views(s["views"], projector.num_views)
        projector = projector.select_views(s["views"])

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

    backbone = load_clip(s["backbone"], device=args.device)
    model = PointCALIP(backbone=backbone, classnames=s["classes"], projector=projector,
                       templates=s["templates"], beta2=s["beta2"], beta3=s["beta3"],
                       view_weights=s["view_weights"])
    with torch.no_grad():
        probs = model(torch.stack(clouds).to(backbone.device)).float().softmax(-1).cpu()
    k = min(args.top_k, len(s["classes"]))
    for path, p in zip(good, probs):
        values, idx = p.topk(k)
        ranked = ", ".join(f"{s['classes'][i]} {v:.1%}" for v, i in zip(values.tolist(), idx.tolist()))
        print(f"{path}: {ranked}")
    if failed:
        print(f"pointcalip classify: {len(failed)} of {len(args.files)} files could not be read "
              f"(see above)", file=sys.stderr)
    return 1 if failed else 0
