"""PNG figures with matplotlib, headless: lines, bars, heatmaps and attention overlays.

Figures are built with matplotlib's object API on the Agg canvas (no pyplot, no display, no
global backend switch), at a fixed layout size (``size``: pixels at :data:`DPI`, i.e. inches x
100). Where they are saved, and how, is the command's choice (``--figure-format png|pdf|svg``,
``--dpi N``): :func:`figure_output` sets both for the figures written inside it (a context
variable, so threads and nested runs keep their own); every file takes its format's suffix
(:func:`figure_name`) and a PNG is rendered at ``dpi`` (default :data:`PNG_DPI`), so a drawer
returns the PNG's true pixel size (``size`` x dpi / 100).
"""
from __future__ import annotations

import contextlib
import contextvars
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence, Tuple, Union

import numpy as np

from ..core.atomic import save_figure

DPI = 100                # layout: figure sizes are given in pixels at this resolution
PNG_DPI = 150            # what a PNG is rendered at unless the command says otherwise
FORMATS = ("png", "pdf", "svg")


@dataclass(frozen=True)
class FigureOutput:
    """The format figures are written in and the resolution of raster ones."""

    fmt: str = "png"
    dpi: int = PNG_DPI

    def __post_init__(self) -> None:
        if self.fmt not in FORMATS:
            raise ValueError(f"figure format {self.fmt!r} is not one of {', '.join(FORMATS)}")
        if not 10 <= int(self.dpi) <= 1200:
            raise ValueError(f"figure dpi {self.dpi} is outside 10..1200")


_OUTPUT: contextvars.ContextVar[FigureOutput] = contextvars.ContextVar(
    "figure_output", default=FigureOutput())


@contextlib.contextmanager
def figure_output(fmt: Optional[str] = None, dpi: Optional[int] = None) -> Iterator[FigureOutput]:
    """Figures written inside are ``fmt`` files (png, pdf, svg) at ``dpi`` (None: the
    enclosing choice, else png at :data:`PNG_DPI`)."""
    current = _OUTPUT.get()
    chosen = FigureOutput(fmt or current.fmt, int(dpi or current.dpi))
    token = _OUTPUT.set(chosen)
    try:
        yield chosen
    finally:
        _OUTPUT.reset(token)


def current_output() -> FigureOutput:
    return _OUTPUT.get()


def figure_name(name: Union[str, Path]) -> Union[str, Path]:
    """``name`` with the suffix of the current figure format (``curves.png`` -> ``curves.pdf``
    inside ``figure_output("pdf")``); the same type as given."""
    fmt = _OUTPUT.get().fmt
    if isinstance(name, Path):
        return name.with_suffix(f".{fmt}")
    return str(Path(name).with_suffix(f".{fmt}"))


def is_figure(name: str) -> bool:
    return Path(name).suffix.lstrip(".").lower() in FORMATS
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


def _save(fig, path: Path, size: Size, fmt: Optional[str] = None, dpi: Optional[int] = None
          ) -> Size:
    """Save ``fig`` at ``path``: as ``fmt`` when given (the path as it is), else in the current
    :func:`figure_output` format (the path's suffix replaced), rendered at ``dpi`` (default:
    the current choice). -> the file's pixel size (``size`` scaled to the dpi; for a vector
    format, the size a raster at that dpi would have)."""
    path = Path(path)
    out = _OUTPUT.get()
    if fmt is None:
        fmt, path = out.fmt, figure_name(path)
    dpi = int(dpi or out.dpi)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path, dpi=dpi, format=fmt)      # all or nothing; a full disk is named
    if fmt in ("pdf", "svg", "eps", "ps"):         # no pixels: the size a raster would have
        return int(round(size[0] * dpi / DPI)), int(round(size[1] * dpi / DPI))
    if fmt == "png":
        with open(path, "rb") as f:              # the PNG header's width and height
            head = f.read(24)
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    from PIL import Image

    with Image.open(path) as image:               # jpeg, tiff, ...
        return image.size


def view_name(index: int, angles: Sequence[float], tilt: float = 0.0, sep: str = " ") -> str:
    """A view named by its Euler angles (radians in, whole degrees out):
    ``view 3 (270°, 0°, 90°)``, with `` tilt 20°`` when the view is tilted; ``sep`` goes
    between the index and the angles (``"\n"`` for narrow tick labels)."""
    text = f"view {index}{sep}(" + ", ".join(f"{math.degrees(a):.0f}°" for a in angles) + ")"
    return text + (f" tilt {math.degrees(tilt):.0f}°" if tilt else "")


