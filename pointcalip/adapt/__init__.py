"""`pointcalip adapt`: the online test-time cache (:mod:`pointcalip.testtime`) over zero-shot
CALIP on a robustness benchmark (every corruption x severity) or a clean dataset.

* :mod:`.config`: :class:`AdaptConfig` (light: no torch) and the cache's section;
* :mod:`.run`: the stages (features from the store -> base logits, keys, centres -> S seeded
  stream orders per row);
* :mod:`.report`: results.json / results.md, the gain heat map and running-accuracy curves.
"""
