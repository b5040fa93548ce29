"""Corruption error rates as robustness tables give them, and ModelNet-C's normalised errors.

Error rate (ER, %) = 100 - top-1 accuracy, per corruption x severity, its mean over the
severities per corruption, and the mean over every cell (ModelNet40-C's tables, Sun et al.
2022, "Benchmarking Robustness of 3D Point Cloud Recognition Against Common Corruptions").

ModelNet-C (Ren et al. 2022, "Benchmarking and Analyzing Point Cloud Classification under
Corruptions", arXiv:2202.03377) normalises by DGCNN: for a corruption c with overall accuracy
OA_c (the mean over its 5 levels) and the clean accuracy OA_clean,

    CE_c  = (1 - OA_c) / (1 - OA_c^DGCNN)
    RCE_c = (OA_clean - OA_c) / (OA_clean^DGCNN - OA_c^DGCNN)

and mCE / RmCE are their means over the corruptions (github.com/jiawei-ren/ModelNet-C,
``modelnetc_utils/modelnetc_utils/eval.py``, where DGCNN's accuracies below are recorded).
OA_clean is measured on the release's own clean set (``clean.h5``), as that evaluation does.
Those references are DGCNN's on ModelNet-C (ModelNet40 clouds): they normalise only the
ModelNet-C benchmark (:data:`DGCNN_REFERENCES`). ScanObjectNN-C uses the same seven corruption
names on other data, and ModelNet40-C's fifteen corruptions are others: both state that
they have no reference. For ModelNet40-C, its repository (github.com/jiachens/ModelNet40-C,
README, "standard training" table) gives DGCNN's mean corruption error 25.9% and clean error
7.4%: the ratio of a run's mean error to DGCNN's is reported beside it, labelled as such.
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional

import numpy as np

#: DGCNN's overall accuracy (fraction) on ModelNet-C's clean set and on each corruption
#: (mean over its 5 levels): jiawei-ren/ModelNet-C, modelnetc_utils/eval.py, ``DGCNN_OA``
MODELNET_C_DGCNN_OA: Dict[str, float] = {
    "clean": 0.926, "scale": 0.906, "jitter": 0.684, "rotate": 0.785,
    "dropout_global": 0.752, "dropout_local": 0.793, "add_global": 0.705, "add_local": 0.725,
}

#: the benchmarks (catalog names) whose DGCNN per-corruption reference is recorded
DGCNN_REFERENCES: Dict[str, Dict[str, float]] = {"modelnet_c": MODELNET_C_DGCNN_OA}

#: DGCNN on ModelNet40-C (standard training): mean corruption error and clean error rate in
#: percent (jiachens/ModelNet40-C, README); its per-corruption errors are not recorded here
MODELNET40C_DGCNN_ERROR = {"corruption_mean": 25.9, "clean": 7.4}


def error_rates(accuracy: Mapping[str, Mapping[int, float]]) -> dict:
    """``{corruption: {severity: top-1 %}}`` -> ``{"cells": {corruption: {severity: ER}},
    "per_corruption": {corruption: mean ER over its severities}, "mean": mean ER over every
    cell}`` (ER = 100 - top-1, percent)."""
    cells = {c: {s: 100.0 - float(a) for s, a in row.items()} for c, row in accuracy.items()}
    per = {c: float(np.mean(list(row.values()))) for c, row in cells.items()}
    every = [v for row in cells.values() for v in row.values()]
    return {"cells": cells, "per_corruption": per,
            "mean": float(np.mean(every)) if every else float("nan")}


def normalised_errors(clean_accuracy: float, per_corruption_accuracy: Mapping[str, float],
                      reference: Mapping[str, float] = MODELNET_C_DGCNN_OA) -> Optional[dict]:
    """ModelNet-C's CE / RCE per corruption and their means (mCE, RmCE), accuracies in percent
    in, ratios out, over the corruptions ``reference`` (DGCNN's accuracies, fractions) holds;
    None when it holds none of them."""
    shared = [c for c in per_corruption_accuracy if c in reference and c != "clean"]
    if not shared:
        return None
    clean = clean_accuracy / 100.0
    ce = {c: (1 - per_corruption_accuracy[c] / 100.0) / (1 - reference[c]) for c in shared}
    rce = {c: (clean - per_corruption_accuracy[c] / 100.0) / (reference["clean"] - reference[c])
           for c in shared}
    return {"ce": ce, "rce": rce, "mce": float(np.mean(list(ce.values()))),
            "rmce": float(np.mean(list(rce.values()))), "corruptions": shared}