def legend_columns(names: Sequence[str], most: int = 4, width: int = 80) -> int:
    """Columns for a legend under a figure: as many as fit ``width`` characters a row (the
    longest name sets the column width), at most ``most``."""
    longest = max((len(str(n)) for n in names), default=1) + 6       # marker and spacing
    return max(1, min(len(names), most, width // longest))


def _finite(values) -> np.ndarray:
    flat = np.array([np.nan if v is None else v for v in values], dtype=float).ravel()
    return flat[np.isfinite(flat)]


def near_data_limits(values, include_zero: bool = False, min_pad: float = 0.05
                     ) -> Tuple[float, float]:
    """Axis limits that start near the data (so a one-point difference shows), with room above
    for value labels (at least ``min_pad``: 1 for percentages). Non-negative data never gets
    a negative lower limit; ``include_zero`` keeps 0 inside (signed quantities such as
    accuracy drops)."""
    data = _finite(values)
    if data.size == 0:
        return 0.0, 1.0
    low, high = float(data.min()), float(data.max())
    if include_zero:
        low, high = min(low, 0.0), max(high, 0.0)
    span = high - low
    pad = max(0.15 * span, 0.05 * max(abs(high), abs(low)), min_pad)
    bottom = low - pad
    if low >= 0 and bottom < 0:
        bottom = 0.0
    return bottom, high + pad


Series = Dict[str, Sequence[Optional[float]]]


def _side_by_side(size: Size, panels: int) -> Size:
    """A figure's size for ``panels`` panels in a row (a second metric: 1.6 times as wide)."""
    return size if panels == 1 else (int(size[0] * 1.6), size[1])


def _panel_figure(size: Size, panels: int):
    """(figure, axes) of ``panels`` panels in a row, constrained layout."""
    fig = _figure(size)
    fig.set_layout_engine("constrained")
    return fig, fig.subplots(1, panels, squeeze=False)[0]


def _title_and_legend(fig, axes, title: str, names: Sequence[str]) -> None:
    """The title (over the figure when there are several panels) and one legend under it, from
    the first panel (the others draw the same names)."""
    if len(axes) > 1:
        fig.suptitle(title, fontsize=11)
    else:
        axes[0].set_title(title, fontsize=11)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center",
               ncols=legend_columns(list(names)), fontsize=9, frameon=False)


def lines_figure(x: Sequence[float], series: Series, xlabel: str, ylabel: str, title: str,
                 size: Size = LINES_SIZE, styles: Optional[Dict[str, dict]] = None,
                 second: Optional[Tuple[str, Series]] = None):
    """The figure of :func:`lines` (not saved): for tests and callers that add to it."""
    panels = [(ylabel, series)] + ([second] if second else [])
    fig, axes = _panel_figure(size, len(panels))
    for ax, (label, panel) in zip(axes, panels):
        for name, ys in panel.items():
            values = np.array([np.nan if y is None else y for y in ys], dtype=float)
            style = {"marker": "o", **(styles or {}).get(name, {})}
            ax.plot(list(x), values, label=name, **style)
        ax.set_xticks(list(x))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    _title_and_legend(fig, axes, title, list(series))
    return fig


def lines(path: Path, x: Sequence[float], series: Series, xlabel: str, ylabel: str, title: str,
          size: Size = LINES_SIZE, styles: Optional[Dict[str, dict]] = None,
          second: Optional[Tuple[str, Series]] = None) -> Size:
    """One marked line per series over ``x`` (None values are gaps); ``styles``: matplotlib
    keywords per series name (e.g. a dashed line drawn on top of the others); ``second``:
    (ylabel, series) of another metric in a panel beside the first, same names and styles
    (the figure is then 1.6 times as wide)."""
    size = _side_by_side(size, 2 if second else 1)
    return _save(lines_figure(x, series, xlabel, ylabel, title, size, styles, second), path,
                 size)


Bands = Dict[str, Tuple[Sequence[float], Sequence[float], Sequence[float]]]


def bands(path: Path, series: Bands, references: Dict[str, float], xlabel: str, ylabel: str,
          title: str, size: Size = LINES_SIZE,
          second: Optional[Tuple[str, Bands, Dict[str, float]]] = None) -> Size:
    """A line with a +-std band per series ``{name: (x, mean, std)}`` on a log2 x axis, and a
    dashed horizontal line per reference value ``{name: y}``. ``second``: (ylabel, series,
    references) of another metric, drawn in a panel beside the first with the same names,
    colours and legend (e.g. mAcc beside top-1)."""
    panels = [(ylabel, series, references)] + ([second] if second else [])
    size = _side_by_side(size, len(panels))
    fig, axes = _panel_figure(size, len(panels))
    xs = sorted({x for _, panel, _ in panels for xv, _, _ in panel.values() for x in xv})
    for ax, (label, panel, refs) in zip(axes, panels):
        for name, (x, mean, std) in panel.items():
            mean, std = np.asarray(mean, dtype=float), np.asarray(std, dtype=float)
            line, = ax.plot(list(x), mean, marker="o", label=name)
            ax.fill_between(list(x), mean - std, mean + std, color=line.get_color(), alpha=0.2)
        for i, (name, y) in enumerate(refs.items()):
            ax.axhline(y, linestyle="--", linewidth=1, color=("0.55", "0.15")[i % 2], label=name)
        if xs:
            ax.set_xscale("log", base=2)
            ax.set_xticks(xs, [f"{x:g}" for x in xs])
            ax.set_xlabel(xlabel)
        else:                               # references only (e.g. a released checkpoint)
            ax.set_xticks([])
            ax.set_xlabel(f"{xlabel}: nothing trained here, references only")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    _title_and_legend(fig, axes, title, [*series, *references])
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
    ax.set_title(title, fontsize=11)
    return _save(fig, path, size)


CURVES_SIZE = (800, 560)


def training_curves_figure(epochs: Sequence[int], loss: Sequence[Optional[float]],
                           accuracies: Dict[str, Sequence[Optional[float]]],
                           selected: Optional[Tuple[int, float]], title: str,
                           size: Size = CURVES_SIZE):
    """The figure of :func:`training_curves` (not saved)."""
    fig = _figure(size)
    fig.set_layout_engine("constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    xs = list(epochs)
    for name, values in accuracies.items():
        ys = np.array([np.nan if v is None else v for v in values], dtype=float)
        top.plot(xs, ys, marker="o", markersize=3, label=name)
    if selected is not None:
        epoch, value = selected
        top.axvline(epoch, color="0.3", linestyle=":", linewidth=1)
        top.plot([epoch], [value], linestyle="none", marker="*", markersize=16, color="tab:red",
                 markeredgecolor="white", zorder=5, clip_on=False,
                 label=f"selected: epoch {epoch} (validation {value:.1f}%)")
    top.set_ylabel("top-1 (%)")
    top.grid(alpha=0.3)
    top.legend(fontsize=9, loc="best")
    top.set_title(title, fontsize=11)
    ys = np.array([np.nan if v is None else v for v in loss], dtype=float)
    bottom.plot(xs, ys, color="tab:gray", marker="o", markersize=3)
    bottom.set_ylabel("train loss")
    bottom.set_xlabel("epoch (0: the untrained model)" if 0 in xs else "epoch")
    bottom.grid(alpha=0.3)
    from matplotlib.ticker import MaxNLocator

    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))      # whole epochs
    for ax in (top, bottom):
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")   # 12.30 reads as 12.30
    if selected is not None:
        bottom.axvline(selected[0], color="0.3", linestyle=":", linewidth=1)
    return fig


