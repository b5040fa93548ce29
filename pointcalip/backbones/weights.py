"""What identifies a weights file: its SHA-256 (feature-store keys, checksums of downloads).
A light module (no torch): backbone names are checked and identified without a model library."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Tuple, Union

from pointcalip.core.digest import file_digest

_SHA_CACHE: Dict[Tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256 hex


def file_sha256(path: Union[str, Path], chunk_bytes: int = 1 << 22) -> str:
    """SHA-256 hex digest of a file, read in chunks; memoised per (path, size, mtime)."""
    path = Path(path).resolve()
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = file_digest(path, "sha256", chunk_bytes)
    return _SHA_CACHE[key]
