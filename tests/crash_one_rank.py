"""`pointcalip` as torchrun starts it, except that rank 1 dies (exit 3, no cleanup) right
after storing its first block: a crashed rank, for tests/test_extract.py."""
import os
import sys

from pointcalip.cli import main
from pointcalip.store import SplitStore

_write = SplitStore.write


def _write_then_die(self, *args, **kwargs):
    _write(self, *args, **kwargs)
    os._exit(3)


if __name__ == "__main__":
    if os.environ.get("RANK") == "1":
        SplitStore.write = _write_then_die
    sys.exit(main())