def training_curves(path: Path, epochs: Sequence[int], loss: Sequence[Optional[float]],
                    accuracies: Dict[str, Sequence[Optional[float]]],
                    selected: Optional[Tuple[int, float]], title: str,
                    size: Size = CURVES_SIZE) -> Size:
    """Accuracy curves (``{name: values}`` per epoch, None: not measured) over the training
    loss, with a star and a dotted line at ``selected`` = (epoch, validation accuracy)."""
    return _save(training_curves_figure(epochs, loss, accuracies, selected, title, size),
                 path, size)


def _value_text(value: float, fmt: str) -> str:
    return "" if not np.isfinite(value) else format(value, fmt)


def dots_suit(values, include_zero: bool = False) -> bool:
    """Whether grouped values differ so little (span under 10% of the largest) that a dot plot
    on an axis near the data shows them better than bars from 0 (never for signed values)."""
    data = _finite(values)
    if include_zero or data.size < 2 or data.min() < 0:
        return False
    return float(data.max() - data.min()) < 0.1 * float(np.abs(data).max())


def _metric_pairs(names: Sequence[str]) -> Dict[str, tuple]:
    """Where the group names read "<method>, <metric>" with two metrics (e.g. top-1 and mAcc):
    {name: (the method's colour, whether it is the second metric)}, so a method's two bars
    share a colour and the second metric's is hatched; otherwise {} (default colours)."""
    parts = [n.rsplit(", ", 1) for n in names]
    if not parts or any(len(p) != 2 for p in parts):
        return {}
    metrics = list(dict.fromkeys(p[1] for p in parts))
    methods = list(dict.fromkeys(p[0] for p in parts))
    if len(metrics) != 2 or len(parts) != len(methods) * 2:
        return {}
    from matplotlib import rcParams

    colours = rcParams["axes.prop_cycle"].by_key()["color"]
    return {n: (colours[methods.index(p[0]) % len(colours)], p[1] == metrics[1])
            for n, p in zip(names, parts)}


