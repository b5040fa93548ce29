"""argparse types that check option values before any work starts (the error names the
option: ``argument --top-k: must be a positive integer, got '0'``), and the options every
command that reads configs shares."""
from __future__ import annotations

import argparse
import difflib
import math


def _int_at_least(low: int, description: str, high: int | None = None):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {description}, got {text!r}")
        return value
    return parse


def int_between(low: int, high: int, why: str = ""):
    """An argparse type: an integer in ``[low, high]`` (``why`` says what the bound is for)."""
    return _int_at_least(low, f"an integer from {low:,} to {high:,}{why}", high)


positive_int = _int_at_least(1, "a positive integer")
non_negative_int = _int_at_least(0, "a non-negative integer")


def user_folder(text: str) -> str:
    """A path whose ``~user`` (if any) names a user of this machine."""
    from ..core.paths import user_path

    try:
        user_path(text, "path")
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("path ")) from None
    return text


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def device(text: str) -> str:
    from ..config import check_device

    try:
        check_device(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def shipped_configs() -> list[str]:
    """The names ``--config`` accepts for the shipped configs (``modelnet40``,
    ``model/realistic_vitb16``, ...): the YAML files under configs/, without ``.yaml``."""
    from ..prompts import configs_root

    root = configs_root()
    return sorted(str(path.relative_to(root).with_suffix("")) for path in root.rglob("*.yaml"))


def config_file(text: str) -> str:
    """A config file that exists or a shipped config name; else the error names the shipped
    configs closest to ``text``."""
    from ..config import resolve_config_path

    try:
        resolve_config_path(text)
    except FileNotFoundError as err:
        close = difflib.get_close_matches(text.removesuffix(".yaml"), shipped_configs(), n=3,
                                          cutoff=0.6)
        runs = [n for n in shipped_configs() if "/" not in n and not n.endswith("_defaults")
                and n not in ("prompts", "classnames")]
        hint = (f"did you mean {' or '.join(close)}?" if close else
                f"shipped configs: {', '.join(runs)} (and parts to add: model/..., data/..., "
                f"projector/...)")
        raise argparse.ArgumentTypeError(f"{err}; {hint}") from None
    return text


def add_config_options(p: argparse.ArgumentParser, config_help: str, set_example: str) -> None:
    """``--config YAML ...`` (each an existing file or a shipped config name) and ``--set
    KEY=VALUE`` (repeatable)."""
    p.add_argument("--config", nargs="+", required=True, type=config_file, metavar="YAML",
                   help=config_help)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override a config key, e.g. {set_example}")


def add_tune_on_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tune-on", choices=["val", "test"], default=None,
                   help="tune on a validation subset of TRAIN (default) or on TEST (the "
                        "published protocol, optimistic); same as --set tune.split=...")


def add_figure_options(p: argparse.ArgumentParser) -> None:
    """``--figure-format png|pdf|svg`` and ``--dpi N``: how the command writes its figures."""
    p.add_argument("--figure-format", choices=["png", "pdf", "svg"], default=None,
                   help="format of every figure written (default png; pdf and svg are vector "
                        "files for papers)")
    p.add_argument("--dpi", type=_int_at_least(10, "an integer of at least 10"), default=None,
                   help="resolution of PNG figures (default 150)")
