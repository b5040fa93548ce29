"""Beta / view-weight search against brute-force loops."""
import itertools
import math

import pytest
import torch

from pointcalip.search import (accuracy_table, beta_grid, search, search_betas,
                               search_view_weights)


def _brute_table(l0, l1, l2, labels, b2s, b3s, w=None):
    """The obvious loop: one argmax per grid point (float64)."""
    n, v, k = l0.shape
    w = torch.ones(v, dtype=torch.float64) if w is None else torch.as_tensor(w, dtype=torch.float64)
    s = [(l.double() * w[None, :, None]).sum(1) / math.sqrt(v) for l in (l0, l1, l2)]
    table = torch.zeros(len(b2s), len(b3s), dtype=torch.float64)
    for i, b2 in enumerate(b2s):
        for j, b3 in enumerate(b3s):
            pred = (s[0] + float(b2) * s[1] + float(b3) * s[2]).argmax(-1)
            table[i, j] = (pred == labels).double().mean()
    return table


def _first_best(table, b2s, b3s):
    """CALIP's loop: beta2 outer, beta3 inner, strictly better replaces."""
    best, arg = -1.0, None
    for i in range(len(b2s)):
        for j in range(len(b3s)):
            if table[i, j] > best:
                best, arg = float(table[i, j]), (float(b2s[i]), float(b3s[j]))
    return arg, best


