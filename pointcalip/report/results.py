"""Run results on disk: where they go, what makes them rerunnable, and how they are written.

Every command's result is a dataclass with ``to_dict()`` (-> ``results.json``) and
``to_markdown()`` (-> ``results.md``), and carries a :class:`RunInfo` recording what is needed
to rerun it: the command line, the date, the package versions, the device and precision, and
the data folder.
"""
from __future__ import annotations

import hashlib
import json
import platform
import shlex
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Optional, Sequence, Tuple

from ..core.atomic import write_bytes
from ..backbones.families import short_name
from ..core.paths import slug

#: config keys that change where or how fast a run goes, never its numbers
NOT_IN_RUN_NAME = ("name", "cache_dir", "output_dir", "device", "engine", "batch_size",
                   "download")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


@dataclass
class RunInfo:
    """How a result was produced (enough to rerun it)."""

    command_line: str
    date: str
    versions: dict
    device: str
    precision: str
    data_root: str
    host: str = field(default_factory=socket.gethostname)

    @classmethod
    def collect(cls, device, precision: str, data_root, argv: Optional[Sequence[str]] = None
                ) -> "RunInfo":
        import numpy
        import torch

        from .. import __version__

        device_name = str(device)
        if str(device).startswith("cuda") and torch.cuda.is_available():
            device_name += f" ({torch.cuda.get_device_name(torch.device(device))})"
        return cls(
            command_line=shlex.join(argv if argv is not None else sys.argv),
            date=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            versions={"pointcalip": __version__, "torch": torch.__version__,
                      "clip": _version("openai-clip"), "open_clip": _version("open_clip_torch"),
                      "numpy": numpy.__version__,
                      "python": platform.python_version()},
            device=device_name, precision=precision, data_root=str(data_root))

    def to_dict(self) -> dict:
        return asdict(self)


def backbone_label(backbone: str) -> str:
    """A backbone as a folder-name part, the same in run folders as in feature-store folders:
    :func:`pointcalip.backbones.families.short_name`, made safe (``ViT-B/16`` -> ``ViT-B_16``,
    ``/ckpt/mymodel.pt`` -> ``mymodel.pt``; docs/feature-store.md#folder-names)."""
    return slug(short_name(backbone))


#: the names a reader knows, for legends and tables (a method's registry name otherwise)
DISPLAY_NAMES = {"pointclip": "PointCLIP", "calip": "CALIP", "tip": "Tip-Adapter",
                 "tip_f": "Tip-Adapter-F", "calip_fs": "CALIP-FS", "adapter": "PointCLIP adapter",
                 "zeroshot": "zero-shot"}


def display_name(method: str) -> str:
    """``tip_f`` -> ``Tip-Adapter-F``: a method as papers name it."""
    return DISPLAY_NAMES.get(method, method)


def run_title(dataset: str, projector: str, backbone: str, *more: str) -> str:
    """A results title by what ran (never a config file's name, which may be the last of
    several given): ``scanobjectnn_pb_t50_rs, projector realistic, RN50``."""
    path = Path(backbone)
    shown = path.stem if path.suffix in (".pt", ".pth", ".bin") else backbone   # ViT-B/16 as named
    return ", ".join([dataset, f"projector {projector}", shown, *more])


def run_name(config: dict, *readable: str, data: Optional[str] = None) -> str:
    """``<readable parts>-<hash>``: the readable parts (dataset, projector, backbone, tuning)
    joined by '-', then 6 hex digits of every other setting that changes the numbers and of
    ``data``, what the data is (e.g. :func:`pointcalip.pipeline.data_key`: a fingerprint of
    its files, not the folder they live in), so that two different runs never share a name
    and rerunning the same config on the same files (wherever they are) reuses it. Without
    ``data`` (data not there yet) the name is the one older versions gave."""
    settings = {k: v for k, v in config.items() if k not in NOT_IN_RUN_NAME}
    if settings.get("store") == "tokens":       # the default store: the names it always had
        del settings["store"]
    if isinstance(settings.get("data"), dict):
        settings["data"] = {k: v for k, v in settings["data"].items() if k != "root"}
    if data is not None:
        settings["data_files"] = data
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    return "-".join([*(slug(p) for p in readable), digest.hexdigest()[:6]])


def _atomic_write(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))        # all or nothing, durable; a full disk is named


def write_results(result, output_dir: str | Path) -> Tuple[Path, Path]:
    """Write ``result.to_dict()`` as ``results.json`` and ``result.to_markdown()`` as
    ``results.md`` into ``output_dir`` (each replaced atomically), and, for a result with
    ``confusions()`` (``{name: (classnames, matrix [K, K], draw)}``, or with a fourth item:
    the figure's title, and a fifth: what the rows and columns are, "class" or "part"),
    ``confusion/<name>.csv`` and, where ``draw``, its figure (:func:`write_confusion`)."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "results.json", out / "results.md"
    _atomic_write(json_path, json.dumps(result.to_dict(), indent=2))
    _atomic_write(md_path, result.to_markdown())
    confusions = getattr(result, "confusions", None)
    for name, (classnames, matrix, draw, *more) in (confusions() if confusions else {}).items():
        if matrix is not None:
            write_confusion(out / "confusion", name, classnames, matrix, figure=draw,
                            title=more[0] if more else None, what=more[1] if len(more) > 1 else "class")
    return json_path, md_path


def confusion_csv(classnames: Sequence[str], matrix) -> str:
    """A confusion matrix as CSV: a header of predicted classes, then one row per true class
    (its name, then the count predicted as each class); parts alike for a segmentation."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["true \\ predicted", *classnames])
    for name, row in zip(classnames, matrix):
        writer.writerow([name, *(int(v) for v in row)])
    return buf.getvalue()


#: above this many classes the confusion figure is not drawn (unreadable); the CSV still is
CONFUSION_FIGURE_MAX_CLASSES = 60


def write_confusion(folder: Path, name: str, classnames: Sequence[str], matrix,
                    fmt: Optional[str] = None, dpi: Optional[int] = None, figure: bool = True,
                    title: Optional[str] = None, what: str = "class") -> list:
    """``<folder>/<name>.csv`` and, with ``figure`` and up to
    :data:`CONFUSION_FIGURE_MAX_CLASSES` classes, ``<name>.<fmt>`` (rows normalised to the
    share of each true class; ``fmt`` None: the command's figure format; ``title`` None: made
    from ``name``; ``what``: "class" or "part", the axes' words) -> the paths written."""
    from . import plots

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / f"{slug(name)}.csv"
    _atomic_write(csv_path, confusion_csv(classnames, matrix))
    written = [csv_path]
    if figure and len(classnames) <= CONFUSION_FIGURE_MAX_CLASSES:
        figure = (folder / f"{slug(name)}.{fmt}" if fmt else
                  plots.figure_name(folder / f"{slug(name)}.png"))      # the command's format
        if title is None:
            words = name.replace("_", " ").replace("pointclip", "PointCLIP").replace("calip", "CALIP")
            title = f"{words}: confusion matrix"
        plots.confusion(figure, classnames, matrix, title, fmt=fmt, dpi=dpi, what=what)
        written.append(figure)
    return written


def read_results(path: str | Path) -> dict:
    """A ``results.json`` as a dict; errors name the file."""
    path = Path(path).expanduser()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"results file not found: {path}") from None
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read results file {path}: {err}") from None
    except RecursionError:
        raise ValueError(f"cannot read results file {path}: its JSON is nested too deeply "
                         f"(thousands of levels); it is not a results file") from None
    if not isinstance(data, dict):
        raise ValueError(f"results file {path} does not hold a results mapping")
    return data
