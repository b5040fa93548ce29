"""The documentation: README and docs/ link only to what exists, the manual builds as a site in
MkDocs' strict mode, and no docstring or comment sends a reader to files the repository does
not hold."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
INLINE_LINK = re.compile(r"(!?)\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
HTML_TARGET = re.compile(r"<(?:img|a)\b[^>]*?\b(?:src|href)=\"([^\"]+)\"", re.I)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")


def markdown_files() -> List[Path]:
    """README.md, CONTRIBUTING.md and every page under docs/ (drafts in docs/pending too)."""
    return [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted(DOCS.rglob("*.md"))]


def prose_lines(text: str, keep_code_spans: bool = False) -> Iterator[Tuple[int, str]]:
    """(line number, line) outside fenced and indented code blocks, code spans removed
    unless ``keep_code_spans``."""
    in_fence = in_indented = False
    previous_blank = True
    for number, line in enumerate(text.split("\n"), 1):
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_indented:
            in_indented = line.startswith("    ") or not line.strip()
        else:
            in_indented = previous_blank and line.startswith("    ") and not in_fence
        previous_blank = not line.strip()
        if in_fence or in_indented:
            continue
        yield number, line if keep_code_spans else CODE_SPAN.sub("", line)


def heading_text(raw: str) -> str:
    """What a heading renders as: code ticks, emphasis markers and link targets removed."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", raw)
    return text.replace("`", "").replace("**", "").replace("__", "")


