"""`pointcalip classify`: top-k classes for your own point clouds or meshes."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "classify",
        help="classify your own .ply/.pcd/.obj/.off/.npy... files among given class names",
        description="Zero-shot classification of point-cloud or mesh files with CALIP. "
                    "Probabilities are the softmax of the view-aggregated logits.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="point clouds or meshes")
    p.add_argument("--classes", nargs="+", required=True, metavar="NAME", help="candidate class names")
    p.add_argument("--backbone", default=None, help="CLIP name or checkpoint path (default RN50)")
    p.add_argument("--projector", default=None, choices=["pointclip", "realistic"],
                   help="projector with its published defaults (default pointclip)")
    p.add_argument("--templates", default=None,
                   help="template set name from configs/prompts.yaml (default pointclip)")
    p.add_argument("--beta2", type=float, default=None, help="CALIP beta2 (default 0: PointCLIP)")
    p.add_argument("--beta3", type=float, default=None, help="CALIP beta3 (default 0: PointCLIP)")
    p.add_argument("--results", type=Path, default=None,
                   help="results.json of a zeroshot run: reuse its backbone, projector, views, "
                        "templates, betas and view weights (explicit options still win)")
    p.add_argument("--num-points", type=int, default=1024)
    p.add_argument("--up", choices=["y", "z"], default="y", help="up axis of your files (ModelNet is y-up)")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--device", default=None)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    import torch

    from ..backbone import load_clip
    from ..config import load_templates
    from ..datasets import load_point_cloud
    from ..model import PointCALIP
    from ..projection import build_projector

    # Defaults: PointCLIP's zero-shot setting; a results.json replaces them; options win over both.
    backbone_name, projector_kwargs, templates = "RN50", {"name": "pointclip"}, "pointclip"
    beta2 = beta3 = 0.0
    views = view_weights = None
    if args.results:
        try:
            saved = json.loads(args.results.read_text())
            backbone_name, projector_kwargs = saved["backbone"], saved["projector_config"]
            views, view_weights = saved["views"], saved["view_weights"]
            templates, beta2, beta3 = saved["templates"], saved["beta2"], saved["beta3"]
        except (OSError, ValueError, KeyError) as err:
            raise ValueError(f"cannot reuse settings from {args.results}: {err}") from None
    if args.projector and args.projector != projector_kwargs["name"]:
        projector_kwargs, views, view_weights = {"name": args.projector}, None, None
    backbone_name = args.backbone or backbone_name
    templates = load_templates(args.templates or templates)
    beta2 = args.beta2 if args.beta2 is not None else beta2
    beta3 = args.beta3 if args.beta3 is not None else beta3

    backbone = load_clip(backbone_name, device=args.device)
    projector = build_projector(**projector_kwargs)
    if views is not None:
        projector = projector.select_views(views)
    model = PointCALIP(backbone=backbone, classnames=args.classes, projector=projector,
                       templates=templates, beta2=beta2, beta3=beta3, view_weights=view_weights)
    clouds = torch.stack([load_point_cloud(f, num_points=args.num_points, up=args.up) for f in args.files])
    with torch.no_grad():
        probs = model(clouds.to(backbone.device)).float().softmax(-1).cpu()
    k = min(args.top_k, len(args.classes))
    for path, p in zip(args.files, probs):
        values, idx = p.topk(k)
        ranked = ", ".join(f"{args.classes[i]} {v:.1%}" for v, i in zip(values.tolist(), idx.tolist()))
        print(f"{path}: {ranked}")
    return 0
