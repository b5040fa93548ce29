"""Counts with their nouns in the right number ("1 cloud", "2 clouds"): the helper, a message
that used to say "1 clouds", and a scan of the sources that keeps "{n} clouds" from coming back."""
import ast
import re
from pathlib import Path

import pytest

from pointcalip.core.words import count, plural
from pointcalip.datasets.base import cloud_indices

REPO = Path(__file__).resolve().parents[1]
HELPER = REPO / "pointcalip" / "core" / "words.py"

# plural nouns a message counts; "{n} <one of these>" must go through count()/plural()
NOUNS = """clouds shapes files seeds views categories points objects sets classes parts entries
epochs images runs rows keys names templates prompts labels folders checkpoints items corruptions
severities shots batches samples values lines bytes methods cells columns ranks studies steps
channels orders copies triangles subsets elements indices characters words orders""".split()
# interpolations before such a noun that are not counts ("the TEST shapes", "ModelNet-C corruptions")
NOT_COUNTS = {"entry.name", "self.benchmark", "cfg.tune.split.upper()",
              "self.tuning_split.upper()", "split", "path", "path.suffix", "getattr(tp, '__name__', tp)"}
_PERCENT = re.compile(r"%[-+ 0-9,]*[di] (" + "|".join(NOUNS) + r")\b")


@pytest.mark.parametrize("n, noun, want", [
    (0, "cloud", "0 clouds"), (1, "cloud", "1 cloud"), (2, "cloud", "2 clouds"),
    (1, "class", "1 class"), (3, "class", "3 classes"), (2, "category", "2 categories"),
    (2, "key", "2 keys"), (2, "test shape", "2 test shapes"), (5, "index", "5 indexes")])
def test_count_puts_the_noun_in_the_right_number(n, noun, want):
    assert count(n, noun) == want


def test_count_takes_an_irregular_plural_and_a_number_format():
    assert count(2, "index", "indices") == "2 indices"
    assert count(1, "index", "indices") == "1 index"
    assert count(1234, "cloud", spec=",") == "1,234 clouds"
    assert plural(1, "view") == "view" and plural(6, "view") == "views"


def test_one_cloud_is_a_cloud_in_an_error():
    with pytest.raises(IndexError) as err:
        cloud_indices([3], 1, "ModelNet40 test")
    assert str(err.value) == "index 3 out of range for ModelNet40 test (1 cloud)"


def test_a_limit_of_one_cloud_reads_one_cloud_in_results_md():
    from types import SimpleNamespace

    from pointcalip.benchmark.result import _limit

    one = SimpleNamespace(limit=1, tune=SimpleNamespace(seed=0))
    assert _limit(one) == "1 cloud per set (class-stratified, seed 0)"
    assert _limit(SimpleNamespace(limit=8, tune=SimpleNamespace(seed=3))).startswith("8 clouds per")


def _decimal(value: ast.FormattedValue) -> bool:
    """``{x:+.2f}``, ``{x:.1%}``: a measure ("+1.50 points" of accuracy), not a count."""
    spec = "".join(str(v.value) for v in value.format_spec.values
                   if isinstance(v, ast.Constant)) if value.format_spec else ""
    return spec[-1:] in ("f", "%", "e", "g")


def plural_after_count(path: Path, root: Path = REPO) -> list[str]:
    """``file:line: text`` for each f-string part ``{expr} <plural noun>`` (or ``%d <plural
    noun>`` in a logging format) in ``path``, where ``expr`` may be a count."""
    found = []
    nouns = "|".join(NOUNS)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.JoinedStr):
            for before, after in zip(node.values, node.values[1:]):
                if (isinstance(before, ast.FormattedValue) and before.conversion == -1
                        and not _decimal(before) and isinstance(after, ast.Constant)
                        and re.match(r" (%s)\b" % nouns, str(after.value))
                        and ast.unparse(before.value) not in NOT_COUNTS):
                    found.append(f"{path.relative_to(root)}:{node.lineno}: "
                                 f"{{{ast.unparse(before.value)}}}{after.value[:20]}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if _PERCENT.search(node.value):
                found.append(f"{path.relative_to(root)}:{node.lineno}: {node.value[:60]}")
    return found


def test_no_message_puts_a_plural_noun_after_a_bare_count():
    """Every "{n} clouds" in the library, datasets/, projection/ and the commands goes through
    count() or plural(), so "1 clouds" cannot be printed."""
    files = [p for folder in ("pointcalip", "datasets", "projection")
             for p in sorted((REPO / folder).rglob("*.py")) if p != HELPER]
    assert len(files) > 100
    found = [hit for path in files for hit in plural_after_count(path)]
    assert found == [], "a count before a plural noun; use pointcalip.core.words.count:\n" + \
        "\n".join(found)


SAMPLE = """msg = (f"{n} clouds of {len(x)} "
       "classes", f"{m:,} views, {d:+.2f} points")
log = "%d shapes"
ok = f"{count(n, 'cloud')} of {plural(n, 'class')} in {split} shapes"
"""


def test_the_scan_finds_a_bare_count(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(SAMPLE)
    hits = [hit.split(": ", 1)[1] for hit in plural_after_count(path, tmp_path)]
    assert sorted(hits) == ["%d shapes", "{len(x)} classes", "{m} views, ", "{n} clouds of "]
