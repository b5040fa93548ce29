"""Pictures of part segmentations: shapes coloured by part (PNG, matplotlib Agg) and
coloured ``.ply`` files (ASCII, with a ``part`` property; Open3D and MeshLab read them)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..core.atomic import write_bytes

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
    return write_bytes(path, ("\n".join(head + rows) + "\n").encode("ascii"))


def _scatter(ax, points: np.ndarray, labels: np.ndarray, title: str) -> None:
    ax.scatter(points[:, 0], points[:, 2], points[:, 1], c=part_colours(labels) / 255.0, s=2,
               depthshade=False)
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()
    ax.view_init(elev=20, azim=-60)


def shape_iou(pred: np.ndarray, true: np.ndarray, num_parts: int) -> float:
    """One shape's mIoU in percent over its category's parts (local indices), as the
    evaluation counts it (:func:`~.metrics.shape_ious`: a part absent from both is 1)."""
    from .metrics import shape_ious

    return 100.0 * float(shape_ious(np.asarray(pred)[None], np.asarray(true)[None], num_parts).mean())


def draw_parts(path, points: np.ndarray, panels: Sequence[tuple], names: Sequence[str],
               title: str = "") -> Path:
    """One row of 3-D scatters of the same ``points`` [N, 3], one per ``(caption, labels)``
    panel, with a legend of the part ``names`` that got points in some panel."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.2 * len(panels), 3.6), dpi=100)
    FigureCanvasAgg(fig)
    for i, (caption, labels) in enumerate(panels):
        _scatter(fig.add_subplot(1, len(panels), i + 1, projection="3d"), points,
                 np.asarray(labels), caption)
    used = sorted({int(k) for _, labels in panels for k in np.unique(labels)})
    return _save_with_legend(fig, names, title, path, used)


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
            local_pred, local_true = pred[i] - offsets[c], dataset.pid[i] - offsets[c]
            iou = shape_iou(local_pred, local_true, len(dataset.parts[name]))
            written.append(draw_parts(
                folder / f"{name}_{k}.png", pts,
                [("predicted", local_pred), ("true", local_true)],
                dataset.parts[name], f"{name}, test shape {dataset.index[i]}: mIoU {iou:.1f}%"))
    return written


def object_box(image: np.ndarray, margin: int = 4) -> tuple:
    """(top, bottom, left, right) of the pixels an object covers (non-zero), with a margin;
    the whole image when nothing is covered."""
    rows, cols = np.nonzero(image > 0)
    if rows.size == 0:
        return 0, image.shape[0], 0, image.shape[1]
    return (max(rows.min() - margin, 0), min(rows.max() + margin + 1, image.shape[0]),
            max(cols.min() - margin, 0), min(cols.max() + margin + 1, image.shape[1]))


def draw_view_maps(path, images: np.ndarray, part_maps: np.ndarray, names: Sequence[str],
                   title: str = "", view_titles: Optional[Sequence[str]] = None) -> Path:
    """Per view (named by ``view_titles``, e.g. its angles): the projected depth image (top)
    and the part each covered pixel's dense logits choose, over it (bottom; background left
    blank), each cropped to the object. images [V, S, S] in [0, 1], part_maps [V, S, S] local
    indices."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    v = images.shape[0]
    fig = Figure(figsize=(2.0 * v, 4.6), dpi=100)
    FigureCanvasAgg(fig)
    shown = set()
    for k in range(v):
        t, b, l, r = object_box(images[k])
        image, parts = images[k][t:b, l:r], part_maps[k][t:b, l:r]
        covered = image > 0
        overlay = np.zeros((*image.shape, 4))
        overlay[..., :3] = part_colours(parts) / 255.0
        overlay[..., 3] = np.where(covered, 0.7, 0.0)           # background: blank
        shown |= {int(x) for x in np.unique(parts[covered])}
        top = fig.add_subplot(2, v, k + 1)
        top.imshow(image, cmap="gray", vmin=0, vmax=1)
        top.set_title(view_titles[k] if view_titles else f"view {k}", fontsize=9)
        bottom = fig.add_subplot(2, v, v + k + 1)
        bottom.imshow(image, cmap="gray", vmin=0, vmax=1)
        bottom.imshow(overlay)
        for ax in (top, bottom):
            ax.set_axis_off()
    return _save_with_legend(fig, names, title, path, sorted(shown))


def _save_with_legend(fig, names: Sequence[str], title: str, path,
                      used: Optional[Sequence[int]] = None) -> Path:
    """A legend of the part colours under ``fig`` (only the parts in ``used``, default all),
    its title, then the file at ``path`` in the command's figure format."""
    from matplotlib.patches import Patch

    keep = [k for k in range(len(names)) if used is None or k in used]
    fig.legend(handles=[Patch(color=part_colours(np.array([k]))[0] / 255.0, label=names[k])
                        for k in keep], loc="lower center", ncol=max(len(keep), 1),
               fontsize=9, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    from ..report import plots

    width, height = fig.get_size_inches()
    path = plots.figure_name(Path(path))               # the command's figure format
    plots._save(fig, path, (int(width * plots.DPI), int(height * plots.DPI)))
    return path