def _random_logits(n=300, v=3, k=6, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return tuple((20 * torch.randn(n, v, k, generator=g)).to(dtype) for _ in range(3))


def test_beta_grid_matches_released_calip_code():
    grid = beta_grid(2.0)
    assert len(grid) == 200
    expected = [i * (2.0 - 0.001) / 200 + 0.001 for i in range(200)]
    torch.testing.assert_close(grid, torch.tensor(expected, dtype=torch.float64))
    assert float(beta_grid(0.1, 5)[-1]) == pytest.approx(0.001 + 4 * 0.099 / 5)


def test_planted_optimum_found():
    l0, l1, l2 = _random_logits(seed=1)
    b2s, b3s = beta_grid(2.0, 20), beta_grid(0.1, 20)
    planted = (b2s[13], b3s[6])
    # labels: the predictions at the planted point, so that only a region around it is perfect
    s = [l.sum(1) / math.sqrt(3) for l in (l0, l1, l2)]
    labels = (s[0] + planted[0] * s[1] + planted[1] * s[2]).argmax(-1)
    brute = _brute_table(l0, l1, l2, labels, b2s, b3s)
    for method in ("envelope", "dense"):
        res = search_betas(l0, l1, l2, labels, b2s, b3s, method=method)
        (b2, b3), acc = _first_best(brute, b2s, b3s)
        assert (res.beta2, res.beta3) == (b2, b3) and res.accuracy == acc == 1.0
        assert abs(res.beta2 - float(planted[0])) <= 0.11 and abs(res.beta3 - float(planted[1])) <= 0.006
        torch.testing.assert_close(res.accuracy_table, brute, atol=0, rtol=0)
        assert res.grid_shape == (20, 20)
    assert brute.min() < 0.9  # the optimum is not everywhere


def test_random_tables_match_brute_force_with_weights():
    l0, l1, l2 = _random_logits(n=200, v=4, k=7, seed=2, dtype=torch.float32)
    labels = torch.randint(0, 7, (200,), generator=torch.Generator().manual_seed(0))
    b2s, b3s = beta_grid(2.0, 9), beta_grid(0.1, 11)
    w = [0.25, 1.0, 0.5, 0.75]
    brute = _brute_table(l0, l1, l2, labels, b2s, b3s, w)
    table = accuracy_table(l0.double(), l1.double(), l2.double(), labels, b2s, b3s, w, chunk=4)
    torch.testing.assert_close(table, brute, atol=0, rtol=0)


def test_unsorted_and_repeated_grid_values():
    l0, l1, l2 = _random_logits(n=150, v=2, k=5, seed=7)
    labels = torch.randint(0, 5, (150,), generator=torch.Generator().manual_seed(1))
    b2s = torch.tensor([1.5, 0.2, 0.9, 0.2], dtype=torch.float64)
    b3s = torch.tensor([0.08, 0.01, 0.05, 0.01, 0.002, 0.09], dtype=torch.float64)
    brute = _brute_table(l0, l1, l2, labels, b2s, b3s)
    res = search_betas(l0, l1, l2, labels, b2s, b3s)
    torch.testing.assert_close(res.accuracy_table, brute, atol=0, rtol=0)
    assert ((res.beta2, res.beta3), res.accuracy) == _first_best(brute, b2s, b3s)


def test_exact_ties_follow_argmax():
    """Integer logits and dyadic betas: exact float arithmetic with many exact ties, where
    argmax picks the first maximal class."""
    g = torch.Generator().manual_seed(3)
    l0, l1, l2 = (torch.randint(-3, 4, (400, 1, 5), generator=g).double() for _ in range(3))
    l0[:, :, 1] = l0[:, :, 0]          # duplicated classes
    l1[:, :, 1] = l1[:, :, 0]
    l2[:, :, 1] = l2[:, :, 0]
    labels = torch.randint(0, 5, (400,), generator=g)
    b2s = torch.tensor([0.0, 0.25, 0.5, 1.0, 2.0], dtype=torch.float64)
    b3s = torch.tensor([0.0, 0.5, 1.0, 4.0], dtype=torch.float64)
    brute = _brute_table(l0, l1, l2, labels, b2s, b3s)
    for method in ("envelope", "dense"):
        table = accuracy_table(l0, l1, l2, labels, b2s, b3s, method=method)
        torch.testing.assert_close(table, brute, atol=0, rtol=0)


def test_ties_pick_smallest_betas():
    l0 = torch.eye(3)[:, None, :]                  # [3 clouds, 1 view, 3 classes]
    zeros = torch.zeros_like(l0)
    res = search_betas(l0, zeros, zeros, torch.arange(3), beta_grid(2.0, 5), beta_grid(0.1, 5))
    assert res.accuracy == 1.0
    assert (res.beta2, res.beta3) == (0.001, 0.001)


def _planted_weights_data(weights, n=2000, k=8, seed=4):
    g = torch.Generator().manual_seed(seed)
    v = len(weights)
    l0 = 10 * torch.randn(n, v, k, generator=g)
    l1 = 10 * torch.randn(n, v, k, generator=g)
    l2 = 10 * torch.randn(n, v, k, generator=g)
    w = torch.tensor(weights)
    labels = ((l0 + 0.5 * l1 + 0.05 * l2) * w[None, :, None]).sum(1).argmax(-1)
    return l0, l1, l2, labels


def test_view_weights_exhaustive_finds_planted():
    planted = [1.0, 0.25, 0.5]
    l0, l1, l2, labels = _planted_weights_data(planted)
    res = search_view_weights(l0, l1, l2, labels, 0.5, 0.05)
    assert res.view_weights == planted and res.accuracy == 1.0
    # brute force over all 64 combinations: the planted one is the unique perfect one
    per_view = l0 + 0.5 * l1 + 0.05 * l2
    perfect = [c for c in itertools.product((0.25, 0.5, 0.75, 1.0), repeat=3)
               if bool(((per_view * torch.tensor(c)[None, :, None]).sum(1).argmax(-1)
                        == labels).all())]
    assert perfect == [tuple(planted)]


def test_view_weights_coordinate_ascent():
    planted = [1.0, 0.5, 0.25, 0.75]
    l0, l1, l2, labels = _planted_weights_data(planted, seed=5)
    res = search_view_weights(l0, l1, l2, labels, 0.5, 0.05, max_combinations=0)
    per_view = l0 + 0.5 * l1 + 0.05 * l2
    acc = lambda w: float(((per_view * torch.tensor(w)[None, :, None]).sum(1).argmax(-1)
                           == labels).double().mean())
    assert res.accuracy == pytest.approx(acc(res.view_weights))
    assert res.accuracy >= acc([1.0] * 4)
    assert res.view_weights == planted and res.accuracy == 1.0
    again = search_view_weights(l0, l1, l2, labels, 0.5, 0.05, max_combinations=0)
    assert again.view_weights == res.view_weights


def test_search_betas_then_weights_then_betas():
    l0, l1, l2, labels = _planted_weights_data([1.0, 0.25, 0.5], n=600, seed=6)
    b2s, b3s = beta_grid(2.0, 8), beta_grid(0.1, 8)
    base = search(l0, l1, l2, labels, beta2_values=b2s, beta3_values=b3s)
    assert base.view_weights == [1.0, 1.0, 1.0]
    res = search(l0, l1, l2, labels, search_weights=True, beta2_values=b2s, beta3_values=b3s)
    brute = _brute_table(l0, l1, l2, labels, b2s, b3s, res.view_weights)
    (b2, b3), acc = _first_best(brute, b2s, b3s)
    assert (res.beta2, res.beta3) == (b2, b3) and res.accuracy == pytest.approx(acc)
    assert res.accuracy >= base.accuracy
    assert res.to_dict()["grid_shape"] == [8, 8]


def test_input_errors():
    l0, l1, l2 = _random_logits(n=4, v=2, k=3)
    with pytest.raises(ValueError, match="labels"):
        search_betas(l0, l1, l2, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="3 labels for 4"):
        search_betas(l0, l1, l2, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="method"):
        accuracy_table(l0, l1, l2, torch.zeros(4), [0.1], [0.1], method="fast")


def test_nan_logits_are_an_error():
    l0, l1, l2 = _random_logits(n=20, seed=3)
    l1[4, 1, 2] = float("nan")
    labels = torch.zeros(20, dtype=torch.long)
    with pytest.raises(ValueError, match=r"l1 holds NaN/inf logits \(first at cloud 4\)"):
        search(l0, l1, l2, labels)
    with pytest.raises(ValueError, match="NaN/inf"):
        search_view_weights(l0, l1, l2, labels, 1.0, 0.05)
