#!/usr/bin/env python
"""What data identity costs (pointcalip.core.identity): every byte of every file a split
reads is hashed (SHA-256) once, then remembered per (size, mtime_ns, ctime_ns, inode,
device), so a rerun only stats the files.

Two synthetic data sets, written into a temporary folder (or --dir) and removed afterwards:

* a ModelNet40-sized h5 folder: ``--h5-files`` files holding ``--h5-mb`` MB in all (the
  published release: 7 files, about 415 MB with its ``normal`` arrays);
* an Objaverse-LVIS-like folder: ``--objects`` small object files of ``--object-kb`` KB each
  in groups of 1,000 per folder (the published split lists 46,205 objects; OpenShape's real
  files are larger: the time to hash grows with the bytes, the time to stat does not).

For each: the first run (nothing remembered: every byte read and hashed), the first run with
the files evicted from the page cache (posix_fadvise DONTNEED; no root needed), and a rerun
(the digests remembered). The files' timestamps are set 10 s into the past first, so that
the first run may remember them (a file written less than RACY_SECONDS ago is hashed again
each time).

    python scripts/bench_identity.py [--h5-mb 415] [--h5-files 7] [--objects 46000]
                                     [--object-kb 20] [--dir /scratch/bench]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from pointcalip.commands.options import positive_int


def write_files(folder: Path, sizes: list[int], per_folder: int) -> list[Path]:
    """Files of random bytes of ``sizes``, ``per_folder`` to a sub-folder; their times set
    10 s back."""
    files = []
    block = os.urandom(1 << 20)
    past = time.time() - 10
    for i, size in enumerate(sizes):
        sub = folder / f"{i // per_folder:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"{i:06d}.bin"
        with open(path, "wb") as f:
            left = size
            while left > 0:
                chunk = block[:min(left, len(block))]
                f.write(chunk)
                left -= len(chunk)
            f.write(i.to_bytes(8, "little"))           # every file distinct
        os.utime(path, (past, past))
        files.append(path)
    time.sleep(0.05)
    return files


def evict(files: list[Path]) -> None:
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def forget() -> None:
    """Remove the remembered digests (the next run hashes every file again)."""
    from pointcalip.core.identity import identity_cache_dir
    shutil.rmtree(identity_cache_dir(), ignore_errors=True)


def timed(files: list[Path]) -> float:
    from pointcalip.core.identity import files_identity
    t0 = time.perf_counter()
    files_identity(files)
    return time.perf_counter() - t0


def measure(name: str, files: list[Path]) -> None:
    total = sum(f.stat().st_size for f in files)
    forget()
    warm = timed(files)
    forget()
    evict(files)
    cold = timed(files)
    rerun = min(timed(files) for _ in range(3))
    from pointcalip.core.identity import identity_cache_dir
    cache = sum(p.stat().st_size for p in identity_cache_dir().glob("*.json"))
    print(f"{name}: {len(files)} files, {total / 1e6:.0f} MB")
    print(f"  first run, files in the page cache: {warm:8.2f} s  ({total / 1e6 / warm:.0f} MB/s)")
    print(f"  first run, files evicted (disk):    {cold:8.2f} s  ({total / 1e6 / cold:.0f} MB/s)")
    print(f"  rerun (digests remembered):         {rerun:8.3f} s  "
          f"({1e6 * rerun / len(files):.1f} us per file)")
    print(f"  remembered digests on disk:         {cache / 1e6:8.2f} MB")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--h5-mb", type=positive_int, default=415)
    p.add_argument("--h5-files", type=positive_int, default=7)
    p.add_argument("--objects", type=positive_int, default=46000)
    p.add_argument("--object-kb", type=positive_int, default=20)
    p.add_argument("--dir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = p.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="bench_identity-", dir=args.dir))
    os.environ["POINTCALIP_HOME"] = str(scratch / "home")     # never the user's cache
    try:
        size = args.h5_mb * 10 ** 6 // args.h5_files
        h5 = write_files(scratch / "modelnet40", [size] * args.h5_files, 1000)
        measure("ModelNet40-sized h5 folder", h5)
        objects = write_files(scratch / "lvis", [args.object_kb * 1000] * args.objects, 1000)
        measure("Objaverse-LVIS-like object files", objects)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
