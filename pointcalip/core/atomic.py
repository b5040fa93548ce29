"""All-or-nothing, durable file writes, and one clear error when the disk is full.

    with atomic_write(run_dir / "best.pt") as f:       # f: a binary file object
        torch.save(state, f)

The file appears complete under its name, or not at all: it is written to a temporary file in
the same folder (``.<name>.<random>.tmp``), flushed and fsynced, renamed over ``path``
(:func:`os.replace`, atomic on POSIX) and the folder is fsynced so the rename survives a power
cut. If anything fails the temporary file is removed and an existing ``path`` is untouched.
A full disk or quota (``ENOSPC``/``EDQUOT``) or a file-size limit (``EFBIG``: ``ulimit -f``,
or the filesystem's largest file) becomes a :class:`DiskFullError` that names the path and
says what to do, also when a library wrapped the ``OSError`` in its own error (``torch.save``
raises ``RuntimeError: [enforce fail at inline_container.cc:672] unexpected pos`` with the
``OSError`` as its context). Every output of every command goes through :func:`atomic_write`
(:func:`write_bytes`, :func:`save_figure`), so a failed rerun leaves the earlier file whole.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from pathlib import Path
from typing import BinaryIO, Iterator, Optional

_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class DiskFullError(OSError):
    """No space (or quota) left on the device, or the file-size limit reached, while writing
    ``path``. An ``OSError`` with ``errno`` ENOSPC/EDQUOT/EFBIG, so code that handles
    ``OSError`` handles it too."""

    def __init__(self, path: str | Path, cause: Optional[BaseException] = None):
        self.path = Path(path)
        code = getattr(_disk_full_cause(cause), "errno", None) or errno.ENOSPC
        if code == errno.EFBIG:
            super().__init__(code, f"cannot write {self.path}: the file reached the largest size "
                                   f"this process may write (file-size limit, `ulimit -f`, or "
                                   f"the filesystem's largest file); raise the limit (`ulimit -f "
                                   f"unlimited`) or write to another filesystem")
            return
        free = ""
        with contextlib.suppress(OSError):
            free = f", {shutil.disk_usage(_existing_parent(self.path)).free / 1e6:.0f} MB free"
        super().__init__(code, f"cannot write {self.path}: the disk is full (no space left "
                               f"on the device{free}); free some space or write elsewhere")

    def __str__(self) -> str:
        return self.strerror


def _existing_parent(path: Path) -> Path:
    for folder in (path, *path.parents):
        if folder.exists():
            return folder
    return Path("/")


def _disk_full_cause(err: Optional[BaseException]) -> Optional[OSError]:
    """The ENOSPC/EDQUOT ``OSError`` behind ``err`` (itself, or in its cause/context chain)."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in _FULL:
            return err
        err = err.__cause__ or err.__context__
    return None


def is_disk_full(err: BaseException) -> bool:
    """Whether ``err`` is, or was caused by, a full disk or quota or the file-size limit
    (ENOSPC/EDQUOT/EFBIG)."""
    return _disk_full_cause(err) is not None


@contextlib.contextmanager
def disk_full_names(path: str | Path) -> Iterator[None]:
    """Inside the block, a full disk (however wrapped) is raised as :class:`DiskFullError`
    naming ``path``; every other error passes unchanged. Cleaning up is the caller's job."""
    try:
        yield
    except DiskFullError:
        raise
    except BaseException as err:  # noqa: BLE001 - re-raised unchanged unless the disk is full
        if is_disk_full(err):
            raise DiskFullError(path, err) from err
        raise


def fsync_dir(folder: str | Path) -> None:
    """Make the entries of ``folder`` (new names, renames) durable. A no-op where folders
    cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.EBADF):   # filesystems without dir fsync
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[BinaryIO]:
    """Write ``path`` all at once or not at all (see the module doc): yields the open
    temporary file (``mode`` "wb", or "w" for text); on a clean exit it is fsynced and renamed
    over ``path``, and the folder fsynced. Raises :class:`DiskFullError` (naming ``path``) when
    the disk is full; the temporary file never stays behind."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with disk_full_names(path):
            with open(tmp, mode) as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """``path`` holds ``data``, written with :func:`atomic_write`; -> ``path``."""
    with atomic_write(path) as f:
        f.write(data)
    return Path(path)


def save_figure(fig, path: str | Path, **savefig) -> Path:
    """A matplotlib figure written to ``path`` with :func:`atomic_write` (the format from the
    suffix, e.g. ``.png``, ``.pdf``, unless ``format`` is given); -> ``path``."""
    path = Path(path)
    savefig.setdefault("format", path.suffix.lstrip(".").lower() or "png")
    with atomic_write(path) as f:
        fig.savefig(f, **savefig)
    return path