def bars_figure(labels: Sequence[str], groups: Dict[str, Sequence[Optional[float]]],
                ylabel: str, title: str, size: Size = BARS_SIZE, horizontal: bool = False,
                value_format: str = ".1f", include_zero: bool = False, note: str = "",
                min_pad: float = 0.05):
    """The figure of :func:`bars` (not saved)."""
    fig = _figure(size)
    fig.set_layout_engine("constrained")
    ax = fig.add_subplot()
    n = max(len(groups), 1)
    width = 0.8 / n
    pos = np.arange(len(labels), dtype=float)
    label_size = 9
    every = [v for values in groups.values() for v in values]
    dots = dots_suit(every, include_zero)
    missing = []                                  # positions of None bars: "n/a" at the base
    styles = _metric_pairs(list(groups))
    for i, (name, values) in enumerate(groups.items()):
        vals = np.array([np.nan if v is None else v for v in values], dtype=float)
        offset = pos - 0.4 + width * (i + 0.5)
        texts = [_value_text(v, value_format) for v in vals]
        colour, second = styles.get(name, (None, False))
        if dots:                                  # a dot plot: small differences, axis near them
            xy = (vals, offset) if horizontal else (offset, vals)
            ax.plot(*xy, linestyle="none", marker="o", markersize=8, label=name, color=colour,
                    markerfacecolor="white" if second else colour)
            for o, v, t in zip(offset, vals, texts):
                if t:
                    ax.annotate(t, (v, o) if horizontal else (o, v), textcoords="offset points",
                                xytext=(6, 0) if horizontal else (0, 7), fontsize=label_size,
                                ha="left" if horizontal else "center",
                                va="center" if horizontal else "bottom")
        else:                                     # bars from 0
            look = ({"color": colour} if not second else
                    {"facecolor": "white", "edgecolor": colour, "hatch": "///"}) if colour else {}
            if horizontal:
                bars_ = ax.barh(offset, vals, height=width, label=name, **look)
            else:
                bars_ = ax.bar(offset, vals, width=width, label=name, **look)
            ax.bar_label(bars_, labels=texts, padding=2, fontsize=label_size)
        missing += [float(o) for o, v in zip(offset, vals) if not np.isfinite(v)]
    limits = near_data_limits(every, include_zero or not dots, min_pad)
    if horizontal:
        ax.set_yticks(pos, list(labels), fontsize=9)
        ax.invert_yaxis()
        ax.set_xlabel(ylabel)
        ax.set_xlim(*limits)
        ax.grid(axis="x", alpha=0.3)
        if include_zero:
            ax.axvline(0, color="black", linewidth=0.8)
        for o in missing:
            ax.text(limits[0], o, " n/a", ha="left", va="center", fontsize=label_size,
                    color="0.4")
    else:
        many = len(labels) > 6 and not any("\n" in label for label in labels)
        ax.set_xticks(pos, list(labels), fontsize=9, rotation=30 if many else 0,
                      ha="right" if many else "center")
        ax.set_ylabel(ylabel)
        ax.set_ylim(*limits)
        ax.grid(axis="y", alpha=0.3)
        if include_zero:
            ax.axhline(0, color="black", linewidth=0.8)
        for o in missing:
            ax.text(o, limits[0], "n/a", ha="center", va="bottom", fontsize=label_size,
                    color="0.4")
    if dots:
        note = "; ".join(x for x in (note, "dot plot: the axis starts near the values, not at 0")
                         if x)
    ax.set_title(title + (f"\n{note}" if note else ""), fontsize=11)
    if len(groups) > 1:
        fig.legend(loc="outside lower center", ncols=legend_columns(list(groups), 3), fontsize=9,
                   frameon=False)
    return fig


