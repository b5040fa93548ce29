"""Files of an ablation run: per study table.csv, table.md, PNGs and report.md; at the top
report.md (an index) and results.json.

    <output_dir>/
        report.md  results.json
        views/     report.md  table.csv  table.md  importance.csv  subsets.csv
                   views.png  importance.png
        terms/     report.md  table.csv  table.md  surface.csv  beta_surface.png
        ...
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Sequence

from ..report import plots
from ..core.atomic import write_bytes
from .tables import StudyResult
from ..core.words import count

#: extra tables longer than this go to CSV only (the report links them)
MARKDOWN_ROWS = 100


def _write(path: Path, text: str) -> None:
    """Replace ``path`` atomically and durably with ``text`` (UTF-8)."""
    write_bytes(path, text.encode("utf-8"))


def write_study(study: StudyResult, folder: Path, header: Sequence[str],
                tuned_on: str = "val") -> List[str]:
    """Write one study's files into ``folder``; -> their names (also kept in
    ``study.files``). ``header``: the lines stating dataset, backbone, projector, protocol;
    ``tuned_on``: the tuning split, written as a ``tuned_on`` column into every CSV."""
    folder.mkdir(parents=True, exist_ok=True)
    files = ["report.md", "table.csv", "table.md"]
    _write(folder / "table.csv", study.table.with_column("tuned_on", tuned_on).to_csv())
    md = [f"# {study.title}", "", *header, "", study.table.to_markdown()]
    for name, table in study.extra.items():
        _write(folder / f"{name}.csv", table.with_column("tuned_on", tuned_on).to_csv())
        files.append(f"{name}.csv")
        if len(table.rows) <= MARKDOWN_ROWS:
            md += [f"## {name}", "", table.to_markdown()]
        else:
            md += ["## "
                   f"{name}", "", f"{count(len(table.rows), 'row')}: see "
                                  f"[{name}.csv]({name}.csv).", ""]
    _write(folder / "table.md", "\n".join(md))
    sizes = {}
    for name, draw in study.figures.items():
        name = plots.figure_name(name)                  # the command's figure format
        sizes[name] = draw(folder / name)
        files.append(name)
    report = [f"# Ablation: {study.title}", "", *header, "", "## Findings", "",
              *(f"- {note}" for note in study.notes), "", "## Table", "",
              study.table.to_markdown(),
              "Files: " + " · ".join(f"[{f}]({f})" for f in files if f != "report.md"), ""]
    for name in sizes:
        report += [f"![{name}]({name})", ""]
    report.append(f"Study time: {study.seconds:.2f} s.")
    _write(folder / "report.md", "\n".join(report) + "\n")
    study.files = files
    return files


def write_index(result, folder: Path) -> None:
    """The run's report.md (links to every study's report) and results.json."""
    lines = [f"# Ablations: {', '.join(s.name for s in result.studies)}", "", *result.header(), "",
             "| study | time (s) | report | figures |", "|---|---|---|---|"]
    for study in result.studies:
        figures = ", ".join(f"[{f}]({study.name}/{f})" for f in study.files if plots.is_figure(f))
        lines.append(f"| {study.title} | {study.seconds:.2f} | [{study.name}/report.md]"
                     f"({study.name}/report.md) | {figures} |")
    lines += ["", "## Findings", ""]
    for study in result.studies:
        lines += [f"### {study.title}", "", *(f"- {note}" for note in study.notes), ""]
    _write(folder / "report.md", "\n".join(lines) + "\n")
    _write(folder / "results.json", json.dumps(result.to_dict(), indent=2))
