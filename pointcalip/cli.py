"""The `pointcalip` command line.

Each subcommand lives in its own module ``pointcalip/commands/<name>.py`` exposing
``register(subparsers)``, which adds its parser and sets ``func`` to the function that runs it.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Subcommands in the order `pointcalip --help` lists them.
COMMANDS = ["zeroshot", "classify", "download"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pointcalip",
        description="Zero-shot and few-shot 3D point-cloud recognition with CLIP and CALIP.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"pointcalip.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"pointcalip.commands.{name}":
                raise
            continue  # subcommand not shipped yet
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError, RuntimeError) as err:
        # User-facing errors: one clear line, no traceback (use -v for the traceback).
        if args.verbose:
            raise
        print(f"pointcalip {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