def bars(path: Path, labels: Sequence[str], groups: Dict[str, Sequence[Optional[float]]],
         ylabel: str, title: str, size: Size = BARS_SIZE, horizontal: bool = False,
         value_format: str = ".1f", include_zero: bool = False, note: str = "",
         min_pad: float = 0.05) -> Size:
    """Grouped bars: one group per label, one bar per entry of ``groups`` (None: no bar), each
    labelled with its value (``value_format``); bars start at 0 (``include_zero`` for signed
    values, with a line at 0), or, where the values differ by under 10% of the largest
    (:func:`dots_suit`), a dot plot on an axis near them, said in the title.
    ``note``: a second title line (e.g. what the sign means); ``min_pad``: least room
    around the data on the value axis (1.0 for percentages). A missing bar reads "n/a"."""
    fig = bars_figure(labels, groups, ylabel, title, size, horizontal, value_format,
                      include_zero, note, min_pad)
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


def heatmaps_figure(panels: Sequence[Heatmap], ylabel: str, xlabel: str, title: str,
                    colorbar: str):
    """The figure of :func:`heatmaps` (not saved)."""
    size = (HEATMAP_PANEL[0] * len(panels), HEATMAP_PANEL[1])
    fig = _figure(size)
    fig.set_layout_engine("constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    low = min(float(np.nanmin(p.values)) for p in panels)
    high = max(float(np.nanmax(p.values)) for p in panels)
    if high <= low:             # a flat surface: one colour (the middle of the map), not two
        low, high = low - 1.0, high + 1.0
    image = None
    for ax, p in zip(axes, panels):
        rows, cols = np.asarray(p.rows, float), np.asarray(p.cols, float)
        extent = (*_edges(cols), *_edges(rows))        # cells centred on the grid values
        image = ax.imshow(np.asarray(p.values, float), origin="lower", aspect="auto",
                          extent=extent, vmin=low, vmax=high, cmap="viridis",
                          interpolation="nearest")
        if p.mark is not None:
            # drawn over the frame (clip_on=False) so that a corner choice stays whole
            ax.plot([p.mark[1]], [p.mark[0]], linestyle="none", marker="X", markersize=15,
                    markerfacecolor="red", markeredgecolor="white", markeredgewidth=1.5,
                    clip_on=False, zorder=5,
                    label=f"chosen: {ylabel}={p.mark[0]:.4g}, {xlabel}={p.mark[1]:.4g}")
            ax.legend(loc="upper right", fontsize=9, framealpha=0.9)
        ax.set_title(p.title, fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    fig.colorbar(image, ax=list(axes), label=colorbar, shrink=0.9)
    fig.suptitle(title, fontsize=11)
    return fig


def heatmaps(path: Path, panels: Sequence[Heatmap], ylabel: str, xlabel: str, title: str,
             colorbar: str) -> Size:
    """Panels side by side, each ``HEATMAP_PANEL`` pixels, sharing one colour scale; a
    panel's ``mark`` is a red cross, its value in the panel's legend."""
    size = (HEATMAP_PANEL[0] * len(panels), HEATMAP_PANEL[1])
    return _save(heatmaps_figure(panels, ylabel, xlabel, title, colorbar), path, size)


#: perceptually uniform (lightness rises with the value), readable over a grey image
ATTENTION_CMAP = "inferno"
COLORBAR_WIDTH = 90      # attention grid: pixels right of the tiles (the colour bar)
ATTENTION_SCALE = "attention to the class, scaled per view:\n0 = the view's minimum, 1 = its maximum"


def attention_grid_size(num_views: int, num_rows: int, dpi: Optional[int] = None) -> Size:
    """Pixel size of :func:`attention_grid` for ``num_views`` columns and ``num_rows`` rows,
    as a raster file at ``dpi`` (default: the current figure output's)."""
    w, h = _attention_layout(num_views, num_rows)
    dpi = int(dpi or _OUTPUT.get().dpi)
    return int(round(w * dpi / DPI)), int(round(h * dpi / DPI))


def _attention_layout(num_views: int, num_rows: int) -> Size:
    """The layout size of :func:`attention_grid` (pixels at :data:`DPI`)."""
    return ROW_LABEL_WIDTH + TILE * num_views + COLORBAR_WIDTH, TITLE_HEIGHT + TILE * num_rows


def attention_grid_figure(images: np.ndarray, overlays: Sequence[Tuple[str, np.ndarray]],
                          column_titles: Sequence[str], title: str, alpha: float = 0.5,
                          scale: str = ATTENTION_SCALE):
    """The figure of :func:`attention_grid` (not saved)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    v = images.shape[0]
    size = _attention_layout(v, len(overlays))
    fig = _figure(size)
    w, h = size
    for r, (label, maps) in enumerate(overlays):
        bottom = 1.0 - (TITLE_HEIGHT + TILE * (r + 1)) / h
        fig.text(ROW_LABEL_WIDTH / 2 / w, bottom + TILE / 2 / h, label, rotation=90,
                 ha="center", va="center", fontsize=9)
        for c in range(v):
            ax = fig.add_axes(((ROW_LABEL_WIDTH + TILE * c + 4) / w, bottom + 4 / h,
                               (TILE - 8) / w, (TILE - 22) / h))
            ax.imshow(images[c], cmap="gray", vmin=0.0, vmax=1.0, interpolation="bilinear")
            ax.imshow(maps[c], cmap=ATTENTION_CMAP, alpha=alpha, vmin=0.0, vmax=1.0,
                      interpolation="bilinear")
            ax.set_axis_off()
            if r == 0:
                ax.set_title(column_titles[c], fontsize=9)
    grid_height = TILE * len(overlays)
    bar = fig.add_axes(((ROW_LABEL_WIDTH + TILE * v + 10) / w, 14 / h,
                        14 / w, (grid_height - 28) / h))
    fig.colorbar(ScalarMappable(Normalize(0.0, 1.0), cmap=ATTENTION_CMAP), cax=bar)
    bar.set_ylabel(scale, fontsize=9)
    bar.tick_params(labelsize=9)
    fig.suptitle(title, fontsize=9, y=1.0 - 6 / h, va="top")
    return fig


def attention_grid(path: Path, images: np.ndarray, overlays: Sequence[Tuple[str, np.ndarray]],
                   column_titles: Sequence[str], title: str, alpha: float = 0.5,
                   scale: str = ATTENTION_SCALE, fmt: str = "png") -> Size:
    """images [V, S, S] in [0, 1] (grey) -> a grid with one row per overlay (label, maps
    [V, S, S] in [0, 1], drawn over the images with a colour map), one column per view, and
    a colour bar stating the maps' scaling (``scale``). ``fmt``: matplotlib's file format
    (png, jpeg, pdf, svg)."""
    size = _attention_layout(images.shape[0], len(overlays))
    fig = attention_grid_figure(images, overlays, column_titles, title, alpha, scale)
    return _save(fig, path, size, fmt)


def confusion_figure(classnames: Sequence[str], matrix, title: str, what: str = "class"):
    """The figure of :func:`confusion` (not saved) and its size; ``what``: the word for a row
    or column ("class", or "part" for a segmentation)."""
    counts = np.asarray(matrix, dtype=float)
    k = len(classnames)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.full_like(counts, np.nan), where=rows > 0) * 100.0
    side = int(min(max(360 + 18 * k, 480), 1600))
    size = (side + 120, side)
    fig = _figure(size)
    fig.set_layout_engine("constrained")
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="viridis", vmin=0.0, vmax=100.0, interpolation="nearest")
    ticks = 9 if k <= 20 else 7 if k <= 40 else 5
    ax.set_xticks(range(k), list(classnames), rotation=90, fontsize=ticks)
    ax.set_yticks(range(k), list(classnames), fontsize=ticks)
    if k <= 15:
        for i in range(k):
            for j in range(k):
                if counts[i, j]:
                    ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=9,
                            color="white" if share[i, j] < 60 else "black")
    ax.set_xlabel(f"predicted {what}")
    ax.set_ylabel(f"true {what}")
    ax.set_title(title, fontsize=11)
    fig.colorbar(image, ax=ax, label=f"share of the true {what} (%)", shrink=0.8)
    return fig, size


def confusion(path: Path, classnames: Sequence[str], matrix, title: str, fmt: str = "png",
              dpi: Optional[int] = None, what: str = "class") -> Size:
    """A confusion matrix (rows: true classes, normalised to percent of each; counts written
    in the cells up to 15 classes; ``what``: "class", or "part" for a segmentation)."""
    fig, size = confusion_figure(classnames, matrix, title, what)
    return _save(fig, path, size, fmt, dpi)
