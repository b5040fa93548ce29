"""The adapt task's entry points besides its runner (its entry is in
:mod:`pointcalip.commands.adapt`; no torch here):

- :func:`adapt_sets`, the sets a run streams: with ``benchmark`` every set of the release
  (:func:`pointcalip.benchmark.sets.robustness_sets`: its uncorrupted set, then each
  corruption x severity, every stored point), else none (the clean TEST split is streamed);
- :func:`feature_datasets`, what a run reads from the feature store (the task's ``datasets``,
  :mod:`pointcalip.plan`), so that ``pointcalip extract --config adapt/modelnet40c`` fills it:
  the clean tuning set and, with ``test``, the streamed sets (the rows ``limit`` keeps).
"""
from __future__ import annotations

from typing import List, Sequence

from ..benchmark.sets import RobustnessSet, robustness_sets
from .config import AdaptConfig


def adapt_sets(cfg: AdaptConfig) -> List[RobustnessSet]:
    """Every set of ``cfg.benchmark`` a run streams, in order (empty without a benchmark)."""
    b = cfg.benchmark
    if b is None:
        return []
    from ..benchmark.robustness import benchmark_root

    return robustness_sets(b.name, benchmark_root(cfg), b.variant, b.corruption_list,
                           b.severity_list)


def feature_datasets(cfg: AdaptConfig, splits: Sequence[str]) -> List[tuple]:
    """(label, dataset, rows) of every cloud set ``cfg``'s run reads among ``splits``: the
    clean tuning set (``val``) and, with ``test``, clean TEST (no benchmark) or every set of
    the benchmark (clean TEST is then not streamed, so not listed)."""
    from ..benchmark.robustness import limit_rows
    from ..plan import tuned_datasets

    out = tuned_datasets(cfg, splits)
    if cfg.benchmark is None or "test" not in splits:
        return out
    classnames = out[0][1].classnames                   # the labels index the clean classes
    jobs = []
    for s in adapt_sets(cfg):
        data = s.open(classnames)
        jobs.append(("test", data, limit_rows(data.labels, cfg.limit, cfg.tune.seed)))
    return [job for job in out if job[0] != "test"] + jobs
