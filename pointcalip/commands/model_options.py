"""The options `classify` and `explain` share: which model to run on a user's cloud.

Settings come from PointCLIP's zero-shot setting (RN50, its projector and template, betas 0),
then a zeroshot run's results.json (``--results``), then explicit options, which win. Every
value is checked before CLIP is loaded; :func:`build_model_parts` returns what the command
needs to build its model.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..projection.catalog import PROJECTORS
from .options import device, finite_float, positive_int

#: results.json key of each setting
RECORDED = {"backbone": "backbone", "projector": "projector_config", "views": "views",
            "view_weights": "view_weights", "templates": "templates", "beta2": "beta2",
            "beta3": "beta3"}


class TemplatesOption(argparse.Action):
    """``--templates``: one template set name (configs/prompts.yaml) or per-class prompt file,
    or one or more templates, each holding ``{}`` for the class name; the value is that name
    (a string) or the list of templates."""

    def __call__(self, parser, namespace, values, option_string=None):
        if len(values) == 1 and "{}" not in values[0]:
            setattr(namespace, self.dest, values[0])
            return
        bare = [v for v in values if "{}" not in v]
        if bare:
            parser.error(f"argument {option_string}: {bare[0]!r} has no {{}} for the class name; "
                         f"give one template set name or prompt file, or templates that each "
                         f"contain {{}}, e.g. {option_string} \"a photo of a {{}}.\" "
                         f"\"a depth map of a {{}}.\"")
        setattr(namespace, self.dest, list(values))


def add_model_options(p: argparse.ArgumentParser, cloud_word: str = "your files") -> None:
    p.add_argument("--backbone", default=None, help="CLIP name or checkpoint path (default RN50)")
    p.add_argument("--projector", default=None, choices=PROJECTORS.names(),
                   help="projector with its published defaults (default pointclip)")
    p.add_argument("--templates", nargs="+", action=TemplatesOption, default=None,
                   metavar="TEMPLATE",
                   help="a template set name from configs/prompts.yaml, a per-class prompt "
                        "file (.json/.yaml), or one or more templates each with {} for the "
                        "class name, e.g. --templates \"a photo of a {}.\" \"a depth map of "
                        "a {}.\" (default pointclip)")
    p.add_argument("--beta2", type=finite_float, default=None, help="CALIP beta2 (default 0: PointCLIP)")
    p.add_argument("--beta3", type=finite_float, default=None, help="CALIP beta3 (default 0: PointCLIP)")
    p.add_argument("--results", type=Path, default=None,
                   help="results.json of a zeroshot run: reuse its backbone, projector, views, "
                        "templates, betas and view weights (explicit options still win)")
    p.add_argument("--num-points", type=positive_int, default=1024, metavar="N",
                   help="points per cloud (default 1024): a mesh is sampled on its surface, a "
                        "larger cloud subsampled at random (seeded), a smaller one filled up "
                        "with repeated points")
    p.add_argument("--up", choices=["y", "z"], default="y", help=f"up axis of {cloud_word} (ModelNet is y-up)")
    p.add_argument("--device", type=device, default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")


def model_settings(args) -> dict:
    """backbone, projector (a config mapping), views, view_weights, templates, beta2, beta3:
    defaults, then ``--results``, then options; the templates and the backbone checked."""
    from ..config import check_backbone
    from ..prompts import load_templates
    from ..report.results import read_results

    s = {"backbone": "RN50", "projector": {"name": "pointclip"}, "templates": "pointclip",
         "beta2": 0.0, "beta3": 0.0, "views": None, "view_weights": None}
    if args.results:
        saved = read_results(args.results)
        missing = [key for key in RECORDED.values() if key not in saved]
        if missing:
            raise ValueError(f"--results {args.results} is not a zeroshot results.json "
                             f"(missing {', '.join(missing)})")
        s.update({k: saved[v] for k, v in RECORDED.items()})
        check_recorded(s, args.results)
    if args.projector and args.projector != s["projector"].get("name"):
        s.update(projector={"name": args.projector}, views=None, view_weights=None)
    for key in ("backbone", "templates", "beta2", "beta3"):
        if getattr(args, key) is not None:
            s[key] = getattr(args, key)
    try:
        load_templates(s["templates"])
    except ValueError as err:
        if args.templates is None:
            raise
        raise ValueError(f"--templates: {err} (on the command line: one or more templates "
                         f"with {{}}, e.g. --templates \"a photo of a {{}}.\")") from None
    try:
        check_backbone(s["backbone"])
    except ValueError as err:
        raise ValueError(f"backbone {err} (choose one with --backbone)") from None
    return s


def _is_number(value) -> bool:
    """A finite number >= 0 as JSON gives it (not a string such as "1e3", not a bool)."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) \
        and math.isfinite(value) and value >= 0


