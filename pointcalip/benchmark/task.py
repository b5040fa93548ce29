"""The benchmark task (its entry is in :mod:`pointcalip.commands.benchmark`): a table over
several datasets (``datasets:``, :mod:`.table`) or ModelNet40-C's grid (``benchmark:``,
:mod:`.robustness`), one config class and one command.

- :func:`feature_datasets`, what a run reads from the feature store (the task's
  ``datasets``, :mod:`pointcalip.plan`): per dataset of a table, its reported clouds and its
  tuning set; for ModelNet40-C, the clean TEST split and tuning set and every evaluated set.
- :func:`run_benchmark`, its runner: the table's or ModelNet40-C's."""
from __future__ import annotations

from typing import List, Optional, Sequence

from .config import BenchmarkConfig


def feature_datasets(cfg: BenchmarkConfig, splits: Sequence[str]) -> List[tuple]:
    """(label, dataset, rows) of every cloud set ``cfg``'s run reads among ``splits``."""
    if cfg.table:                                  # each dataset of a table
        from .table import table_jobs

        return table_jobs(cfg, splits)
    from ..plan import tuned_datasets
    from .robustness import benchmark_jobs

    out = tuned_datasets(cfg, splits)              # clean TEST and the clean tuning set
    if "test" in splits:                           # the robustness sets
        out += benchmark_jobs(cfg, out[0][1].classnames)
    return out


def run_benchmark(cfg: BenchmarkConfig, backbone=None, argv: Optional[Sequence[str]] = None):
    """The run of ``cfg``: :func:`.table.run_table` for a table, else
    :func:`.robustness.run_robustness` (ModelNet40-C, ModelNet-C, ScanObjectNN-C)."""
    if cfg.table:
        from .table import run_table

        return run_table(cfg, backbone, argv)
    from .robustness import run_robustness

    return run_robustness(cfg, backbone, argv)
