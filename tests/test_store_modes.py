"""Compact feature stores (store: tokens8 | logits): what they keep, that logits read from a
logits store equal the logits computed from tokens, that another text set gets another store,
and that the uses they cannot answer are refused naming the option."""
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from fakes import C, HW, V, FakeBackbone, FakeDataset, FakeProjector
from test_scripts import load_script
from pointcalip.cli import main
from pointcalip.ablation.config import AblationConfig
from pointcalip.config import COMPACT_STORE_COMMANDS, STORE_MODES, ConfigError, ZeroShotConfig
from pointcalip.extract import Interrupted, extract
from pointcalip.fewshot.config import FewShotConfig
from pointcalip.search import search
from pointcalip.report.results import run_name
from pointcalip.store import (FeatureStore, StoreModeError, bytes_per_cloud, dequantize_tokens,
                              quantize_tokens, store_key)
from pointcalip.store import STORE_MODES as STORE_MODES_OF_STORE
from pointcalip.pipeline import compute_view_logits, split_store

K = 5


def unit_text(seed, k=K):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(k, C, generator=g), dim=-1)


def features(root, mode, text=None, rows=None, batch_size=4, projector=None):
    ds, bb = FakeDataset(), FakeBackbone()
    store = split_store(FeatureStore(root), mode, ds, FakeProjector(), bb, text)
    return extract(store, ds, rows, projector or FakeProjector(), bb, batch_size=batch_size)


def test_modes_are_listed_once():
    assert STORE_MODES == STORE_MODES_OF_STORE
    assert ZeroShotConfig().store == "tokens"          # nothing changes for existing users


def test_logits_store_equals_logits_from_tokens(tmp_path):
    text = unit_text(0)
    tokens = features(tmp_path, "tokens")
    stored = features(tmp_path, "logits", text, batch_size=3)        # other batches too
    assert stored.store.path != tokens.store.path and "-logits-" in stored.store.path.name
    want = compute_view_logits(tokens, text)
    got = compute_view_logits(stored, text)
    for a, b in zip(want.as_tuple(), got.as_tuple()):
        assert a.shape == b.shape == (10, V, K) and a.abs().max() > 1
        torch.testing.assert_close(b, a, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(got.labels, tokens.labels)
    sub_want, sub_got = (compute_view_logits(f, text, views=[2, 0]) for f in (tokens, stored))
    for a, b in zip(sub_want.as_tuple(), sub_got.as_tuple()):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-4)
    labels = torch.as_tensor(want.labels)
    found = [search(*x.as_tuple(), labels, search_weights=True) for x in (want, got)]
    assert (found[0].beta2, found[0].beta3, found[0].view_weights) == \
        (found[1].beta2, found[1].beta3, found[1].view_weights)
    g_tok, _, n_tok = tokens.store.read(np.arange(10), spatial=False)
    g_log, _, n_log = stored.store.read(np.arange(10), spatial=False)      # global kept
    np.testing.assert_array_equal(g_log, g_tok)
    np.testing.assert_array_equal(n_log, n_tok)
    piece = next((stored.store.path / "pieces").iterdir())
    assert sorted(p.name for p in piece.glob("*.npy")) == \
        ["global.npy", "l0.npy", "l1.npy", "l2.npy", "norm.npy", "rows.npy"]


def test_other_texts_get_another_store_and_tokens_are_refused(tmp_path):
    text, other = unit_text(0), unit_text(1)
    stored = features(tmp_path, "logits", text)
    again = features(tmp_path, "logits", text.clone())
    assert again.store.path == stored.store.path and again.stats.encoded == 0
    fresh = features(tmp_path, "logits", other)                 # another prompt set
    assert fresh.store.path != stored.store.path and fresh.stats.encoded == 10
    fewer = features(tmp_path, "logits", text[:3])               # another class list
    assert fewer.store.path not in (stored.store.path, fresh.store.path)
    with pytest.raises(StoreModeError, match=r"other class texts .*store=tokens"):
        compute_view_logits(stored, other)
    with pytest.raises(StoreModeError, match=r"store: logits.*--set store=tokens"):
        stored.store.read([0, 1])
    with pytest.raises(StoreModeError, match="store: logits"):
        next(stored.batches(4))
    g, s, n = features(tmp_path, "tokens").store.read([0])
    with pytest.raises(ValueError, match="a logits store takes logits and no spatial tokens"):
        stored.store.write([0], g, s, n)
    with pytest.raises(ValueError, match="needs the class-text features"):
        FeatureStore(tmp_path).open(FakeDataset(), FakeProjector(), FakeBackbone(), "logits")
    with pytest.raises(ValueError, match="unknown store mode 'int4'"):
        FeatureStore(tmp_path).open(FakeDataset(), FakeProjector(), FakeBackbone(), "int4")


