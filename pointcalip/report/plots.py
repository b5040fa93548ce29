"""PNG figures with matplotlib, headless: lines, bars, heatmaps and attention overlays.

Figures are built with matplotlib's object API on the Agg canvas (no pyplot, no display, no
global backend switch), at a fixed size in pixels: every drawer returns (width, height) and
the file has exactly that size.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

DPI = 100
LINES_SIZE = (800, 500)
BARS_SIZE = (800, 500)
HEATMAP_PANEL = (560, 480)
TILE = 200               # attention grid: pixels per view tile
TITLE_HEIGHT = 60        # attention grid: pixels above the tiles
ROW_LABEL_WIDTH = 40     # attention grid: pixels left of the tiles

Size = Tuple[int, int]


def _figure(size: Size):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path, size: Size, fmt: str = "png") -> Size:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format=fmt)
    return size


def lines(path: Path, x: Sequence[float], series: Dict[str, Sequence[Optional[float]]],
          xlabel: str, ylabel: str, title: str, size: Size = LINES_SIZE) -> Size:
    """One marked line per series over ``x`` (None values are gaps)."""
    fig = _figure(size)
    fig.set_layout_engine("constrained")
    ax = fig.add_subplot()
    for name, ys in series.items():
        values = np.array([np.nan if y is None else y for y in ys], dtype=float)
        ax.plot(list(x), values, marker="o", label=name)
    ax.set_xticks(list(x))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.legend(loc="outside lower center", ncols=min(len(series), 4), fontsize=8, frameon=False)
    return _save(fig, path, size)


def bands(path: Path, series: Dict[str, Tuple[Sequence[float], Sequence[float], Sequence[float]]],
          references: Dict[str, float], xlabel: str, ylabel: str, title: str,
          size: Size = LINES_SIZE) -> Size:
    """A line with a +-std band per series ``{name: (x, mean, std)}`` on a log2 x axis, and a
    dashed horizontal line per reference value ``{name: y}``."""
    fig = _figure(size)
    fig.set_layout_engine("constrained")
    ax = fig.add_subplot()
    xs = sorted({x for xv, _, _ in series.values() for x in xv})
    for name, (x, mean, std) in series.items():
        mean, std = np.asarray(mean, dtype=float), np.asarray(std, dtype=float)
        line, = ax.plot(list(x), mean, marker="o", label=name)
        ax.fill_between(list(x), mean - std, mean + std, color=line.get_color(), alpha=0.2)
    for i, (name, y) in enumerate(references.items()):
        ax.axhline(y, linestyle="--", linewidth=1, color=("0.55", "0.15")[i % 2], label=name)
    if xs:
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [f"{x:g}" for x in xs])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.legend(loc="outside lower center", ncols=min(len(series) + len(references), 4),
               fontsize=8, frameon=False)
    return _save(fig, path, size)


def twin_lines(path: Path, x: Sequence[float], left: Tuple[str, Sequence[float]],
               right: Tuple[str, Sequence[float]], xlabel: str, title: str,
               size: Size = (800, 450)) -> Size:
    """Two series over ``x`` with their own y axes: ``left`` and ``right`` are (label, values)."""
    fig = _figure(size)
    fig.set_layout_engine("constrained")
    ax = fig.add_subplot()
    ax.plot(list(x), list(left[1]), color="tab:red")
    ax.set_ylabel(left[0], color="tab:red")
    ax.set_xlabel(xlabel)
    other = ax.twinx()
    other.plot(list(x), list(right[1]), color="tab:blue")
    other.set_ylabel(right[0], color="tab:blue")
    ax.set_title(title, fontsize=10)
    return _save(fig, path, size)


def bars(path: Path, labels: Sequence[str], groups: Dict[str, Sequence[Optional[float]]],
         ylabel: str, title: str, size: Size = BARS_SIZE, horizontal: bool = False) -> Size:
    """Grouped bars: one group per label, one bar per entry of ``groups`` (None: no bar)."""
    fig = _figure(size)
    fig.set_layout_engine("constrained")
    ax = fig.add_subplot()
    n = max(len(groups), 1)
    width = 0.8 / n
    pos = np.arange(len(labels), dtype=float)
    for i, (name, values) in enumerate(groups.items()):
        vals = np.array([np.nan if v is None else v for v in values], dtype=float)
        offset = pos - 0.4 + width * (i + 0.5)
        if horizontal:
            ax.barh(offset, vals, height=width, label=name)
        else:
            ax.bar(offset, vals, width=width, label=name)
    if horizontal:
        ax.set_yticks(pos, list(labels), fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel(ylabel)
        ax.grid(axis="x", alpha=0.3)
    else:
        ax.set_xticks(pos, list(labels), fontsize=8, rotation=30 if len(labels) > 6 else 0,
                      ha="right" if len(labels) > 6 else "center")
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
        ax.axhline(0, color="black", linewidth=0.8)
    ax.set_title(title, fontsize=10)
    if len(groups) > 1:
        fig.legend(loc="outside lower center", ncols=min(len(groups), 3), fontsize=8,
                   frameon=False)
    return _save(fig, path, size)


@dataclass
class Heatmap:
    """One panel: ``values`` [len(rows), len(cols)] over row values (y) and column values
    (x); ``mark``: (row value, column value) to circle, or None."""

    values: np.ndarray
    rows: Sequence[float]
    cols: Sequence[float]
    title: str
    mark: Optional[Tuple[float, float]] = None


def _edges(values: np.ndarray) -> Tuple[float, float]:
    """(low, high) edges of cells centred on sorted, evenly spaced ``values``."""
    half = (values[-1] - values[0]) / (len(values) - 1) / 2 if len(values) > 1 else 0.5
    return float(values[0] - half), float(values[-1] + half)


def heatmaps(path: Path, panels: Sequence[Heatmap], ylabel: str, xlabel: str, title: str,
             colorbar: str) -> Size:
    """Panels side by side, each ``HEATMAP_PANEL`` pixels, sharing one colour scale."""
    size = (HEATMAP_PANEL[0] * len(panels), HEATMAP_PANEL[1])
    fig = _figure(size)
    fig.set_layout_engine("constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    low = min(float(np.nanmin(p.values)) for p in panels)
    high = max(float(np.nanmax(p.values)) for p in panels)
    image = None
    for ax, p in zip(axes, panels):
        rows, cols = np.asarray(p.rows, float), np.asarray(p.cols, float)
        extent = (*_edges(cols), *_edges(rows))        # cells centred on the grid values
        image = ax.imshow(np.asarray(p.values, float), origin="lower", aspect="auto",
                          extent=extent, vmin=low, vmax=high, cmap="viridis",
                          interpolation="nearest")
        if p.mark is not None:
            ax.plot([p.mark[1]], [p.mark[0]], marker="o", markersize=10, markerfacecolor="none",
                    markeredgecolor="red", markeredgewidth=2)
        ax.set_title(p.title, fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    fig.colorbar(image, ax=list(axes), label=colorbar, shrink=0.9)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path, size)


def attention_grid_size(num_views: int, num_rows: int) -> Size:
    """Pixel size of :func:`attention_grid` for ``num_views`` columns and ``num_rows`` rows."""
    return ROW_LABEL_WIDTH + TILE * num_views, TITLE_HEIGHT + TILE * num_rows


def attention_grid(path: Path, images: np.ndarray, overlays: Sequence[Tuple[str, np.ndarray]],
                   column_titles: Sequence[str], title: str, alpha: float = 0.5,
                   fmt: str = "png") -> Size:
    """images [V, S, S] in [0, 1] (grey) -> a grid with one row per overlay (label, maps
    [V, S, S] in [0, 1], drawn over the images with a colour map), one column per view.
    ``fmt``: matplotlib's file format (png, jpeg, pdf, svg)."""
    v = images.shape[0]
    size = attention_grid_size(v, len(overlays))
    fig = _figure(size)
    w, h = size
    for r, (label, maps) in enumerate(overlays):
        bottom = 1.0 - (TITLE_HEIGHT + TILE * (r + 1)) / h
        fig.text(ROW_LABEL_WIDTH / 2 / w, bottom + TILE / 2 / h, label, rotation=90,
                 ha="center", va="center", fontsize=8)
        for c in range(v):
            ax = fig.add_axes(((ROW_LABEL_WIDTH + TILE * c + 4) / w, bottom + 4 / h,
                               (TILE - 8) / w, (TILE - 22) / h))
            ax.imshow(images[c], cmap="gray", vmin=0.0, vmax=1.0, interpolation="bilinear")
            ax.imshow(maps[c], cmap="jet", alpha=alpha, vmin=0.0, vmax=1.0,
                      interpolation="bilinear")
            ax.set_axis_off()
            if r == 0:
                ax.set_title(column_titles[c], fontsize=7)
    fig.suptitle(title, fontsize=9, y=1.0 - 6 / h, va="top")
    return _save(fig, path, size, fmt)