def check_recorded(s: dict, path: Path) -> None:
    """ValueError naming the key when a setting read from the results.json at ``path`` has the
    wrong type: taken as they are, "1e3" or "111111" would be read as numbers, and all-zero
    view weights would put CALIP at chance."""
    def bad(key: str, want: str):
        return ValueError(f"--results {path}: {RECORDED[key]} is {str(s[key])[:60]!r}, not "
                          f"{want}; take settings from an unedited zeroshot results.json")

    if not isinstance(s["backbone"], str) or not s["backbone"]:
        raise bad("backbone", "a backbone name or checkpoint path")
    if not isinstance(s["projector"], dict) or not isinstance(s["projector"].get("name"), str):
        raise bad("projector", "a projector setting with a name")
    templates = s["templates"]
    if not (isinstance(templates, str) or (isinstance(templates, list) and templates
                                           and all(isinstance(t, str) for t in templates))):
        raise bad("templates", "a template set name or a list of templates")
    for key in ("beta2", "beta3"):
        if not _is_number(s[key]):
            raise bad(key, "a finite number >= 0")
    views = s["views"]
    if views is not None and not (isinstance(views, list) and views and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in views)):
        raise bad("views", "a list of view numbers")
    weights = s["view_weights"]
    if weights is not None and not (isinstance(weights, list) and weights
                                    and all(_is_number(w) for w in weights)
                                    and any(w > 0 for w in weights)):
        raise bad("view_weights", "a list of finite weights >= 0, not all 0")


def settings_line(s: dict, args, command: str) -> str:
    """One line saying what a command took and from where: ``pointcalip classify: backbone
    RN50, projector pointclip (views 0-5), templates pointclip, beta2 0, beta3 0, view weights
    equal (defaults; --results r.json; options: --beta2)``."""
    views = "all views" if s["views"] is None else f"views {', '.join(map(str, s['views']))}"
    weights = ("equal" if s["view_weights"] is None else
               ", ".join(f"{w:g}" for w in s["view_weights"]))
    templates = s["templates"] if isinstance(s["templates"], str) else "; ".join(s["templates"])
    given = [f"--{k}" for k in ("backbone", "projector", "templates", "beta2", "beta3")
             if getattr(args, k, None) is not None]
    origin = "; ".join(x for x in ("defaults" if not args.results and len(given) < 5 else "",
                                   f"--results {args.results}" if args.results else "",
                                   f"options {' '.join(given)}" if given else "") if x)
    return (f"pointcalip {command}: backbone {s['backbone']}, projector {s['projector'].get('name')} "
            f"({views}), templates {templates}, beta2 {s['beta2']:g}, beta3 {s['beta3']:g}, "
            f"view weights {weights} (from {origin})")


def build_projector(s: dict):
    """The projector of settings ``s``, restricted to their views -> (projector, view indices)."""
    from ..config import ProjectorConfig, check_views

    projector = ProjectorConfig.from_mapping(s["projector"]).build()
    if s["views"] is None:
        return projector, list(range(projector.num_views))
    check_views(s["views"], projector.num_views)
    return projector.select_views(s["views"]), list(s["views"])
