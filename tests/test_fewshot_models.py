"""CALIP-FS, PointCLIP's adapter and the Tip-Adapter cache against literal implementations of
docs/few-shot-methods.md, and the few-shot splits."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from planted import reference_logits, reference_view_logits
from pointcalip.fewshot import CALIPFS, InterViewAdapter, TipCache
from pointcalip.fewshot.data import AugmentedSplit, shot_rows, validation_rows
from pointcalip.fewshot.dropout import SeededDropout, use_generator
from pointcalip.fewshot.recipe import TrainConfig
from pointcalip.fewshot.train import EvalSet, TrainSet, fit
from pointcalip.fewshot.tip_cache import descriptors, search_alpha_beta
from pointcalip.head import CalipHead


def features(b=3, v=4, hw=6, c=8, k=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    unit = lambda *shape: F.normalize(torch.randn(*shape, generator=g), dim=-1)  # noqa: E731
    return unit(b, v, c), unit(b, v, hw, c), unit(k, c)


def slow_calip_fs(model: CALIPFS, glob, spatial, text):
    """docs/few-shot-methods.md#calip-fs, one view of one cloud at a time, products as written."""
    w = {name: p.matrix().double() for name, p in model.proj.items()}
    t = text.double()
    out = torch.zeros(glob.shape[0], text.shape[0], dtype=torch.float64)
    for i in range(glob.shape[0]):
        for j in range(glob.shape[1]):
            fv, fs = glob[i, j].double(), spatial[i, j].double()
            q, kt, vs, vt = fs @ w["q"], t @ w["k"], fs @ w["vs"], t @ w["vt"]
            a = q @ kt.T / float(model.tau.detach())
            fta = (torch.softmax(a, dim=0).T @ vs) @ w["ot"]
            fsa = (torch.softmax(a, dim=1) @ vt) @ w["os"]
            fva = fsa.mean(dim=0) + fsa.max(dim=0).values
            b2, b3, wj = (float(x.detach()) for x in (model.beta2, model.beta3, model.view_weights[j]))
            out[i] += wj * 100 * (fv @ t.T + b2 * fv @ fta.T + b3 * fva @ t.T)
    return out / math.sqrt(glob.shape[1])


@pytest.mark.parametrize("rank", [None, 3])
def test_calip_fs_starts_as_zero_shot_calip(rank):
    glob, spatial, text = features()
    weights = [1.0, 0.25, 0.75, 0.5]
    fs = CALIPFS(text, beta2=1.3, beta3=0.07, view_weights=weights, rank=rank)
    head = CalipHead(text, 1.3, 0.07, weights)
    torch.testing.assert_close(fs(glob, spatial), head(glob, spatial), atol=1e-4, rtol=0)
    torch.testing.assert_close(fs(glob, spatial).double(),
                               reference_logits(*reference_view_logits(glob, spatial, text), 1.3, 0.07, weights),
                               atol=1e-4, rtol=0)
    c = text.shape[1]
    per_projection = c * c if rank is None else 2 * c * rank
    assert fs.num_trainable() == 6 * per_projection + 3 + len(weights)


def test_calip_fs_as_the_api_spells_it():
    _, _, text = features()
    fs = CALIPFS(text, beta2=1.0, beta3=0.05, view_weights=None, rank=None)
    assert fs.num_views == 10 and fs.view_weights.tolist() == [1.0] * 10
    glob, spatial, _ = features(v=10)
    torch.testing.assert_close(fs(glob, spatial), CalipHead(text, 1.0, 0.05, num_views=10)(glob, spatial),
                               atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="aggregates 10 views"):
        fs(*features(v=4)[:2])


@pytest.mark.parametrize("rank", [None, 3])
def test_calip_fs_matches_the_spec_with_trained_projections(rank):
    glob, spatial, text = features(seed=1)
    fs = CALIPFS(text, 0.9, 0.04, num_views=4, rank=rank, seed=3)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():                              # move every parameter off its init
        for p in fs.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    got = fs(glob, spatial)
    torch.testing.assert_close(got.double(), slow_calip_fs(fs, glob, spatial, text), atol=1e-3, rtol=1e-4)
    assert (got - CalipHead(text, 0.9, 0.04, num_views=4)(glob, spatial)).abs().max() > 1
    got.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in fs.parameters())


def slow_adapter(m: InterViewAdapter, raw):
    """docs/few-shot-methods.md#pointclips-inter-view-adapter in eval mode (dropout off, BatchNorm on running statistics)."""
    def bn(x, layer):
        return (x - layer.running_mean) / torch.sqrt(layer.running_var + layer.eps) * layer.weight + layer.bias
    out = []
    for x in raw:                                       # one cloud: [V, C]
        scaled = x * m.fusion_ratio[:, None]
        normed = torch.stack([bn(view, m.global_f[0].bn) for view in scaled])
        fused = torch.relu(bn(m.global_f[3](normed.flatten()), m.global_f[4]))
        views = torch.relu(m.view_f[2](torch.relu(m.view_f[0](fused))))
        out.append(m.ratio * views + (1 - m.ratio) * x.flatten())
    return torch.stack(out)