def github_slug(text: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, each space a hyphen."""
    text = heading_text(text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def mkdocs_slug(text: str) -> str:
    """Python-Markdown's toc slug (MkDocs): ASCII, punctuation dropped, runs of spaces and
    hyphens one hyphen."""
    text = unicodedata.normalize("NFKD", heading_text(text)).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(path: Path) -> Dict[str, Set[str]]:
    """The heading anchors of a Markdown file as GitHub and as MkDocs name them (with the
    suffixes each adds to repeated headings)."""
    out: Dict[str, Set[str]] = {"github": set(), "mkdocs": set()}
    seen: Dict[str, Dict[str, int]] = {"github": {}, "mkdocs": {}}
    for _, line in prose_lines(path.read_text(encoding="utf-8"), keep_code_spans=True):
        m = HEADING.match(line)
        if not m:
            continue
        for kind, slug, sep in (("github", github_slug(m.group(2)), "-"),
                                ("mkdocs", mkdocs_slug(m.group(2)), "_")):
            count = seen[kind].get(slug, 0)
            seen[kind][slug] = count + 1
            out[kind].add(slug if count == 0 else f"{slug}{sep}{count}")
    return out


def links(path: Path) -> Iterator[Tuple[int, str, bool]]:
    """(line, target, is_image) of every inline link, image, reference definition and HTML
    link or image of a Markdown file."""
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        for m in INLINE_LINK.finditer(line):
            yield number, m.group(3), m.group(1) == "!"
        m = REFERENCE_DEF.match(line)
        if m:
            yield number, m.group(1), False
        for m in HTML_TARGET.finditer(line):
            yield number, m.group(1), line[m.start():m.start() + 4].lower() == "<img"


def broken_links(path: Path) -> List[str]:
    """What is wrong with each link of ``path``, one line each."""
    problems = []
    in_site = DOCS in path.parents
    for number, target, image in links(path):
        where = f"{path.relative_to(ROOT)}:{number}: {target!r}"
        if not target:
            problems.append(f"{where}: empty link")
            continue
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):      # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if file_part.startswith("/"):
            problems.append(f"{where}: absolute path; write it relative to the file")
            continue
        if not dest.exists():
            problems.append(f"{where}: {dest.relative_to(ROOT) if ROOT in dest.parents else dest} "
                            "does not exist")
            continue
        if ROOT not in dest.parents and dest != ROOT:
            problems.append(f"{where}: points outside the repository")
            continue
        if in_site and DOCS not in dest.parents:
            problems.append(f"{where}: a docs page may link only inside docs/ (the site holds "
                            "nothing else); name other files as `code`")
            continue
        if image and dest.suffix.lower() not in {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"}:
            problems.append(f"{where}: an image must be a picture file")
        if anchor:
            if dest.suffix != ".md":
                problems.append(f"{where}: an anchor into a file that is not Markdown")
                continue
            found = anchors(dest)
            kinds = ("github", "mkdocs") if DOCS in dest.parents else ("github",)
            for kind in kinds:
                if anchor not in found[kind]:
                    problems.append(f"{where}: no heading of {dest.relative_to(ROOT)} has the "
                                    f"{kind} anchor #{anchor}")
    return problems


def test_every_link_and_image_resolves():
    files = markdown_files()
    assert len(files) > 10, "docs/ pages are missing"
    problems = [p for f in files for p in broken_links(f)]
    assert not problems, "broken links or images:\n" + "\n".join(problems)


def test_the_link_check_sees_broken_links(tmp_path, monkeypatch):
    """The checker itself: each kind of broken link is reported, good ones are not."""
    docs = tmp_path / "docs"
    (docs / "figures").mkdir(parents=True)
    (docs / "figures" / "a.png").write_bytes(b"png")
    (docs / "other.md").write_text("# Other page\n\n## Where points land: locate\n")
    page = docs / "page.md"
    page.write_text("# Page\n\n## A `code` heading\n\n"
                    "[ok](other.md#where-points-land-locate) ![ok](figures/a.png) [ok](#a-code-heading)\n"
                    "[bad](missing.md) ![bad](figures/b.png) [bad](other.md#nowhere) [bad](#no)\n"
                    "[bad](../README.md) `[code](ignored.md)`\n\n```\n[fenced](ignored.md)\n```\n")
    (tmp_path / "README.md").write_text("see [the page](docs/page.md#a-code-heading)\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "DOCS", docs)
    problems = broken_links(page)
    assert [p.split(": ")[1] for p in problems] == [
        "'missing.md'", "'figures/b.png'", "'other.md#nowhere'", "'other.md#nowhere'",
        "'#no'", "'#no'", "'../README.md'"]
    assert broken_links(tmp_path / "README.md") == []


def test_heading_anchors_follow_github_and_mkdocs():
    assert github_slug("`pointcalip extract`: fill the store, on one process") == \
        "pointcalip-extract-fill-the-store-on-one-process"
    assert mkdocs_slug("`pointcalip extract`: fill the store, on one process") == \
        "pointcalip-extract-fill-the-store-on-one-process"
    assert github_slug("OpenShape's protocol: one table") == "openshapes-protocol-one-table"
    assert github_slug("a - b") == "a---b" and mkdocs_slug("a - b") == "a-b"


def test_docs_build_as_a_site_in_strict_mode(tmp_path):
    """`mkdocs build --strict`: every page in the nav, every link and anchor resolved."""
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed (pip install 'pointcalip[test]', or bash "
                    "scripts/setup_env.sh), so the docs site cannot be built here")
    out = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                           "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pages = {p.stem for p in DOCS.glob("*.md")}
    built = {p.parent.name for p in out.glob("*/index.html")} | {"index"}
    assert pages <= built, f"pages not built: {sorted(pages - built)}"
    assert (out / "figures" / "views.png").exists()


def test_readme_names_the_test_command_and_its_count():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
    assert re.search(r"bash scripts/test\.sh\s+# [\d,]+ passed", readme), \
        "README must name `bash scripts/test.sh` and its test count"


SPEC_CITE = re.compile(r"\bspecs?/[\w.-]+\.md|\bspec/")


def test_no_docstring_cites_files_the_repository_does_not_hold():
    """The algorithm pages are in docs/; code, configs and tests point there, never at spec/
    files that a clone does not have."""
    places = [ROOT / d for d in ("pointcalip", "projection", "datasets", "configs", "scripts", "tests")]
    files = [f for d in places for f in d.rglob("*") if f.suffix in {".py", ".yaml", ".sh"}
             and f != Path(__file__).resolve()]
    files += markdown_files()
    cites = [f"{f.relative_to(ROOT)}:{n}: {line.strip()}"
             for f in files for n, line in enumerate(f.read_text(encoding="utf-8").split("\n"), 1)
             if SPEC_CITE.search(line)]
    assert not cites, "cites of spec files, which are not in the repository (point to docs/):\n" + \
        "\n".join(cites)


def test_docs_pages_cited_in_the_code_exist():
    """Every ``docs/<page>.md#anchor`` a docstring or comment names resolves."""
    cite = re.compile(r"docs/([\w-]+\.md)(?:#([\w-]+))?")
    problems = []
    for d in ("pointcalip", "projection", "datasets", "configs", "scripts"):
        for f in (ROOT / d).rglob("*"):
            if f.suffix not in {".py", ".yaml"}:
                continue
            for n, line in enumerate(f.read_text(encoding="utf-8").split("\n"), 1):
                for page, anchor in cite.findall(line):
                    dest = DOCS / page
                    where = f"{f.relative_to(ROOT)}:{n}: docs/{page}{'#' + anchor if anchor else ''}"
                    if not dest.exists():
                        problems.append(f"{where}: no such page")
                    elif anchor and anchor not in anchors(dest)["mkdocs"]:
                        problems.append(f"{where}: no such heading")
    assert not problems, "\n".join(problems)