def test_tokens8_store_reads_back_close_tokens(tmp_path):
    tokens = features(tmp_path, "tokens")
    small = features(tmp_path, "tokens8")
    assert small.store.path != tokens.store.path and "-tokens8-" in small.store.path.name
    g, s, n = tokens.store.read(np.arange(10))
    g8, s8, n8 = small.store.read(np.arange(10))
    np.testing.assert_array_equal(g8, g)
    np.testing.assert_array_equal(n8, n)
    assert s8.dtype == np.float16 and s8.shape == (10, V, HW, C)
    step = np.abs(s.astype(np.float32)).max(axis=-1, keepdims=True) / 127   # one int8 step
    err = np.abs(s8.astype(np.float32) - s.astype(np.float32))
    assert (err <= step / 2 + 2e-3).all() and err.max() > 0      # half a step + float16
    piece = next((small.store.path / "pieces").iterdir())
    assert np.load(piece / "spatial.npy").dtype == np.int8
    assert np.load(piece / "scale.npy").shape[1:] == (V, HW)
    text = unit_text(0)
    a, b = compute_view_logits(tokens, text), compute_view_logits(small, text)
    assert 0 < float((a.l1 - b.l1).abs().max()) < 1.0


def test_quantize_round_trip():
    x = np.array([[0.5, -0.25, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]], np.float32)
    q, scale = quantize_tokens(x)
    np.testing.assert_array_equal(q, [[64, -32, 0, 127], [0, 0, 0, 0]])
    np.testing.assert_allclose(scale, [1 / 127, 0])
    np.testing.assert_allclose(dequantize_tokens(q, scale), [[0.504, -0.252, 0, 1], [0, 0, 0, 0]],
                               atol=1e-3)


def test_bytes_per_cloud():
    assert bytes_per_cloud("tokens", 10, 256, 768) == 10 * 256 * 768 * 2 + 10 * 768 * 2 + 40
    assert bytes_per_cloud("tokens8", 10, 256, 768) == 10 * 256 * (768 + 4) + 10 * 768 * 2 + 40
    assert bytes_per_cloud("logits", 10, 256, 768, 1156) == 3 * 10 * 1156 * 4 + 10 * 768 * 2 + 40


def test_damaged_logits_piece_is_set_aside_and_encoded_again(tmp_path):
    text = unit_text(0)
    stored = features(tmp_path, "logits", text)
    want = compute_view_logits(stored, text)
    piece = sorted((stored.store.path / "pieces").iterdir())[0]
    l1 = piece / "l1.npy"
    data = bytearray(l1.read_bytes())
    data[-40:] = bytes(40)                                        # same size, other bytes
    l1.write_bytes(bytes(data))
    again = features(tmp_path, "logits", text)
    assert again.stats.encoded == 4 and (stored.store.path / "damaged").is_dir()
    for a, b in zip(want.as_tuple(), compute_view_logits(again, text).as_tuple()):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-4)


def test_interrupted_logits_run_keeps_whole_pieces(tmp_path):
    text = unit_text(0)
    with pytest.raises(Interrupted):
        features(tmp_path, "logits", text, projector=FakeProjector(fail_after=1))
    store = split_store(FeatureStore(tmp_path), "logits", FakeDataset(), FakeProjector(),
                        FakeBackbone(), text)
    np.testing.assert_array_equal(store.missing(), np.arange(4, 10))
    assert not any((store.path / "writing").iterdir())


def test_commands_that_read_tokens_only_refuse_compact_stores():
    ZeroShotConfig(store="logits").validate()
    ZeroShotConfig(store="tokens8").validate()
    assert set(COMPACT_STORE_COMMANDS) == {"zeroshot", "benchmark"}
    with pytest.raises(ConfigError, match=r"store is logits, which keeps CALIP's per-view logits "
                                          r".*`pointcalip fewshot` reads float16 tokens only: "
                                          r"use tokens"):
        FewShotConfig(store="logits").validate()
    with pytest.raises(ConfigError, match=r"store is tokens8.*`pointcalip ablate`"):
        AblationConfig(store="tokens8").validate()
    with pytest.raises(ConfigError, match="store must be one of"):
        ZeroShotConfig(store="fp8")


