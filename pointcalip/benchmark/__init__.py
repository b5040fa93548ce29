"""`pointcalip benchmark`: zero-shot PointCLIP and CALIP on today's benchmarks, reusing the
zero-shot stages (:mod:`pointcalip.zeroshot`).

* :mod:`.config`: :class:`BenchmarkConfig` (light: no torch), the tuning rule in one place;
* :mod:`.robustness`: ModelNet40-C, tuned once on clean ModelNet40 validation (TRAIN) and
  evaluated on every corruption x severity from the feature store;
* :mod:`.report`: the result (results.json / results.md) and its plots.
"""
