"""A count with its noun, in the right number: ``count(1, "cloud")`` is "1 cloud",
``count(2, "cloud")`` is "2 clouds". Every message and result file that prints a number of
things goes through here (tests/test_words.py scans the sources for ``{n} clouds``)."""
from __future__ import annotations

_VOWELS = set("aeiou")


def plural(n: int, noun: str, plural_form: str | None = None) -> str:
    """``noun`` when ``n`` is 1, else its plural: ``plural_form`` when given (for irregular
    words, e.g. "index" -> "indices"), else the regular English plural ("cloud" -> "clouds",
    "class" -> "classes", "category" -> "categories"). Only the last word changes, so a
    qualified noun works: ``plural(3, "test cloud")`` is "test clouds"."""
    if n == 1:
        return noun
    if plural_form is not None:
        return plural_form
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and len(noun) > 1 and noun[-2] not in _VOWELS:
        return noun[:-1] + "ies"
    return noun + "s"


def count(n: int, noun: str, plural_form: str | None = None, *, spec: str = "") -> str:
    """``"{n} {noun}"`` with the noun in the right number: ``count(1, "shape")`` is
    "1 shape", ``count(1234, "cloud", spec=",")`` is "1,234 clouds" (``spec`` formats the
    number as in an f-string)."""
    return f"{n:{spec}} {plural(n, noun, plural_form)}"


def listed(items, numbered: bool = False, indent: str = "  ") -> str:
    """``items`` on lines of their own below a message's first line: ``"\\n  - a\\n  - b"``
    (``numbered``: ``"\\n  (1) a\\n  (2) b"``). The CLI wraps each long line with a hanging
    indent (:func:`pointcalip.cli.error_text`), so a list of long items stays readable."""
    return "".join(f"\n{indent}({i}) {item}" if numbered else f"\n{indent}- {item}"
                   for i, item in enumerate(items, 1))
