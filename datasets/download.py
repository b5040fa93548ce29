"""Locate, download and install the datasets (urllib only).

* Downloads stream to ``<archive>.<urlhash>.part`` with HTTP Range resume and a tqdm bar;
  an interrupted download resumes when the same command is run again.
* The archive's SHA-256 is checked when one is recorded (none is published for these
  archives, so ``sha256=None``); extracted files are checked against the published per-file
  MD5 digests where known (ModelNet40) and their h5 layout is always validated.
* Archives are extracted into a temporary folder inside the data root; only a validated
  dataset folder is moved into place with one atomic rename, so a broken download never
  leaves a half folder that later looks valid.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

from ..core.digest import file_digest
from ..core.paths import data_dir, ensure_writable
from .catalog import DATASETS, DatasetSource, load_target
from ..core.words import count

log = logging.getLogger(__name__)

USER_AGENT = "pointcalip-downloader/0.1 (+urllib)"


#: the download source of every dataset that has one, by name (from the catalog)
SOURCES = {e.name: e.source for e in DATASETS.entries() if "source" in e.meta}
#: datasets read from another one's folder (ModelNet10 from the ModelNet40 folder)
ALIASES = {e.name: e.installed_with for e in DATASETS.entries() if "installed_with" in e.meta}


def source(name: str) -> DatasetSource:
    key = ALIASES.get(str(name).lower(), str(name).lower())
    if key not in SOURCES:
        raise ValueError(
            f"unknown dataset {name!r}; use one of {sorted(set(SOURCES) | set(ALIASES))}"
        )
    return SOURCES[key]


def _looks_like(src: DatasetSource, folder: Path) -> bool:
    """Cheap marker check (no h5 reading)."""
    return any((folder / mark).exists() for mark in src.marker)


def _root_arg(root: Path) -> str:
    """`` --root ROOT`` unless ROOT is the default data folder."""
    return "" if Path(root).expanduser().resolve() == data_dir().resolve() else f" --root {root}"


def _missing_message(src: DatasetSource, root: Path) -> str:
    if src.terms_url:
        return (
            f"ScanObjectNN not found in {root} (expected {root / src.folder}/main_split/...). "
            f"Its terms of use must be accepted first: request it at {src.terms_url}, then run "
            f"`pointcalip download scanobjectnn --from PATH/TO/{src.archive}{_root_arg(root)}` "
            f"(or --from the extracted h5_files folder, or --url with the link you received)"
        )
    if not src.urls:                      # no address recorded: only a local copy installs it
        fetch = src.fetch_text or f"get {src.archive} (or its extracted folder)"
        return (f"{src.name} not found in {root} (expected {root / src.folder}/ with "
                f"{src.marker_text}); {fetch} and run "
                f"`pointcalip download {src.name} --from PATH{_root_arg(root)}`")
    return (
        f"{src.name} not found in {root} (expected {root / src.folder}/{src.marker_text}). "
        f"Run `pointcalip download {src.name}{_root_arg(root)}`; offline, fetch {src.archive} "
        f"from {src.urls[0]} elsewhere and run "
        f"`pointcalip download {src.name} --from PATH/TO/{src.archive}{_root_arg(root)}`"
    )


def dataset_folder(name: str, root=None) -> Path:
    """Locate an installed dataset folder without downloading: the
    ``modelnet40_ply_hdf5_2048`` folder (also for ``modelnet10``) or ScanObjectNN's
    ``h5_files`` folder under ``root`` (default `pointcalip.core.paths.data_dir()`); ``root`` may
    also be that folder itself. Raises FileNotFoundError saying how to get it."""
    src = source(name)
    root = Path(root).expanduser() if root is not None else data_dir()
    for cand in (root / src.folder, root):
        if cand.is_dir() and _looks_like(src, cand):
            return cand
    raise FileNotFoundError(_missing_message(src, root))


# ---------------------------------------------------------------------------- validation
def validate_folder(name: str, folder) -> None:
    """Check an (extracted) dataset folder's layout and h5 contents; ValueError /
    FileNotFoundError naming what is wrong (each dataset's ``validate`` in the catalog)."""
    src = source(name)
    load_target(DATASETS[src.name].validate)(Path(folder))


def _check_md5(src: DatasetSource, folder: Path, strict: bool) -> None:
    bad = [name for name, md5 in src.file_md5.items()
           if (folder / name).is_file() and file_digest(folder / name, "md5") != md5]
    if not bad:
        return
    msg = f"{folder}: files {bad} differ from the published {src.name} release (MD5)"
    if strict:
        raise ValueError(f"{msg}; the download is corrupt: delete the archive and retry")
    log.warning("%s; results may not be comparable with published numbers", msg)


# ---------------------------------------------------------------------------- download
def _part_path(dest: Path, url: str) -> Path:
    tag = hashlib.sha256(url.encode()).hexdigest()[:8]
    return dest.with_name(f"{dest.name}.{tag}.part")


def download_file(
    url: str,
    dest,
    sha256: str | None = None,
    timeout: float = 60.0,
    chunk_size: int = 1 << 20,
    progress: bool = True,
) -> Path:
    """Stream ``url`` to ``dest`` through a ``.part`` file, resuming a previous partial
    download with an HTTP Range request. Verifies ``sha256`` when given (a mismatch deletes
    the partial file and raises ValueError). Network failures raise RuntimeError and keep
    the ``.part`` file, so running again resumes."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = _part_path(dest, url)
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing left to fetch, or a stale .part
            total = re.search(r"/(\d+)", err.headers.get("Content-Range", "") or "")
            if not (total and int(total.group(1)) == have):
                part.unlink()
                return download_file(url, dest, sha256, timeout, chunk_size, progress)
            return _finish(part, dest, url, sha256)
        raise RuntimeError(f"download of {url} failed: HTTP {err.code} {err.reason}") from err
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise RuntimeError(f"cannot reach {url}: {reason}") from err
    with resp:
        status = getattr(resp, "status", None) or resp.getcode()
        start = 0
        if have and status == 206:
            m = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", "") or "")
            start = int(m.group(1)) if m else -1
        if start != have:  # server ignored the Range request: start over
            if have:
                log.info("%s: server did not resume; restarting the download", url)
            have = 0
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        log.info("downloading %s -> "
                 "%s%s", url, dest, f" (resuming at {count(have, 'byte')})" if have else "")
        with open(part, "ab" if have else "wb") as fh, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
            desc=dest.name, disable=None if progress else True,  # None: off when not a terminal
        ) as bar:
            try:
                while True:
                    chunk = resp.read(chunk_size)
                    if not chunk:
                        break
                    fh.write(chunk)
                    bar.update(len(chunk))
            except Exception as err:  # IncompleteRead, connection reset, timeout
                fh.flush()
                raise RuntimeError(
                    f"download of {url} interrupted after {count(fh.tell(), 'byte')} ({err!r}); "
                    f"run the same command again to resume from {part}"
                ) from err
    size = part.stat().st_size
    if total is not None and size != total:
        raise RuntimeError(
            f"download of {url} stopped at {size} of {count(total, 'byte')}; run the same command "
            f"again to resume from {part}"
        )
    return _finish(part, dest, url, sha256)


def _finish(part: Path, dest: Path, url: str, sha256: str | None) -> Path:
    if sha256:
        got = file_digest(part)
        if got != sha256.lower():
            part.unlink()
            raise ValueError(
                f"checksum mismatch for {url}: SHA-256 {got}, expected {sha256}; the partial "
                f"file was deleted: run again, or try another --url"
            )
    os.replace(part, dest)
    return dest


# ---------------------------------------------------------------------------- install
def _refuse_escaping(archive: Path, into: Path, members: list[str]) -> None:
    """Raise if any archive member would extract outside ``into`` (``../``, absolute paths)."""
    into_r = into.resolve()
    for member in members:
        target = (into / member).resolve()
        if into_r != target and into_r not in target.parents:
            raise ValueError(f"{archive}: member {member!r} would extract outside the folder")


def _extract(archive: Path, into: Path) -> None:
    """Extract a zip or tar archive into ``into``, refusing members outside it."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            _refuse_escaping(archive, into, zf.namelist())
            try:
                zf.extractall(into)
            except (zipfile.BadZipFile, OSError, EOFError) as err:
                raise ValueError(f"{archive} is a corrupt zip ({err}); delete it and retry") from err
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            _refuse_escaping(archive, into, tf.getnames())
            tf.extractall(into)
    else:
        raise ValueError(f"{archive} is not a zip or tar archive (truncated or wrong file?)")


def _find_dataset(src: DatasetSource, top: Path, max_depth: int = 4) -> Path | None:
    """The shallowest folder under ``top`` that looks like the dataset (``__MACOSX`` skipped)."""
    level = [top]
    for _ in range(max_depth + 1):
        for d in level:
            if _looks_like(src, d):
                return d
        level = sorted(
            c for d in level for c in d.iterdir() if c.is_dir() and c.name != "__MACOSX"
        )
    return None


def _copy_dataset(src: DatasetSource, found: Path, staged: Path) -> None:
    """Copy the dataset folder ``found`` to ``staged``: whole, or only the files its catalog
    entry's ``install_files(folder)`` lists as (path in the dataset folder, source file)
    (Objaverse-LVIS: the split and its objects, not the rest of OpenShape's data)."""
    select = DATASETS[src.name].meta.get("install_files")
    if select is None:
        shutil.copytree(found, staged)
        return
    for rel, origin in load_target(select)(found):
        (staged / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(origin, staged / rel)


@contextlib.contextmanager
def _logged_as(staged: Path, final: Path):
    """While an install is checked in its staging folder ``staged`` (deleted a moment later),
    every log record (a warning from a dataset's checks, the checksum remark) names ``final``,
    the folder the dataset is installed at, instead."""
    previous = logging.getLogRecordFactory()
    old, new = str(staged), str(final)

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            text = record.getMessage()
        except (TypeError, ValueError):     # a malformed call: logging reports it as usual
            return record
        if old in text:
            record.msg, record.args = text.replace(old, new), ()
        return record

    logging.setLogRecordFactory(factory)
    try:
        yield
    finally:
        logging.setLogRecordFactory(previous)


def _install(src: DatasetSource, origin: Path, root: Path, strict_md5: bool, verify: bool) -> Path:
    """Extract/copy ``origin`` (archive or folder) into a temporary folder in ``root``,
    validate it, and atomically rename the dataset folder to ``root/src.folder``."""
    target = root / src.folder
    tmp = Path(tempfile.mkdtemp(prefix=f".{src.name}-tmp-", dir=root))
    try:
        if origin.is_dir():
            found = _find_dataset(src, origin)
            if found is None:
                raise FileNotFoundError(f"{origin} does not contain a {src.name} folder. "
                                        + _missing_message(src, root))
            log.info("copying %s -> %s", found, target)
            staged = tmp / src.folder
            _copy_dataset(src, found, staged)
        else:
            log.info("extracting %s", origin)
            _extract(origin, tmp / "x")
            staged = _find_dataset(src, tmp / "x")
            if staged is None:
                raise ValueError(
                    f"{origin} does not contain a {src.name} folder (for {src.name}: "
                    f"{src.marker_text} "
                    f"not found); check that it is {src.archive}"
                )
        try:
            with _logged_as(staged, target):
                validate_folder(src.name, staged)
                if verify and src.file_md5:
                    _check_md5(src, staged, strict_md5)
        except (ValueError, FileNotFoundError, KeyError) as err:
            # the staging folder is deleted below: name the user's archive or folder instead
            text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
            raise type(err)(text.replace(str(staged), f"{origin} (in its {src.folder} folder)")) from None
        if target.exists():  # --force: swap the old folder out, then remove it
            os.replace(target, tmp / "old")
        os.replace(staged, target)
        log.info("installed %s at %s", src.name, target)
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_origin(from_path) -> Path:
    """The archive or folder to install from, which must exist (FileNotFoundError naming it),
    checked before anything else so a mistyped path is never silently ignored."""
    origin = Path(from_path).expanduser()
    if not origin.exists():
        raise FileNotFoundError(f"--from path {origin} does not exist; give the downloaded "
                                f"archive (zip or tar) or its extracted folder")
    return origin


def ensure_dataset(
    name: str,
    root=None,
    url: str | None = None,
    from_path=None,
    force: bool = False,
    verify: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Return the dataset folder (``modelnet40_ply_hdf5_2048`` for modelnet40/modelnet10,
    ``h5_files`` for scanobjectnn) under ``root`` (default `pointcalip.core.paths.data_dir()`),
    installing it only when missing (or when ``force``): from ``from_path`` (a zip/tar or an
    extracted folder), else from ``url``, else from the known URLs in order (ScanObjectNN
    has none: its terms must be accepted, so it needs ``from_path`` or ``url``)."""
    src = source(name)
    root = Path(root).expanduser() if root is not None else data_dir()
    origin = None if from_path is None else check_origin(from_path)
    if not force:
        try:
            folder = dataset_folder(src.name, root)
            if url or from_path:
                log.info("%s already present at %s; pass force=True to reinstall",
                         src.name, folder)
            return folder
        except FileNotFoundError:
            pass
    ensure_writable(root, "--root DIR")
    if origin is not None:
        return _install(src, origin, root, strict_md5=False, verify=verify)
    if url is None and (src.terms_url or not src.urls):
        raise FileNotFoundError(_missing_message(src, root))
    urls = [url] if url else list(src.urls)
    archive = root / src.archive
    errors = []
    for u in urls:
        try:
            download_file(u, archive, sha256=None if url else src.sha256, timeout=timeout)
        except (RuntimeError, ValueError) as err:
            log.warning("%s", err)
            errors.append(str(err))
            continue
        try:
            return _install(src, archive, root, strict_md5=url is None, verify=verify)
        finally:
            archive.unlink(missing_ok=True)  # installed, or bad: never reused
    raise RuntimeError(
        f"could not download {src.name}: {'; '.join(errors)}. Offline or blocked? Fetch "
        f"{src.archive} elsewhere and run `pointcalip download {src.name} --from "
        f"PATH/TO/{src.archive}{_root_arg(root)}`, or pass --url with a mirror"
    )
