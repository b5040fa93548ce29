"""`pointcalip benchmark`: zero-shot PointCLIP and CALIP on today's benchmarks, reusing the
shared stages of the data path (:mod:`pointcalip.pipeline`).

* :mod:`.config`: :class:`BenchmarkConfig` (light: no torch), the tuning rules in one place;
* :mod:`.table`: a table over several datasets (OpenShape's protocol: ModelNet40, ScanObjectNN,
  Objaverse-LVIS), each tuned by the rule its splits allow, or from another run's results;
* :mod:`.robustness`: ModelNet40-C, tuned once on clean ModelNet40 validation (TRAIN) and
  evaluated on every corruption x severity from the feature store;
* :mod:`.result`: the results (results.json / results.md) and ModelNet40-C's plots.
"""
from ..core.lazy import renamed_modules

renamed_modules(__name__, {"report": "result"})   # apart from pointcalip/report/
