"""Subcommands of the `pointcalip` command line: one module each, declaring itself in
:data:`COMMANDS`, from which the command line takes its list of subcommands, their order in
``pointcalip --help`` and its "did you mean" for a mistyped one.

    @COMMANDS.register("zeroshot", order=10)      # in pointcalip/commands/zeroshot.py
    def register(subparsers) -> argparse.ArgumentParser:
        p = subparsers.add_parser("zeroshot", help=..., description=...)
        ...                                       # its options
        p.set_defaults(func=run)                  # run(args) imports torch, never the module
        return p

Adding a command is adding its module here. Every module of this package is imported to build
the parser (for ``--version`` and ``--help`` too), so none imports torch, numpy or the library's
heavy modules at import time: ``run`` imports what it needs, after the config is checked.
"""
from ..core.registry import Registry

COMMANDS = Registry("command", discover="pointcalip.commands")
