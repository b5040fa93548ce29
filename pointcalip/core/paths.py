"""Where PointCALIP keeps downloaded data, CLIP weights and feature caches.

Everything lives under one home folder: ``$POINTCALIP_HOME`` if set, else
``~/.cache/pointcalip``. Each location can also be passed explicitly wherever it is used.
"""
from __future__ import annotations

import os
import re
import uuid
from pathlib import Path


def home_dir() -> Path:
    """The PointCALIP home folder (``$POINTCALIP_HOME`` or ``~/.cache/pointcalip``)."""
    env = os.environ.get("POINTCALIP_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "pointcalip"


def data_dir() -> Path:
    """Default root for downloaded datasets: ``<home>/data``."""
    return home_dir() / "data"


def clip_dir() -> Path:
    """Default download folder for CLIP weights: ``<home>/clip``."""
    return home_dir() / "clip"


def cache_dir() -> Path:
    """Default folder for cached CLIP features: ``<home>/features``."""
    return home_dir() / "features"


def slug(text: str) -> str:
    """``text`` as a safe file-name part: runs of characters other than letters, digits and
    ``. + -`` become one ``_`` (``ViT-B/16`` -> ``ViT-B_16``)."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_")


def write_probe(folder: Path, prefix: str = ".pointcalip-write-test") -> None:
    """Write and remove an empty file in ``folder``, named uniquely per call (threads of one
    process may probe at the same time); OSError when the folder cannot be written."""
    probe = Path(folder) / f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    probe.write_bytes(b"")
    probe.unlink()


def ensure_writable(folder: str | Path, fix: str) -> Path:
    """Create ``folder`` if needed and check that files can be written in it, before any long
    work starts; the error says how to choose another folder (``fix``, in the command line's
    words, e.g. ``--set output_dir=DIR``)."""
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_probe(folder)
    except OSError as err:
        raise PermissionError(f"cannot write in {folder} ({err.strerror or err}); choose another "
                              f"folder with {fix}") from None
    return folder


def confined(root: str | Path, written: str | Path, where: str) -> Path:
    """``root / written`` for a path read from a manifest or a list (a split file, a file
    list), refused unless it stays inside ``root``: ``written`` is normalised (``a/../b`` ->
    ``b``) and must be relative and must not climb out with ``..``. Checked before anything
    is read or copied; ``where`` names the entry in the error (e.g. ``"lvis.json entry 3
    (uid abc)"``). Symbolic links inside ``root`` are the folder owner's and are followed."""
    text = str(written).replace("\\", "/")
    norm = os.path.normpath(text) if text else ""
    if not text or os.path.isabs(text) or norm == ".." or norm.startswith("../") or norm == ".":
        raise ValueError(f"{where}: path {str(written)!r} leads outside {root}; every path a "
                         f"manifest lists must stay inside its folder (a relative path without "
                         f"'..' climbing out)")
    return Path(root) / norm


def check_output_file(path: str | Path, option: str) -> Path:
    """Before any long work: ``path`` (given with ``option``) can be written: its folder
    exists and is writable, and it is not itself a folder. ``FileNotFoundError`` /
    ``PermissionError`` / ``IsADirectoryError`` naming the option and the path otherwise."""
    path = Path(path).expanduser()
    folder = path.parent
    if path.is_dir():
        raise IsADirectoryError(f"{option} {path} is a folder; give a file name in it")
    if not folder.is_dir():
        raise FileNotFoundError(f"{option} {path}: the folder {folder} does not exist; create it "
                                f"or write elsewhere")
    try:
        write_probe(folder)
    except OSError as err:
        raise PermissionError(f"{option} {path}: cannot write in {folder} "
                              f"({err.strerror or err}); write elsewhere") from None
    return path


def user_path(text: str | Path, where: str) -> Path:
    """``text`` with a leading ``~`` or ``~user`` expanded; ValueError naming ``where`` (the
    option or config key) when that user does not exist (pathlib's own error, "Could not
    determine home directory", names nothing)."""
    try:
        return Path(text).expanduser()
    except RuntimeError:
        user = str(text)[1:].replace("\\", "/").split("/", 1)[0]
        raise ValueError(f"{where} {str(text)!r}: there is no user {user!r} on this machine, so "
                         f"'~{user}' names no home folder; write the full path") from None
