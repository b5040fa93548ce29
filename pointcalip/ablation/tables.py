"""What a study produces: tables (CSV and Markdown), figures, notes and a JSON summary."""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple
from ..core.words import count

#: how numbers of a column read in Markdown, by column name (others: 2 decimals)
BETA_FORMAT = ".4g"


def _cell(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else format(value, spec)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_cell(v, "g") for v in value) + "]"
    return str(value)


@dataclass
class Table:
    """Rows of values under named columns. Floats are written with 4 decimals to CSV and in
    each column's ``formats`` spec (default ``.2f``) to Markdown; lists as ``[0, 3]``."""

    columns: List[str]
    rows: List[List[Any]] = field(default_factory=list)
    formats: Dict[str, str] = field(default_factory=dict)

    def add(self, *values: Any) -> None:
        if len(values) != len(self.columns):
            raise ValueError(f"a row of {count(len(values), 'value')} for "
                             f"{count(len(self.columns), 'column')}")
        self.rows.append(list(values))

    def column(self, name: str) -> List[Any]:
        i = self.columns.index(name)
        return [row[i] for row in self.rows]

    def records(self) -> List[dict]:
        """Rows as JSON-friendly mappings."""
        return [dict(zip(self.columns, (list(v) if isinstance(v, tuple) else v for v in row)))
                for row in self.rows]

    def with_column(self, name: str, value: Any) -> "Table":
        """A copy with one more column holding ``value`` in every row."""
        return Table([*self.columns, name], [[*row, value] for row in self.rows], dict(self.formats))

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.columns)
        for row in self.rows:
            writer.writerow([_cell(v, ".4f") if isinstance(v, (float, list, tuple)) else
                             ("" if v is None else v) for v in row])
        return out.getvalue()

    def to_markdown(self) -> str:
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        for row in self.rows:
            lines.append("| " + " | ".join(_cell(v, self.formats.get(c, ".2f"))
                                           for c, v in zip(self.columns, row)) + " |")
        return "\n".join(lines) + "\n"


def accuracy_groups(table: Table, pointclip: str = "pointclip_test", calip: str = "test_top1"
                    ) -> Dict[str, List[Any]]:
    """The bars of a classification study's figure: PointCLIP's and CALIP's test top-1 and,
    beside each, its mean class accuracy (mAcc; the columns ``<top-1 column>_macc``, or
    ``test_macc`` for CALIP's ``test_top1``)."""
    macc = lambda column: "test_macc" if column == "test_top1" else f"{column}_macc"  # noqa: E731
    return {"PointCLIP (betas 0), top-1": table.column(pointclip),
            "PointCLIP (betas 0), mAcc": table.column(macc(pointclip)),
            "CALIP (tuned), top-1": table.column(calip),
            "CALIP (tuned), mAcc": table.column(macc(calip))}


#: draws one figure into a PNG file and returns its size in pixels (width, height)
Drawer = Callable[[Path], Tuple[int, int]]


@dataclass
class StudyResult:
    """One study's outcome. ``table`` is written as table.csv / table.md; ``extra`` tables
    as <name>.csv (and into table.md when short); ``figures`` maps PNG file names to their
    drawers; ``notes`` are report lines (the winner, what was held fixed); ``summary`` goes
    into results.json."""

    name: str
    title: str
    table: Table
    extra: Dict[str, Table] = field(default_factory=dict)
    figures: Dict[str, Drawer] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    seconds: float = 0.0
    files: List[str] = field(default_factory=list)     # filled in when written

    def to_dict(self) -> dict:
        return {"title": self.title, "seconds": round(self.seconds, 3), "notes": self.notes,
                "table": self.table.records(), **self.summary,
                "files": list(self.files)}


def percent(x: Optional[float]) -> Optional[float]:
    """A fraction as a percentage (None stays None)."""
    return None if x is None else 100.0 * float(x)


def subset_label(views: Sequence[int]) -> str:
    return "[" + ", ".join(str(v) for v in views) + "]"
