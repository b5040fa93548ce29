"""`python -m pointcalip` is the `pointcalip` command (so `torchrun -m pointcalip` works)."""
import sys

from .cli import main

sys.exit(main())
