"""Feature cache: hit/miss, keys, atomic writes, view subsets."""
import json

import numpy as np
import pytest
import torch

from pointcalip.cache import FeatureCache, feature_key
from pointcalip.calip import calip_logits

V, C, HW, N_POINTS = 3, 8, 4, 16


class FakeDataset:
    name, split = "fake", "test"

    def __init__(self, n=10, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.clouds = torch.rand(n, N_POINTS, 3, generator=g) - 0.5
        self.labels = np.arange(n) % 3
        self.settings = {"name": "fake", "n": n, "seed": seed}

    def __len__(self):
        return len(self.clouds)

    def __getitem__(self, i):
        return self.clouds[i], int(self.labels[i])


class FakeProjector:
    """Three 'views': the cloud scaled by 1, 2, 3, as tiny images [B, V, 3, 2, 2]."""

    num_views = V

    def __init__(self, fail_after=None, tag="a"):
        self.calls, self.fail_after = 0, fail_after
        self.settings = {"name": "fake", "tag": tag}

    def __call__(self, points):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        flat = points[:, :4, :].reshape(points.shape[0], 1, 12)
        return torch.cat([flat * (v + 1) for v in range(V)], 1).reshape(-1, V, 3, 2, 2)


class FakeBackbone:
    """Deterministic 'encoder': a fixed random linear map of the 12 pixel values."""

    name, identity, embed_dim, num_tokens, device = "fake", "fake-weights-1", C, HW, "cpu"

    def __init__(self):
        g = torch.Generator().manual_seed(1)
        self.w_g = torch.randn(12, C, generator=g)
        self.w_s = torch.randn(12, HW * C, generator=g)
        self.images_seen = 0

    def encode_images(self, images):
        self.images_seen += images.shape[0]
        x = images.flatten(1)
        g = torch.nn.functional.normalize(x @ self.w_g, dim=-1)
        s = torch.nn.functional.normalize((x @ self.w_s).view(-1, HW, C), dim=-1)
        return g, s


def test_miss_then_hit_encodes_nothing(tmp_path):
    ds, proj, bb = FakeDataset(), FakeProjector(), FakeBackbone()
    cache = FeatureCache(tmp_path)
    first = cache.load_or_encode(ds, proj, bb, batch_size=4)
    assert bb.images_seen == len(ds) * V and first.meta["cache_hit"] is False
    assert first.global_feats.shape == (10, V, C) and first.spatial.shape == (10, V, HW, C)
    assert first.global_feats.dtype == np.float16

    bb2, proj2 = FakeBackbone(), FakeProjector()
    second = cache.load_or_encode(ds, proj2, bb2, batch_size=4)
    assert bb2.images_seen == 0 and proj2.calls == 0 and second.meta["cache_hit"] is True
    np.testing.assert_array_equal(np.asarray(first.spatial), np.asarray(second.spatial))
    np.testing.assert_array_equal(second.labels, ds.labels)

    # Stored values are the encoder's outputs rounded to fp16.
    g, _ = FakeBackbone().encode_images(proj(ds.clouds).flatten(0, 1))
    np.testing.assert_allclose(np.asarray(second.global_feats, np.float32).reshape(-1, C),
                               g.numpy(), atol=1e-3)


def test_key_depends_on_every_ingredient():
    base = feature_key({"d": 1}, None, {"p": 1}, "w")
    assert base == feature_key({"d": 1}, None, {"p": 1}, "w")
    others = {feature_key({"d": 2}, None, {"p": 1}, "w"), feature_key({"d": 1}, np.arange(3), {"p": 1}, "w"),
              feature_key({"d": 1}, None, {"p": 2}, "w"), feature_key({"d": 1}, None, {"p": 1}, "w2")}
    assert base not in others and len(others) == 4


def test_subset_indices_cached_separately(tmp_path):
    ds, bb = FakeDataset(), FakeBackbone()
    cache = FeatureCache(tmp_path)
    sub = cache.load_or_encode(ds, FakeProjector(), bb, indices=np.array([1, 4, 7]))
    full = cache.load_or_encode(ds, FakeProjector(), bb)
    assert sub.path != full.path and bb.images_seen == (3 + 10) * V
    np.testing.assert_array_equal(sub.indices, [1, 4, 7])
    np.testing.assert_array_equal(np.asarray(sub.global_feats), np.asarray(full.global_feats)[[1, 4, 7]])


def test_interrupted_run_leaves_no_valid_cache_and_resumes(tmp_path):
    ds, cache = FakeDataset(), FeatureCache(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        cache.load_or_encode(ds, FakeProjector(fail_after=2), FakeBackbone(), batch_size=4)
    # Nothing that loads as a cache: only the hidden partial folder and the lock file remain.
    visible = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    assert visible == []
    assert all(cache.load(p) is None for p in tmp_path.iterdir() if p.is_dir())

    bb = FakeBackbone()
    done = cache.load_or_encode(ds, FakeProjector(), bb, batch_size=3)
    assert bb.images_seen == (10 - 8) * V  # two batches of 4 were kept; only 2 clouds left
    assert done.meta["cache_hit"] is False and len(done) == 10
    fresh = FeatureCache(tmp_path / "fresh").load_or_encode(ds, FakeProjector(), FakeBackbone())
    np.testing.assert_array_equal(np.asarray(done.spatial), np.asarray(fresh.spatial))
    np.testing.assert_array_equal(np.asarray(done.global_feats), np.asarray(fresh.global_feats))
    assert not any(p.name.startswith(".incomplete") for p in tmp_path.iterdir())


def test_partial_of_another_key_is_not_resumed(tmp_path):
    ds, cache = FakeDataset(), FeatureCache(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        cache.load_or_encode(ds, FakeProjector(fail_after=1), FakeBackbone(), batch_size=4)
    partial = next(p for p in tmp_path.iterdir() if p.name.startswith(".incomplete"))
    progress = json.loads((partial / "progress.json").read_text())
    progress["key"] = "something-else"
    (partial / "progress.json").write_text(json.dumps(progress))
    bb = FakeBackbone()
    cache.load_or_encode(ds, FakeProjector(), bb, batch_size=4)
    assert bb.images_seen == 10 * V  # started over


@pytest.mark.parametrize("damage", ["truncate", "incomplete", "no_meta"])
def test_damaged_cache_is_reencoded(tmp_path, damage):
    ds, cache = FakeDataset(), FeatureCache(tmp_path)
    folder = cache.load_or_encode(ds, FakeProjector(), FakeBackbone()).path
    if damage == "truncate":
        np.save(folder / "spatial.npy", np.zeros((3, V, HW, C), np.float16))
    elif damage == "incomplete":
        meta = json.loads((folder / "meta.json").read_text())
        meta["complete"] = False
        (folder / "meta.json").write_text(json.dumps(meta))
    else:
        (folder / "meta.json").unlink()
    bb = FakeBackbone()
    again = cache.load_or_encode(ds, FakeProjector(), bb)
    assert bb.images_seen == len(ds) * V and again.meta["cache_hit"] is False
    assert again.spatial.shape == (10, V, HW, C)


def test_view_subset_logits_equal_slices(tmp_path):
    feats = FeatureCache(tmp_path).load_or_encode(FakeDataset(), FakeProjector(), FakeBackbone())
    text = torch.nn.functional.normalize(torch.randn(5, C, generator=torch.Generator().manual_seed(2)), dim=-1)
    all_views = feats.logits(text, batch_size=3)
    some = feats.logits(text, views=[2, 0])
    for full, sub in zip(all_views, some):
        assert full.shape == (10, V, 5) and sub.shape == (10, 2, 5)
        torch.testing.assert_close(sub, full[:, [2, 0]])
    # Against calip_logits applied directly to the stored features.
    g = torch.from_numpy(np.asarray(feats.global_feats, np.float32)).flatten(0, 1)
    s = torch.from_numpy(np.asarray(feats.spatial, np.float32)).flatten(0, 1)
    for got, want in zip(all_views, calip_logits(g, s, text)):
        torch.testing.assert_close(got.flatten(0, 1), want)
    with pytest.raises(ValueError, match="holds 3 views"):
        feats.logits(text, views=[3])
