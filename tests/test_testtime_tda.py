"""The global + negative cache against TDA's own `run_test_tda` (tests/data/tda_goldens.npz).

The goldens are TDA's logits after every step of a fixed stream, computed by its own code run
from a checkout on the CPU (`python scripts/make_tda_goldens.py --tda DIR`, which says how it
is fed and patched). OnlineCache with scale 1 (TDA's `100 cos` logits) must give the same
logits after every step, cloud by cloud and in one batch.
"""
from pathlib import Path

import numpy as np
import pytest
import torch

from pointcalip.testtime import OnlineCache

GOLDENS = Path(__file__).parent / "data" / "tda_goldens.npz"


@pytest.fixture(scope="module")
def gold():
    with np.load(GOLDENS) as g:
        return {k: g[k] for k in g.files}


def cases(gold):
    return sorted({k.split("_")[0] for k in gold if k.startswith("c")})


def cache_for(gold, case):
    p = gold[f"{case}_params"]
    return OnlineCache(gold[f"{case}_base"].shape[1], capacity=int(p[0]), alpha=float(p[1]),
                       beta=float(p[2]), neg_capacity=int(p[3]), neg_alpha=float(p[4]),
                       neg_beta=float(p[5]), neg_band=(float(p[6]), float(p[7])),
                       neg_mask=(float(p[8]), float(p[9])), scale=1.0)


@pytest.mark.parametrize("batch", [1, 1000])
def test_logits_after_every_step_equal_tda(gold, batch):
    assert len(cases(gold)) == 2
    for case in cases(gold):
        feats = torch.from_numpy(gold[f"{case}_features"])
        base = torch.from_numpy(gold[f"{case}_base"])
        np.testing.assert_allclose(base.numpy(), 100.0 * feats.numpy() @ gold[f"{case}_clip_weights"],
                                   atol=1e-9)
        order = torch.from_numpy(gold[f"{case}_order"])
        cache = cache_for(gold, case)
        out = torch.cat([cache.step(base[order[i:i + batch]], feats[order[i:i + batch]])
                         for i in range(0, len(order), batch)])
        final = gold[f"{case}_final"]
        moved = np.abs(final - base.numpy()).max(1) > 1e-6
        assert moved.mean() > 0.9                          # the caches act on most steps
        np.testing.assert_allclose(out.numpy(), final, rtol=0, atol=1e-9)
        accuracy = 100.0 * float((out.argmax(1).numpy() == gold[f"{case}_labels"][order]).mean())
        assert accuracy == pytest.approx(float(gold[f"{case}_accuracy"]), abs=1e-9)
        _, neg = cache.sizes()
        assert sum(neg) > 0                                # the negative cache was exercised


def test_the_golden_cases_exercise_replacements_and_the_band(gold):
    for case in cases(gold):
        base = torch.from_numpy(gold[f"{case}_base"])
        k = base.shape[1]
        h = -(base.softmax(1) * base.log_softmax(1)).sum(1) / np.log2(k)
        p = gold[f"{case}_params"]
        assert int(((h > p[6]) & (h < p[7])).sum()) >= 3
        per_class = np.bincount(base.argmax(1).numpy(), minlength=k)
        assert (per_class > p[0]).sum() >= 3               # full classes see replacements


def test_goldens_say_where_they_come_from(gold):
    assert str(gold["meta_tda_url"]) == "https://github.com/kdiAAA/TDA"
    assert len(str(gold["meta_tda_commit"])) == 40
    assert str(gold["meta_command"]).startswith("python scripts/make_tda_goldens.py --tda")