def randomised_adapter(v=4, c=6, seed=0):
    m = InterViewAdapter(num_views=v, channels=c)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in m.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g) + (0.5 if "var" in name else -0.5))
    return m.eval()


def test_adapter_matches_the_spec():
    m = randomised_adapter()
    raw = torch.randn(3, 4, 6, generator=torch.Generator().manual_seed(1)) * 3
    with torch.no_grad():
        adapted = m(raw)
        torch.testing.assert_close(adapted.flatten(1), slow_adapter(m, raw), atol=1e-5, rtol=1e-5)
        text = F.normalize(torch.randn(5, 6, generator=torch.Generator().manual_seed(2)), dim=-1)
        want = 100 * F.normalize(adapted.flatten(1), dim=-1) @ F.normalize(text.repeat(1, 4), dim=-1).T
        torch.testing.assert_close(m.logits(raw, text), want)
    with pytest.raises(ValueError, match=r"features \[B, 4, 6\]"):
        m(raw[:, :3])


def test_adapter_loads_pointclips_checkpoint_layout(tmp_path):
    source = randomised_adapter(v=3, c=5, seed=4)
    keys = ["fusion_ratio", "global_f.0.bn.weight", "global_f.0.bn.bias", "global_f.0.bn.running_mean",
            "global_f.0.bn.running_var", "global_f.0.bn.num_batches_tracked", "global_f.3.weight",
            "global_f.3.bias", "global_f.4.weight", "global_f.4.bias", "global_f.4.running_mean",
            "global_f.4.running_var", "global_f.4.num_batches_tracked", "view_f.0.weight",
            "view_f.0.bias", "view_f.2.weight", "view_f.2.bias"]
    assert sorted(source.state_dict()) == sorted(keys)             # the released names
    state = {f"module.{k}": v.clone() for k, v in source.state_dict().items()}
    state["module.fusion_ratio"] = state["module.fusion_ratio"].view(1, 3, 1)
    path = tmp_path / "model-best.pth.tar"
    torch.save({"state_dict": state, "epoch": 250, "optimizer": {"lr": 0.01}, "val_result": 87.1}, path)
    loaded = InterViewAdapter.from_pointclip_checkpoint(path).eval()
    assert (loaded.num_views, loaded.channels) == (3, 5)
    raw = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        torch.testing.assert_close(loaded(raw), source(raw))
    torch.save({"state_dict": {"weight": torch.zeros(2)}}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not a PointCLIP adapter checkpoint: no key 'fusion_ratio'"):
        InterViewAdapter.from_pointclip_checkpoint(tmp_path / "other.pth")
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        InterViewAdapter.from_pointclip_checkpoint(tmp_path / "nowhere.pth")


def test_tip_cache_formula_and_alpha_zero():
    glob, _, _ = features(b=6, v=3)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    keys = descriptors(glob, [1.0, 0.5, 0.25])
    cache = TipCache(keys, labels, num_classes=3)
    feats = descriptors(features(b=4, v=3, seed=9)[0], [1.0, 0.5, 0.25])
    base = torch.randn(4, 3, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(cache.logits(feats, base, alpha=0.0, beta=5.0), base)
    want = base + 2.0 * torch.exp(-5.0 * (1 - feats @ keys.T)) @ F.one_hot(labels, 3).float()
    torch.testing.assert_close(cache.logits(feats, base, alpha=2.0, beta=5.0), want)
    w = torch.tensor([1.0, 0.5, 0.25]).view(1, 3, 1)
    torch.testing.assert_close(keys, F.normalize((glob * w).flatten(1), dim=-1))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        TipCache(keys, labels, num_classes=2)


def test_tip_search_finds_a_planted_cache_weight():
    g = torch.Generator().manual_seed(0)
    keys = F.normalize(torch.randn(8, 16, generator=g), dim=-1)
    labels = torch.arange(8) % 4
    feats = F.normalize(keys + 0.05 * torch.randn(8, 16, generator=g), dim=-1)   # near their own key
    base = torch.zeros(8, 4)
    base[:, 0] = 4.0                                  # zero-shot says class 0 for everything
    cache = TipCache(keys, labels, 4)
    # beta 1 lifts a cloud's own class by 5 * (e^-0.01 - e^-1) ~ 3.1 < 4; beta 10 by ~4.5
    alpha, beta, acc = search_alpha_beta(cache, feats, base, labels, [0.0, 0.5, 5.0], [1.0, 10.0])
    assert (acc, alpha, beta) == (1.0, 5.0, 10.0)
    alpha0, _, acc0 = search_alpha_beta(cache, feats, base, labels, [0.0], [1.0])
    assert (alpha0, acc0) == (0.0, 0.25)


def test_validation_is_disjoint_from_every_shot_and_shots_nest():
    labels = np.repeat(np.arange(5), 30)
    val = validation_rows(labels, 0.1, seed=0)
    assert np.bincount(labels[val]).tolist() == [3] * 5
    for seed in (1, 2, 3):
        sixteen = shot_rows(labels, val, 16, seed)
        assert not set(sixteen) & set(val) and np.bincount(labels[sixteen]).tolist() == [16] * 5
        four = shot_rows(labels, val, 4, seed)
        by_class = lambda rows: {c: set(rows[labels[rows] == c]) for c in range(5)}  # noqa: E731
        assert all(by_class(four)[c] <= by_class(sixteen)[c] for c in range(5))
        np.testing.assert_array_equal(four, shot_rows(labels, val, 4, seed))
    assert set(shot_rows(labels, val, 4, 1)) != set(shot_rows(labels, val, 4, 2))


class _Clouds:
    name, split = "toy", "train"
    labels = np.array([0, 1, 2])
    settings = {"name": "toy"}

    def __len__(self):
        return 3

    def points(self, rows):
        base = torch.arange(30, dtype=torch.float32).view(3, 10, 1).expand(3, 10, 3) / 30
        return base[torch.as_tensor(np.asarray(rows))]


def test_augmented_copies_are_seeded_and_stay_one_cloud():
    bank = AugmentedSplit(_Clouds(), copies=2, seed=7, scale=(0.5, 2.0), shift=0.1)
    assert len(bank) == 6 and bank.labels.tolist() == [0, 0, 1, 1, 2, 2]
    a, again = bank.points([0, 1, 5]), bank.points([5, 0])
    torch.testing.assert_close(a[2], again[0])
    torch.testing.assert_close(a[0], again[1])
    assert not torch.equal(a[0], a[1])                         # two copies of the same cloud differ
    original = _Clouds().points([0])[0]
    for copy in a[:2]:                                         # per-axis scale + shift of a permutation
        for axis in range(3):
            x = np.sort(copy[:, axis].numpy())
            ratio = np.polyfit(np.sort(original[:, axis].numpy()), x, 1)[0]
            assert 0.5 <= ratio <= 2.0
    assert bank.settings["augmented"] == {"copies": 2, "seed": 7, "scale": [0.5, 2.0], "shift": 0.1}


def test_seeded_dropout_draws_what_the_global_generator_drew():
    """fit gives dropout a generator seeded s; the masks equal nn.Dropout's after
    torch.manual_seed(s), so replacing the global seed changed no number."""
    x = torch.randn(5, 40, generator=torch.Generator().manual_seed(3))
    plain, seeded = torch.nn.Dropout(0.3).train(), SeededDropout(0.3).train()
    torch.manual_seed(11)
    want = [plain(x), plain(x)]
    use_generator(seeded, torch.Generator().manual_seed(11))
    got = [seeded(x), seeded(x)]
    for a, b in zip(want, got):
        assert torch.equal(a, b)
    assert not torch.equal(got[0], got[1]) and (got[0] == 0).any()      # masks, not identity
    use_generator(seeded, None)
    torch.testing.assert_close(seeded.eval()(x), x)


def test_adapter_init_from_a_generator_is_torchs_init_after_a_global_seed():
    torch.manual_seed(5)
    old = InterViewAdapter(num_views=3, channels=8)
    state = torch.get_rng_state()
    new = InterViewAdapter(num_views=3, channels=8, generator=torch.Generator().manual_seed(5))
    assert torch.equal(torch.get_rng_state(), state)                  # no global draw
    assert sorted(new.state_dict()) == sorted(old.state_dict())
    for key, value in old.state_dict().items():
        assert torch.equal(value, new.state_dict()[key]), key
    other = InterViewAdapter(num_views=3, channels=8, generator=torch.Generator().manual_seed(6))
    assert not torch.equal(other.view_f[0].weight, new.view_f[0].weight)


def test_training_sets_no_global_random_state(tmp_path):
    """fit shuffles with one generator and drops out with another, both seeded by (seed,
    epoch): torch's global generator is left as it was, and a second fit repeats the first."""
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(12, 1, 3, 8, generator=g)
    labels = torch.arange(12) % 3
    text = F.normalize(torch.randn(3, 8, generator=g), dim=-1)
    val = EvalSet((raw[:, 0],), labels)
    recipe = TrainConfig(epochs=3, batch_size=4, optimizer="sgd", lr=0.05)
    forward = lambda m, x: m.logits(x, text)  # noqa: E731
    weights = []
    for run in ("a", "b"):
        model = InterViewAdapter(3, 8, dropout=0.5, generator=torch.Generator().manual_seed(1))
        torch.manual_seed(123)
        state = torch.get_rng_state()
        fit(model, TrainSet((raw,), labels), val, recipe, tmp_path / run, seed=1, forward=forward)
        assert torch.equal(torch.get_rng_state(), state)
        weights.append(torch.load(tmp_path / run / "last.pt", weights_only=True)["model"])
    for key, value in weights[0].items():
        assert torch.equal(value, weights[1][key]), key