def test_extract_then_zeroshot_from_logits_store(small_modelnet, tiny_checkpoints, tmp_path, capsys):
    cache = tmp_path / "store"
    argv = ["--set", f"data.root={small_modelnet}", "--set", f"backbone={tiny_checkpoints['vit']}",
            "--set", f"cache_dir={cache}", "--set", "batch_size=5", "--set", "tune.val_fraction=0.5",
            "--set", "tune.grid=20"]

    def zeroshot(out, *extra):
        assert main(["zeroshot", "--config", "modelnet40", "--set", f"output_dir={tmp_path / out}",
                     *argv, *extra]) == 0
        return json.loads((tmp_path / out / "results.json").read_text())

    assert main(["extract", "--config", "modelnet40", *argv, "--set", "store=logits"]) == 0
    assert "| 12 | 12 | 0 |" in capsys.readouterr().out           # rows, encoded, stored
    logits = zeroshot("logits", "--set", "store=logits")
    assert {k: f["encoded_now"] for k, f in logits["features"].items()} == {"test": 0, "tune": 0}
    assert all("-logits-" in f["store"] for f in logits["features"].values())
    assert not list(cache.glob("*/pieces/*/spatial.npy"))
    tokens = zeroshot("tokens")
    for key in ("accuracy", "accuracy_topk", "beta2", "beta3", "view_weights"):
        assert logits[key] == tokens[key], key
    other = zeroshot("other", "--set", "store=logits", "--set", "templates=depth_ensemble")
    assert {k: f["encoded_now"] for k, f in other["features"].items()} == {"test": 12, "tune": 12}
    assert len(list(cache.glob("*-logits-*"))) == 4                  # 2 splits x 2 text sets


def test_token_stores_keep_their_keys_and_run_names(tmp_path):
    # keys computed with the store as it was before modes existed
    assert store_key({"d": 1}, {"p": 1}, "w", "float32") == "6770ffaae985bdd2c07b"
    assert store_key({"d": 1}, {"p": 1}, "w", "float16", "onnxruntime") == "42b6d3d28adfe0d625f4"
    assert len({store_key({"d": 1}, {"p": 1}, "w", "float32", mode=m) for m in STORE_MODES}) == 3
    meta = json.loads((features(tmp_path, "tokens").store.path / "store.json").read_text())
    assert "store" not in meta and "text" not in meta
    cfg = ZeroShotConfig().to_dict()
    before = {k: v for k, v in cfg.items() if k != "store"}
    assert run_name(cfg, "x") == run_name(before, "x") != run_name({**cfg, "store": "tokens8"}, "x")


def test_bench_measures_what_the_store_gives(tmp_path):
    bench = load_script("bench_store_modes")
    g, s, text, _ = bench.structured_source(3, hw=6, c=16, k=7)
    rows = {row[2]: row for row in bench.measure("small", g, s, text, tmp_path)}
    assert rows["logits"][3] == bytes_per_cloud("logits", 10, 6, 16, 7) < rows["tokens"][3]
    assert rows["logits"][4] == rows["tokens"][4]             # the same errors: no extra loss
    assert rows["tokens8"][4]["l1"] > rows["tokens"][4]["l1"] > 0
    assert rows["tokens"][4]["top1"] == 1.0


def test_two_writers_fill_one_logits_store(tmp_path):
    text = unit_text(0)
    with ThreadPoolExecutor(2) as pool:          # two writers, overlapping rows, no lock
        done = list(pool.map(lambda rows: features(tmp_path, "logits", text, rows, batch_size=2),
                             ([0, 1, 2, 3, 4, 5], [4, 5, 6, 7, 8, 9])))
    assert done[0].store.path == done[1].store.path
    reader = features(tmp_path, "logits", text)
    assert reader.stats.encoded == 0
    want = compute_view_logits(features(tmp_path / "tokens", "tokens"), text)
    for a, b in zip(want.as_tuple(), compute_view_logits(reader, text).as_tuple()):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-4)
