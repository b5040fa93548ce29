"""Pictures of part segmentations: shapes coloured by part (PNG, matplotlib Agg) and
coloured ``.ply`` files (ASCII, with a ``part`` property; Open3D and MeshLab read them)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

#: one colour per local part index (RGB 0..255), enough for ShapeNetPart's 6 parts and more
PALETTE = np.array([[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40],
                    [148, 103, 189], [140, 86, 75], [227, 119, 194], [127, 127, 127],
                    [188, 189, 34], [23, 190, 207]], dtype=np.uint8)


def part_colours(labels: np.ndarray) -> np.ndarray:
    """labels [N] local part indices -> [N, 3] uint8 colours (cycling the palette)."""
    return PALETTE[np.asarray(labels) % len(PALETTE)]


def write_ply(path, points: np.ndarray, labels: np.ndarray) -> Path:
    """points [N, 3], labels [N] local part indices -> an ASCII PLY with x y z, red green blue
    and part per vertex."""
    path = Path(path)
    pts, lab = np.asarray(points, np.float32), np.asarray(labels, np.int64)
    col = part_colours(lab)
    head = ["ply", "format ascii 1.0", f"element vertex {len(pts)}", "property float x",
            "property float y", "property float z", "property uchar red", "property uchar green",
            "property uchar blue", "property int part", "end_header"]
    rows = [f"{x:.6f} {y:.6f} {z:.6f} {r} {g} {b} {p}"
            for (x, y, z), (r, g, b), p in zip(pts.tolist(), col.tolist(), lab.tolist())]
    path.write_text("\n".join(head + rows) + "\n")
    return path


def _scatter(ax, points: np.ndarray, labels: np.ndarray, title: str) -> None:
    ax.scatter(points[:, 0], points[:, 2], points[:, 1], c=part_colours(labels) / 255.0, s=2,
               depthshade=False)
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()
    ax.view_init(elev=20, azim=-60)


def draw_parts(path, points: np.ndarray, panels: Sequence[tuple], names: Sequence[str],
               title: str = "") -> Path:
    """One row of 3-D scatters of the same ``points`` [N, 3], one per ``(caption, labels)``
    panel, with a legend of the part ``names``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.2 * len(panels), 3.6), dpi=100)
    FigureCanvasAgg(fig)
    for i, (caption, labels) in enumerate(panels):
        _scatter(fig.add_subplot(1, len(panels), i + 1, projection="3d"), points,
                 np.asarray(labels), caption)
    return _save_with_legend(fig, names, title, path)


def draw_shapes(out, dataset, pred: np.ndarray, per_category: int,
                offsets: Optional[Sequence[int]] = None) -> list:
    """``pictures/<category>.png``: the first ``per_category`` test shapes of each category,
    predicted and true parts side by side; -> the files written."""
    from ..datasets.shapenetpart import PART_OFFSETS

    offsets = PART_OFFSETS if offsets is None else offsets
    folder = Path(out) / "pictures"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for c in np.unique(dataset.labels):
        name = dataset.classnames[c]
        for k, i in enumerate(np.flatnonzero(dataset.labels == c)[:per_category]):
            pts = dataset.points([i])[0].numpy()
            written.append(draw_parts(
                folder / f"{name}_{k}.png", pts,
                [("predicted", pred[i] - offsets[c]), ("true", dataset.pid[i] - offsets[c])],
                dataset.parts[name], f"{name}, test shape {dataset.index[i]}"))
    return written


def draw_view_maps(path, images: np.ndarray, part_maps: np.ndarray, names: Sequence[str],
                   title: str = "") -> Path:
    """Per view: the projected depth image (top) and the part each pixel's dense logits
    choose, over it (bottom). images [V, S, S] in [0, 1], part_maps [V, S, S] local indices."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    v = images.shape[0]
    fig = Figure(figsize=(1.8 * v, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    for k in range(v):
        top = fig.add_subplot(2, v, k + 1)
        top.imshow(images[k], cmap="gray", vmin=0, vmax=1)
        top.set_title(f"view {k}", fontsize=9)
        bottom = fig.add_subplot(2, v, v + k + 1)
        bottom.imshow(images[k], cmap="gray", vmin=0, vmax=1)
        bottom.imshow(part_colours(part_maps[k]), alpha=0.55)
        for ax in (top, bottom):
            ax.set_axis_off()
    return _save_with_legend(fig, names, title, path)


def _save_with_legend(fig, names: Sequence[str], title: str, path) -> Path:
    """A legend of the part colours under ``fig``, its title, then the file at ``path``."""
    from matplotlib.patches import Patch

    fig.legend(handles=[Patch(color=part_colours(np.array([k]))[0] / 255.0, label=n)
                        for k, n in enumerate(names)], loc="lower center", ncol=len(names),
               fontsize=9, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    from ..report import plots

    width, height = fig.get_size_inches()
    path = plots.figure_name(Path(path))               # the command's figure format
    plots._save(fig, path, (int(width * plots.DPI), int(height * plots.DPI)))
    return path
