"""OnlineCache and the stream runner (docs/test-time-cache.md): alpha 0 is
zero-shot exactly, capacities hold, a full class keeps its k lowest-entropy items, batch size
and seeds, a planted shift the cache must repair, and leaks (later clouds, labels) detected."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pointcalip.testtime import (OnlineCache, StreamInputs, kmeans_centres, run_stream,
                                 stream_orders, summarize)


def random_stream(n=60, k=6, d=12, seed=0, dtype=torch.float32, m=3, c=8):
    g = torch.Generator().manual_seed(seed)
    keys = F.normalize(torch.randn(n, d, generator=g, dtype=dtype), dim=1)
    base = torch.randn(n, k, generator=g, dtype=dtype) * torch.rand(n, 1, generator=g, dtype=dtype) * 4
    centres = F.normalize(torch.randn(n, m, c, generator=g, dtype=dtype), dim=-1)
    labels = torch.randint(0, k, (n,), generator=g).numpy()
    return StreamInputs(base, keys, labels, centres)


def planted_shift(n=300, k=5, d=16, seed=0, shifted=0.6):
    """Clouds of class y have keys near prototype P_y. A ``shifted`` share has base logits
    that prefer class y + 1 by a small margin (uncertain and wrong); the others are confidently
    right. Zero-shot accuracy is 1 - shifted; confident neighbours in the cache repair the rest."""
    g = torch.Generator().manual_seed(seed)
    protos = F.normalize(torch.randn(k, d, generator=g), dim=1)
    labels = torch.randint(0, k, (n,), generator=g)
    keys = F.normalize(protos[labels] + 0.25 * torch.randn(n, d, generator=g) / math.sqrt(d), dim=1)
    base = torch.randn(n, k, generator=g) * 0.3
    moved = torch.rand(n, generator=g) < shifted
    rows = torch.arange(n)
    base[rows, labels] += torch.where(moved, torch.tensor(1.0), torch.tensor(9.0))
    base[rows[moved], (labels[moved] + 1) % k] += 2.5
    return StreamInputs(base, keys, labels.numpy())


def defaults(k, **kw):
    return lambda: OnlineCache(k, **kw)


# ----------------------------------------------------------------------------- the cache rule

def test_alpha_zero_returns_the_base_logits_bit_for_bit():
    s = random_stream(dtype=torch.float32)
    for local in (False, True):
        cache = OnlineCache(6, alpha=0.0, neg_alpha=0.0, local=local, scale=2.449)
        out = cache.step(s.base, s.keys, s.centres if local else None)
        assert torch.equal(out, s.base)
        assert sum(cache.sizes()[0]) > 0                   # it still cached (and only scored 0)


def test_capacity_is_never_exceeded():
    s = random_stream(n=200, k=4)
    cache = OnlineCache(4, capacity=3, neg_capacity=2, neg_band=(0.0, 1.0), local=True)
    for i in range(len(s)):
        cache.step(s.base[i:i + 1], s.keys[i:i + 1], s.centres[i:i + 1])
        pos, neg = cache.sizes()
        assert max(pos) <= 3 and max(neg) <= 2
    assert pos == [3, 3, 3, 3] and neg == [2, 2, 2, 2]


def test_a_full_class_keeps_its_k_lowest_entropy_items():
    g = torch.Generator().manual_seed(3)
    n, k = 40, 5
    base = torch.randn(n, k, generator=g)
    base[:, 2] += 6.0 + 6.0 * torch.rand(n, generator=g)      # every cloud predicts class 2
    keys = F.normalize(torch.randn(n, 7, generator=g), dim=1)
    cache = OnlineCache(k, capacity=3, neg_capacity=0)
    cache.step(base, keys)
    entropy = -(base.softmax(1) * base.log_softmax(1)).sum(1)
    best = torch.argsort(entropy)[:3]
    items = cache.entries()
    assert [e.label for e in items] == [2, 2, 2]
    assert [e.entropy for e in items] == pytest.approx(entropy[best].tolist(), abs=1e-6)
    for item, row in zip(items, best):
        assert torch.equal(item.key, keys[row])


def test_negative_items_need_the_entropy_band_and_keep_their_probabilities():
    k = 4
    base = torch.tensor([[9.0, 0, 0, 0], [3.0, 0.5, 0, 0], [0.5, 0.5, 0.5, 0.4]])
    h = -(base.softmax(1) * base.log_softmax(1)).sum(1) / math.log2(k)
    assert h[0] < 0.2 and 0.2 < h[1] < 0.5 and h[2] > 0.5
    keys = F.normalize(torch.randn(3, 5, generator=torch.Generator().manual_seed(0)), dim=1)
    cache = OnlineCache(k)
    cache.step(base, keys)
    (item,) = cache.entries(negative=True)
    assert torch.equal(item.key, keys[1]) and torch.allclose(item.probs, base[1].softmax(0))


def test_scores_follow_the_formula_with_the_scale_conversion():
    s = random_stream(n=30, k=5)
    scale = 2.0
    cache = OnlineCache(5, alpha=1.5, beta=2.0, neg_alpha=0.3, neg_band=(0.0, 1.0), local=True,
                        local_beta=4.0, scale=scale)
    out = cache.step(scale * s.base, s.keys, s.centres)
    f, u, z = s.keys[-1], s.centres[-1], scale * s.base[-1]
    expected = z.clone()
    for e in cache.entries():
        expected[e.label] += scale * 1.5 * math.exp(-2.0 * (1 - float(f @ e.key)))
        for centre in e.centres:
            expected[e.label] += scale * 1.5 * math.exp(-4.0 * (1 - float(u.mean(0) @ centre)))
    for e in cache.entries(negative=True):
        mask = ((e.probs > 0.03) & (e.probs < 1.0)).float()
        expected -= scale * 0.3 * math.exp(-1.0 * (1 - float(f @ e.key))) * mask
    torch.testing.assert_close(out[-1], expected, atol=1e-5, rtol=1e-6)


def test_scale_only_rescales_the_logits():
    s = random_stream(n=40, k=6, dtype=torch.float64)
    one = OnlineCache(6, neg_band=(0.0, 1.0)).step(s.base, s.keys)
    scaled = OnlineCache(6, neg_band=(0.0, 1.0), scale=3.0).step(3.0 * s.base, s.keys)
    torch.testing.assert_close(scaled, 3.0 * one)


def test_score_first_scores_with_the_cache_as_it_was():
    s = random_stream(n=20)
    after = OnlineCache(6).step(s.base, s.keys)
    before = OnlineCache(6, score_first=True).step(s.base, s.keys)
    assert torch.equal(before[0], s.base[0]) and not torch.equal(after[0], s.base[0])
    assert not torch.allclose(before, after)


def test_a_local_cache_needs_centres():
    s = random_stream(n=3)
    with pytest.raises(ValueError, match="centres"):
        OnlineCache(6, local=True).step(s.base, s.keys)


# ------------------------------------------------------------------------------------ k-means

def test_kmeans_finds_planted_clusters_and_is_seeded():
    g = torch.Generator().manual_seed(0)
    dirs = F.normalize(torch.randn(3, 16, generator=g), dim=1)
    pick = torch.randint(0, 3, (2, 4, 20), generator=g)
    spatial = dirs[pick] + 0.05 * torch.randn(2, 4, 20, 16, generator=g)     # [B, V, HW, C]
    centres = kmeans_centres(spatial, m=3, seed=5)
    assert centres.shape == (2, 3, 16)
    for b in range(2):
        sims = centres[b] @ dirs.t()                     # each centre matches one direction
        assert sorted(sims.argmax(1).tolist()) == [0, 1, 2] and sims.max(1).values.min() > 0.99
    assert torch.equal(centres, kmeans_centres(spatial, m=3, seed=5))
    assert torch.equal(centres[1:], kmeans_centres(spatial[1:], m=3, seed=5))   # per cloud


# ------------------------------------------------------------------------------ the protocol

@pytest.mark.parametrize("local", [False, True])
def test_batch_size_changes_nothing(local):
    s = random_stream(n=50)
    if not local:
        s.centres = None
    order = stream_orders(len(s), 1, seed=4)[0]
    runs = [run_stream(s, order, defaults(6, local=local, neg_band=(0.0, 1.0)), batch_size=b)
            for b in (1, 7, 64)]
    for run in runs[1:]:
        assert torch.equal(run.logits, runs[0].logits)


def test_orders_and_runs_are_determined_by_the_seed():
    a, b = stream_orders(30, 5, seed=1), stream_orders(30, 5, seed=1)
    assert np.array_equal(a, b) and not np.array_equal(a, stream_orders(30, 5, seed=2))
    assert all(sorted(o) == list(range(30)) for o in a) and len({tuple(o) for o in a}) == 5
    s = random_stream(n=30)
    one = [run_stream(s, o, defaults(6, local=True)).logits for o in a]
    two = [run_stream(s, o, defaults(6, local=True)).logits for o in b]
    assert all(torch.equal(x, y) for x, y in zip(one, two))


def test_the_cache_repairs_a_planted_shift_by_a_wide_margin():
    s = planted_shift()
    zero_shot = float((s.base.argmax(1).numpy() == s.labels).mean() * 100)
    assert 30 < zero_shot < 50
    runs = [run_stream(s, o, defaults(5)) for o in stream_orders(len(s), 5, seed=0)]
    summary = summarize(runs)
    assert summary.mean > zero_shot + 40, (zero_shot, summary.to_dict())
    assert summary.online and summary.std < 5
    curve = runs[0].running                               # the running accuracy climbs
    assert curve[-1] == pytest.approx(runs[0].accuracy) and curve[-1] > curve[9]


def _future_blind(make_run, s: StreamInputs, order) -> bool:
    """Whether the logits of the first half of the stream stay the same when the clouds of the
    second half are replaced by others."""
    half = len(order) // 2
    other = StreamInputs(s.base.clone(), s.keys.clone(), s.labels.copy(), s.centres)
    later = torch.as_tensor(order[half:])
    other.base[later] = other.base[later].flip(1) * 2
    other.keys[later] = other.keys[later].roll(1, dims=1)
    return torch.equal(make_run(s, order).logits[:half], make_run(other, order).logits[:half])


def _label_blind(make_run, s: StreamInputs, order) -> bool:
    """Whether the logits stay the same when the labels are shuffled."""
    shuffled = StreamInputs(s.base, s.keys, np.random.default_rng(0).permutation(s.labels), s.centres)
    return torch.equal(make_run(s, order).logits, make_run(shuffled, order).logits)


def test_a_leak_of_later_clouds_or_labels_is_detected():
    s = planted_shift(n=120)
    order = stream_orders(len(s), 1, seed=0)[0]

    def online(x, o):
        return run_stream(x, o, defaults(5))

    def prefilled(x, o):          # Point-Cache's pre-fill: sees test clouds before their turn
        return run_stream(x, o, defaults(5), prefill_order=o[::-1])

    def with_labels(x, o):        # pseudo-labels replaced by the true labels
        boosted = StreamInputs(x.base + 20.0 * F.one_hot(torch.as_tensor(x.labels), 5), x.keys,
                               x.labels)
        run = run_stream(boosted, o, defaults(5))
        run.logits = run.logits - 20.0 * F.one_hot(torch.as_tensor(x.labels[o]), 5)
        return run

    assert _future_blind(online, s, order) and _label_blind(online, s, order)
    assert not _future_blind(prefilled, s, order)
    assert not _label_blind(with_labels, s, order)
    assert not prefilled(s, order).online and online(s, order).online
