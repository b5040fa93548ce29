"""The `pointcalip` command line.

Each subcommand lives in its own module ``pointcalip/commands/<name>.py`` and declares itself
in the commands registry (:data:`pointcalip.commands.COMMANDS`) with ``register(subparsers)``,
which adds its parser and sets ``func`` to the function that runs it; the list of subcommands,
their order and the "did you mean" for a mistyped one come from that registry. Nothing here nor
in a command module imports torch before a command runs: ``--version``, every ``--help`` and
mistyped options answer at once. Errors a user can fix print one message (``pointcalip zeroshot:
error: ...``: what went wrong and where on its first line, a list of things on the lines below,
long lines wrapped at :data:`WIDTH` columns, :func:`error_text`) and exit with 2; ``-v`` (before
or after the subcommand) shows the traceback instead. Ctrl-C prints one line
saying what was kept and exits with 130.
"""
from __future__ import annotations

import argparse
import difflib
import logging
import sys
import warnings

from . import __version__
from .commands import COMMANDS

USER_ERRORS = (ValueError, KeyError, RuntimeError, OSError)
#: the widest line of an error message (a longer one is wrapped, unless it is one long word)
WIDTH = 100
HINT = "(run with -v for the traceback)"


def error_text(head: str, message: str, hint: str = "", width: int = WIDTH) -> str:
    """``head`` (``pointcalip zeroshot: error:``) and ``message`` as lines of at most
    ``width`` columns: each line of ``message`` (a list below its first line is indented) is
    wrapped at spaces with a hanging indent of 4 more columns than its own. A word is never
    cut: a path longer than a line has a line of its own, except the message's first word,
    which stays beside ``head`` (the first line says what went wrong and where). ``hint`` ends
    the last line, or has its own line when ``message`` holds several."""
    lines = f"{head} {message}".split("\n")
    if hint:
        lines = lines + [hint] if len(lines) > 1 else [f"{lines[0]} {hint}"]
    out = []
    for i, line in enumerate(lines):
        out += _wrap(line, width, keep=len(head) if i == 0 else 0)
    return "\n".join(out)


def _wrap(line: str, width: int, keep: int) -> list:
    """``line`` wrapped at spaces into lines of at most ``width`` columns (a longer word on a
    line of its own), later lines indented 4 columns more than ``line``; its first ``keep``
    characters stay on one line with the word after them."""
    indent = line[:len(line) - len(line.lstrip(" "))]
    words = line[len(indent):].split(" ")
    out, current = [], indent + words[0]
    for word in words[1:]:
        if len(current) + 1 + len(word) <= width or (not out and
                                                      len(current) <= max(keep, len(indent) + 4)):
            current += " " + word
        else:
            out.append(current)
            current = indent + "    " + word
    return out + [current]


class _Parser(argparse.ArgumentParser):
    """argparse's parser whose usage errors are wrapped as every other error
    (:func:`error_text`)."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(2, error_text(f"{self.prog}: error:", message) + "\n")


def _verbose_flag(parser: argparse.ArgumentParser, default) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", default=default,
                        help="debug logging, and tracebacks on errors")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pointcalip",
        description="Zero-shot and few-shot 3D point-cloud recognition with CLIP and CALIP.",
    )
    parser.add_argument("--version", action="version", version=f"pointcalip {__version__}")
    _verbose_flag(parser, default=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for entry in sorted(COMMANDS.entries(), key=lambda entry: entry.order):
        p = entry.target(sub)
        _verbose_flag(p, default=argparse.SUPPRESS)  # `-v` after the subcommand too
    return parser


def _subparsers(parser: argparse.ArgumentParser) -> dict:
    """{command name: its parser}."""
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def _check_option(parser: argparse.ArgumentParser, token: str) -> None:
    """Exit with a "did you mean" when ``token`` (``--name`` or ``--name=value``) is none of
    ``parser``'s long options, nor an abbreviation of one (which argparse accepts)."""
    option = token.partition("=")[0]
    known = [o for o in parser._option_string_actions if o.startswith("--")]
    if any(o.startswith(option) for o in known):
        return
    close = difflib.get_close_matches(option, known, n=2, cutoff=0.6)
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    parser.error(f"unrecognized option {option}{hint}; see {parser.prog} --help")


def check_words(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """Before argparse reads ``argv`` (whose "required" and "invalid choice" errors come first
    and suggest nothing): a mistyped subcommand or ``--option`` exits with 2 and the names it
    was probably meant to be."""
    commands = _subparsers(parser)
    target = parser
    for token in argv:
        if token == "--":
            return
        if token.startswith("--"):
            _check_option(target, token)
        elif target is parser and not token.startswith("-"):
            if token not in commands:
                parser.error(COMMANDS.unknown(token))
            target = commands[token]


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
    check_words(parser, argv)
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
        fmt, dpi = getattr(args, "figure_format", None), getattr(args, "dpi", None)
        if fmt is None and dpi is None:              # the defaults: no import at start-up
            return int(args.func(args) or 0)
        from .report.plots import figure_output

        with figure_output(fmt, dpi):
            return int(args.func(args) or 0)
    except KeyboardInterrupt as err:
        if args.verbose:
            raise
        detail = _message(err) if str(err) else "interrupted; nothing half-written was kept"
        print(error_text(f"pointcalip {args.command}:", detail), file=sys.stderr)
        return 130
    except USER_ERRORS as err:
        if args.verbose:
            raise
        print(error_text(f"pointcalip {args.command}: error:", _message(err), HINT),
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
