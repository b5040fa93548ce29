"""What the CLI printed as its error, for tests: the message block of stderr, its wrapped lines
joined again, after checking that no line is wider than the CLI's limit."""
import re

from pointcalip.cli import WIDTH


def error_block(err: str) -> str:
    """The error of stderr ``err``: the line holding ``: error: `` and every line after it
    (a command may print its settings and warnings first), joined with single spaces as the
    message was before the CLI wrapped it. Asserts no traceback, and no line wider than
    :data:`pointcalip.cli.WIDTH` columns unless it is one word (a long path)."""
    assert "Traceback" not in err, err
    lines = err.rstrip("\n").splitlines()
    start = max(i for i, line in enumerate(lines) if re.search(r": error:( |$)", line))
    block = lines[start:]
    head = block[0][:block[0].index(": error:") + len(": error:")]
    words = [len(block[0][len(head):].split())] + [len(line.split()) for line in block[1:]]
    wide = [line for line, n in zip(block, words) if len(line) > WIDTH and n > 1]
    assert not wide, f"error lines wider than {WIDTH} columns:\n" + "\n".join(wide)
    return " ".join(line.strip() for line in block)
