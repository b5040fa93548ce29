"""The `pointcalip` command line.

Each subcommand lives in its own module ``pointcalip/commands/<name>.py`` exposing
``register(subparsers)``, which adds its parser and sets ``func`` to the function that runs it.
Errors a user can fix print one line (``pointcalip zeroshot: error: ...``) and exit with 2;
``-v`` (before or after the subcommand) shows the traceback instead. Ctrl-C prints one line
saying what was kept and exits with 130.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings

from . import __version__

# Subcommands in the order `pointcalip --help` lists them; a name whose module is not there
# (a command not built yet) is left out.
COMMANDS = ["zeroshot", "fewshot", "ablate", "extract", "classify", "explain", "download"]
USER_ERRORS = (ValueError, KeyError, RuntimeError, OSError)


def _verbose_flag(parser: argparse.ArgumentParser, default) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", default=default,
                        help="debug logging, and tracebacks on errors")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pointcalip",
        description="Zero-shot and few-shot 3D point-cloud recognition with CLIP and CALIP.",
    )
    parser.add_argument("--version", action="version", version=f"pointcalip {__version__}")
    _verbose_flag(parser, default=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"pointcalip.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"pointcalip.commands.{name}":
                raise
            continue
        p = module.register(sub)
        _verbose_flag(p, default=argparse.SUPPRESS)  # `-v` after the subcommand too
    return parser


class _OnlyOnce(logging.Filter):
    """Lets each distinct warning or error message through once (e.g. a dataset remark made
    for the train and again for the test split)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.getMessage())
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


def _message(err: BaseException) -> str:
    if isinstance(err, KeyError) and err.args:
        return str(err.args[0])  # str(KeyError) adds quotes
    return str(err) or type(err).__name__


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_OnlyOnce())
    logging.captureWarnings(True)
    warnings.simplefilter("default" if args.verbose else "once")
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    args.argv = ["pointcalip", *argv]
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt as err:
        if args.verbose:
            raise
        detail = _message(err) if str(err) else "interrupted; nothing half-written was kept"
        print(f"pointcalip {args.command}: {detail}", file=sys.stderr)
        return 130
    except USER_ERRORS as err:
        if args.verbose:
            raise
        print(f"pointcalip {args.command}: error: {_message(err)} (run with -v for the "
              f"traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
