"""Progress of a long loop: a tqdm bar on a terminal, else a log line at a steady pace (under
nohup, sbatch or ``> log`` a bar prints nothing, and a long phase would look stuck)."""
from __future__ import annotations

import logging
import time
from typing import Iterable, Iterator, Optional, TypeVar

from tqdm import tqdm

T = TypeVar("T")
log = logging.getLogger("pointcalip.progress")


def progress(items: Iterable[T], desc: str, total: Optional[int] = None, lines: int = 10,
             min_seconds: float = 30.0) -> Iterator[T]:
    """Yield ``items`` with a bar (``leave=False``) when stderr is a terminal; otherwise log
    ``desc: i of n`` about ``lines`` times over the loop, and at most every ``min_seconds``
    beside that for loops of unknown length."""
    bar = tqdm(items, desc=desc, total=total, disable=None, leave=False)
    if not bar.disable:
        yield from bar
        return
    n = total if total is not None else (len(items) if hasattr(items, "__len__") else None)
    step = max((n or 0) // max(lines, 1), 1)
    last = time.monotonic()
    for i, item in enumerate(items, 1):
        yield item
        now = time.monotonic()
        if (n and (i % step == 0 or i == n)) or (not n and now - last >= min_seconds):
            log.info("%s: %d%s done", desc, i, f" of {n}" if n else "")
            last = now
