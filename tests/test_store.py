"""Feature store: rows on demand, resumable and crash-safe writes, damage, concurrent writers."""
import errno
import json
import multiprocessing
import os
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import pointcalip.store as store_module
from fakes import (C, HW, V, FakeBackbone, FakeDataset, FakeProjector, fill_rows_in_child,
                   make_read_only, remove_tree, run_as_reader)
from pointcalip.core import atomic
from pointcalip.core.atomic import DiskFullError
from pointcalip.extract import Interrupted, extract
from pointcalip.projection.catalog import projector_options
from pointcalip.store import FeatureStore, store_key
from projector_variants import projector_names, variants


def open_store(root, ds=None, proj=None, bb=None):
    return FeatureStore(root).open(ds or FakeDataset(), proj or FakeProjector(), bb or FakeBackbone())


def expected_features(ds, rows):
    """What the fake encoder gives for `rows`, as the store keeps it (float16)."""
    proj, bb = FakeProjector(), FakeBackbone()
    g, s, n = bb.encode_images(proj(ds.points(rows)).flatten(0, 1), return_norms=True)
    return (g.view(len(rows), V, C).half().numpy(), s.view(len(rows), V, HW, C).half().numpy(),
            n.view(len(rows), V).numpy())


def test_miss_then_hit_encodes_nothing(tmp_path):
    ds, bb = FakeDataset(), FakeBackbone()
    store = open_store(tmp_path, ds, bb=bb)
    first = extract(store, ds, None, FakeProjector(), bb, batch_size=4)
    assert bb.images_seen == len(ds) * V and first.stats.encoded == 10 and first.stats.cached == 0
    bb2, proj2 = FakeBackbone(), FakeProjector()
    second = extract(open_store(tmp_path, ds), ds, None, proj2, bb2, batch_size=4)
    assert bb2.images_seen == 0 and proj2.calls == 0 and second.stats.cached == 10
    assert second.stats.cached_encoding_s == pytest.approx(first.stats.projection_s + first.stats.encoding_s, rel=0.05)
    g, s, n = store.read(np.arange(10))
    want = expected_features(ds, np.arange(10))
    np.testing.assert_array_equal(g, want[0])
    np.testing.assert_array_equal(s, want[1])
    np.testing.assert_allclose(n, want[2], rtol=1e-6)
    np.testing.assert_array_equal(second.labels, ds.labels)



def test_threads_of_one_process_check_writability_at_once(tmp_path):
    """Writers in two threads of one process (e.g. a thread pool filling one store) probe the
    folder at the same time: neither may take the other's probe for an unwritable folder."""
    from concurrent.futures import ThreadPoolExecutor
    store = open_store(tmp_path, FakeDataset())

    def probe(_):
        for _ in range(300):
            store.check_writable("a test")
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(probe, range(2)))           # raises if one probe was mistaken for denial

def test_only_missing_rows_are_encoded(tmp_path):
    ds, bb = FakeDataset(), FakeBackbone()
    store = open_store(tmp_path, ds)
    extract(store, ds, [7, 1, 4], FakeProjector(), bb)
    assert bb.images_seen == 3 * V
    np.testing.assert_array_equal(store.missing(), [0, 2, 3, 5, 6, 8, 9])
    feats = extract(store, ds, [4, 5, 1, 9], FakeProjector(), bb, batch_size=1)
    assert bb.images_seen == (3 + 2) * V and feats.stats.encoded == 2 and feats.stats.cached == 2
    np.testing.assert_array_equal(feats.rows, [4, 5, 1, 9])      # order as asked
    np.testing.assert_array_equal(feats.labels, ds.labels[[4, 5, 1, 9]])
    g, _, _ = store.read([9, 1, 4])
    np.testing.assert_array_equal(g, expected_features(ds, [9, 1, 4])[0])


def test_views_are_slices_of_the_stored_views(tmp_path):
    ds = FakeDataset()
    feats = extract(open_store(tmp_path, ds), ds, None, FakeProjector(), FakeBackbone())
    (g_all, s_all, n_all), = feats.batches(10)
    (g, s, n), = feats.batches(10, views=[2, 0])
    torch.testing.assert_close(g, g_all[:, [2, 0]])
    torch.testing.assert_close(s, s_all[:, [2, 0]])
    torch.testing.assert_close(n, n_all[:, [2, 0]])
    assert g.dtype == torch.float32 and g.shape == (10, 2, C)
    with pytest.raises(ValueError, match=r"views \[3\] out of range: the store holds 3 views"):
        next(feats.batches(10, views=[3]))


def test_key_depends_on_every_ingredient():
    base = store_key({"d": 1}, {"p": 1}, "w", "float32")
    assert base == store_key({"d": 1}, {"p": 1}, "w", "float32")
    assert base == store_key({"d": 1}, {"p": 1}, "w", "float32", "eager")
    others = {store_key({"d": 2}, {"p": 1}, "w", "float32"), store_key({"d": 1}, {"p": 2}, "w", "float32"),
              store_key({"d": 1}, {"p": 1}, "w2", "float32"), store_key({"d": 1}, {"p": 1}, "w", "float16"),
              store_key({"d": 1}, {"p": 1}, "w", "float32", "onnxruntime")}
    assert base not in others and len(others) == 5


@pytest.mark.parametrize("name", projector_names())
def test_every_projector_option_is_another_store(tmp_path, name):
    """Features encoded under one projector setting are never read as another's: changing any
    one option of any registered projector (tests/projector_variants.py) opens another store."""
    folders = {}
    for option, base, changed in variants(name):
        path = open_store(tmp_path, proj=changed).path
        assert path != open_store(tmp_path, proj=base).path, option
        folders[path] = option
    assert len(folders) == len(projector_options(name))


def test_every_other_ingredient_opens_another_store(tmp_path):
    """What `FeatureStore.open` passes to the key: the dataset's settings, the backbone's
    identity, precision and engine, the store mode and, for logits, the class texts and the
    attention temperature; each, changed alone, is another folder."""
    text = np.eye(3, C, dtype=np.float32)

    def backbone(**attrs):
        bb = FakeBackbone()
        bb.__dict__.update(attrs)
        return bb

    store = FeatureStore(tmp_path)
    ds, proj = FakeDataset(), FakeProjector()
    paths = [store.open(ds, proj, FakeBackbone()).path,
             store.open(FakeDataset(seed=1), proj, FakeBackbone()).path,
             store.open(ds, proj, backbone(identity="other-weights")).path,
             store.open(ds, proj, backbone(precision="float16")).path,
             store.open(ds, proj, backbone(engine="onnxruntime")).path,
             store.open(ds, proj, FakeBackbone(), mode="tokens8").path,
             store.open(ds, proj, FakeBackbone(), mode="logits", text=text).path,
             store.open(ds, proj, FakeBackbone(), mode="logits", text=text[::-1].copy()).path,
             store.open(ds, proj, FakeBackbone(), mode="logits", text=text, temperature=0.3).path]
    assert len(set(paths)) == len(paths)


def test_each_engine_has_its_own_store(tmp_path):
    eager = open_store(tmp_path)
    fast_bb = FakeBackbone()
    fast_bb.engine = "onnxruntime"
    fast = open_store(tmp_path, bb=fast_bb)
    assert fast.path != eager.path and fast.meta["backbone"]["engine"] == "onnxruntime"
    assert "engine" not in eager.meta["backbone"]           # eager stores keep their old keys
    assert FeatureStore(tmp_path).find(FakeDataset(), FakeProjector(), FakeBackbone.identity,
                                       "float32", "onnxruntime").path == fast.path


def test_interrupted_run_keeps_whole_batches_and_resumes(tmp_path):
    ds = FakeDataset()
    store = open_store(tmp_path, ds)
    with pytest.raises(Interrupted, match=r"8 of 10 clouds encoded in this run are kept in .*run the same command again"):
        extract(store, ds, None, FakeProjector(fail_after=2), FakeBackbone(), batch_size=4)
    np.testing.assert_array_equal(store.missing(), [8, 9])
    bb = FakeBackbone()
    done = extract(open_store(tmp_path, ds), ds, None, FakeProjector(), bb, batch_size=3)
    assert bb.images_seen == 2 * V and done.stats.encoded == 2
    fresh = FeatureStore(tmp_path / "fresh").open(ds, FakeProjector(), FakeBackbone())
    extract(fresh, ds, None, FakeProjector(), FakeBackbone())
    for a, b in zip(store.read(np.arange(10)), fresh.read(np.arange(10))):
        np.testing.assert_array_equal(a, b)
    assert not list((store.path / "writing").iterdir())


def test_a_piece_killed_while_written_is_never_read(tmp_path, monkeypatch):
    ds = FakeDataset()
    store = open_store(tmp_path, ds)
    real_save, calls = store_module._save, []

    def dying_save(path, array):          # the process "dies" after writing two arrays
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real_save(path, array)

    monkeypatch.setattr(store_module, "_save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        extract(store, ds, None, FakeProjector(), FakeBackbone(), batch_size=10)
    monkeypatch.setattr(store_module, "_save", real_save)
    assert store.missing().tolist() == list(range(10))
    # A leftover of a dead process on this host is cleaned up; a live one's is not touched.
    dead = store.path / "writing" / f"{socket.gethostname()}-999999999-deadbeef"
    live = store.path / "writing" / f"{socket.gethostname()}-{os.getpid()}-cafe0000"
    other_host = store.path / "writing" / "elsewhere-1-00000000"
    for d in (dead, live, other_host):
        d.mkdir(parents=True)
    open_store(tmp_path, ds)
    assert not dead.exists() and live.exists() and other_host.exists()


def test_bad_batch_size_or_broken_features_store_nothing(tmp_path):
    ds = FakeDataset()
    store = open_store(tmp_path, ds)
    for bad in (-4, 0, 2.5, True):
        with pytest.raises(ValueError, match="batch_size must be a positive integer"):
            extract(store, ds, None, FakeProjector(), FakeBackbone(), batch_size=bad)
    nan = FakeBackbone()
    nan.w_g[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"features of clouds \[0, 1, 2, 3\] are NaN/inf"):
        extract(store, ds, None, FakeProjector(), nan, batch_size=4)
    assert len(store.missing()) == 10 and not (store.path / "pieces").exists()


@pytest.mark.parametrize("damage", ["zero_byte", "truncated", "wrong_shape", "bad_rows", "bad_info",
                                    "zeroed", "one_bit", "zeroed_rows"])
def test_damaged_piece_is_set_aside_and_reencoded(tmp_path, damage, caplog):
    ds = FakeDataset()
    store = open_store(tmp_path, ds)
    extract(store, ds, None, FakeProjector(), FakeBackbone(), batch_size=5)
    piece = sorted((store.path / "pieces").iterdir())[1]                 # rows 5..9
    if damage == "zero_byte":
        (piece / "global.npy").write_bytes(b"")
    elif damage == "truncated":
        data = (piece / "spatial.npy").read_bytes()
        (piece / "spatial.npy").write_bytes(data[: len(data) // 2])
    elif damage == "wrong_shape":
        np.save(piece / "norm.npy", np.zeros((5, V + 1), np.float32))
    elif damage == "bad_rows":
        np.save(piece / "rows.npy", np.array([5, 6, 6, 8, 9]))
    elif damage == "bad_info":
        (piece / "info.json").write_text("{not json")
    else:              # same size, valid header, other bytes: only the checksums can tell
        name = {"zeroed": "spatial", "one_bit": "global", "zeroed_rows": "rows"}[damage]
        array = np.load(piece / f"{name}.npy", mmap_mode="r+")
        if damage == "one_bit":
            array.view(np.uint8).reshape(-1)[7] ^= 1
        elif damage == "zeroed_rows":
            array[0] = 0           # still ascending and in range: rows 0, 6, 7, 8, 9
        else:
            array[:] = 0
        array.flush()
        del array
    bb = FakeBackbone()
    again = open_store(tmp_path, ds)
    feats = extract(again, ds, None, FakeProjector(), bb)
    assert bb.images_seen == 5 * V and feats.stats.encoded == 5
    assert "is unreadable" in caplog.text and not piece.exists()
    assert len(list((again.path / "damaged").iterdir())) == 1
    np.testing.assert_array_equal(again.read(np.arange(10))[0], expected_features(ds, np.arange(10))[0])


@pytest.mark.parametrize("damage", ["missing", "garbage", "other_store"])
def test_damaged_store_json_starts_a_new_store(tmp_path, damage):
    ds = FakeDataset()
    store = open_store(tmp_path, ds)
    extract(store, ds, None, FakeProjector(), FakeBackbone())
    meta = store.path / "store.json"
    if damage == "missing":
        meta.unlink()
    elif damage == "garbage":
        meta.write_bytes(b"\x00" * 10)
    else:
        data = json.loads(meta.read_text())
        data["num_rows"] = 99
        meta.write_text(json.dumps(data))
    bb = FakeBackbone()
    again = open_store(tmp_path, ds)
    extract(again, ds, None, FakeProjector(), bb)
    assert again.path == store.path and bb.images_seen == 10 * V
    assert len([p for p in tmp_path.iterdir() if p.name.startswith(".damaged-")]) == 1


def test_processes_fill_disjoint_rows_at_once(tmp_path):
    """Two spawned processes (fork would copy this process's held locks into the children)
    fill alternate rows at once. Every wait is bounded: a child that hangs dumps its stacks to
    its log and exits, and the test fails showing what each child was doing."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    logs = [tmp_path.parent / f"{tmp_path.name}-child{i}.log" for i in range(2)]
    jobs = [ctx.Process(target=fill_rows_in_child, args=(tmp_path, rows, barrier, log, 60))
            for rows, log in zip(([0, 2, 4, 6, 8], [1, 3, 5, 7, 9]), logs)]
    for j in jobs:
        j.start()
    for j in jobs:
        j.join(90)
    hung = [j for j in jobs if j.is_alive()]
    for j in hung:
        j.kill()
        j.join(5)
    report = "\n".join(f"child {i} (exit code {j.exitcode}):\n{log.read_text() if log.exists() else '(no log)'}"
                       for i, (j, log) in enumerate(zip(jobs, logs)))
    assert not hung and [j.exitcode for j in jobs] == [0, 0], report
    stores = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    assert len(stores) == 1 and not [p for p in tmp_path.iterdir() if p.name.startswith(".new-")]
    store = open_store(tmp_path)
    assert len(store.missing()) == 0
    for a, b in zip(store.read(np.arange(10)), expected_features(FakeDataset(), np.arange(10))):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_overlapping_writes_are_harmless(tmp_path):
    ds = FakeDataset()
    store = open_store(tmp_path, ds)
    g, s, n = expected_features(ds, [3, 4])
    store.write([3, 4], g, s, n)
    store.write([4, 3], g[::-1], s[::-1], n[::-1])       # another writer's copy, other order
    np.testing.assert_array_equal(store.read([4, 3])[0], g[::-1])
    with pytest.raises(ValueError, match="distinct"):
        store.write([5, 5], g, s, n)
    with pytest.raises(IndexError, match="outside this split's 10 clouds"):
        store.write([10, 11], g, s, n)
    with pytest.raises(KeyError, match=r"lacks rows \[0\]"):
        store.read([0, 3])


def test_pieces_without_checksums_are_read_unchecked_with_a_warning(tmp_path, caplog):
    """Stores written before pieces carried checksums stay usable (no re-encoding)."""
    ds = FakeDataset()
    extract(open_store(tmp_path, ds), ds, None, FakeProjector(), FakeBackbone(), batch_size=5)
    store = open_store(tmp_path, ds)
    for piece in (store.path / "pieces").iterdir():
        info = json.loads((piece / "info.json").read_text())
        assert info["checksums"]["algorithm"] == "crc32" and set(info["checksums"]) == {
            "algorithm", "rows", "global", "spatial", "norm"}
        del info["checksums"]
        (piece / "info.json").write_text(json.dumps(info))
    bb = FakeBackbone()
    again = open_store(tmp_path, ds)
    extract(again, ds, None, FakeProjector(), bb)
    assert bb.images_seen == 0 and "2 piece(s) were written before pieces carried checksums" in caplog.text
    np.testing.assert_array_equal(again.read(np.arange(10))[1], expected_features(ds, np.arange(10))[1])


def _fill_disk_after(monkeypatch, pieces_ok, nbytes=100):
    """Files of the first ``pieces_ok`` pieces are written; then the disk is full: the next
    file gets ``nbytes`` bytes and the write fails with ENOSPC, as a real full disk does."""
    real_save, saved = store_module._save, []

    def save(path, array):
        saved.append(path)
        if len(saved) <= 4 * pieces_ok:                 # rows, global, spatial, norm per piece
            return real_save(path, array)
        with open(path, "wb") as f:
            f.write(array.tobytes()[:nbytes])
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module, "_save", save)


def test_full_disk_names_the_file_and_keeps_completed_pieces(tmp_path, monkeypatch):
    ds = FakeDataset()
    store = open_store(tmp_path, ds)
    _fill_disk_after(monkeypatch, pieces_ok=1)
    with pytest.raises(DiskFullError, match=r"cannot write .*writing/.*/rows\.npy: the disk is full \(no space left on the device, [0-9]+ MB free\)") as err:
        extract(store, ds, None, FakeProjector(), FakeBackbone(), batch_size=4)
    assert err.value.errno == errno.ENOSPC and isinstance(err.value, OSError)
    assert not list((store.path / "writing").iterdir())             # the broken piece is gone
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    fresh = open_store(tmp_path, ds)
    np.testing.assert_array_equal(fresh.missing(), np.arange(4, 10))
    np.testing.assert_array_equal(fresh.read(np.arange(4))[1], expected_features(ds, np.arange(4))[1])
    monkeypatch.undo()                                              # space freed: resume
    bb = FakeBackbone()
    extract(fresh, ds, None, FakeProjector(), bb, batch_size=4)
    assert bb.images_seen == 6 * V and len(fresh.missing()) == 0


def test_full_disk_when_creating_a_store(tmp_path, monkeypatch):
    real_write_json = store_module._write_json

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module, "_write_json", full)
    with pytest.raises(DiskFullError, match=f"cannot write {tmp_path}: the disk is full"):
        open_store(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == []
    monkeypatch.setattr(store_module, "_write_json", real_write_json)
    assert open_store(tmp_path).num_rows == 10


class _DiskFillsAfter:
    """A binary file whose disk fills after ``limit`` bytes (the write raises ENOSPC)."""

    def __init__(self, f, limit):
        self.f, self.limit, self.n = f, limit, 0

    def write(self, data):
        if self.n + len(data) > self.limit:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.n += len(data)
        return self.f.write(data)

    def flush(self):
        self.f.flush()


def test_atomic_write_all_or_nothing(tmp_path):
    path = tmp_path / "best.pt"
    atomic.write_bytes(path, b"old")
    with atomic.atomic_write(path) as f:
        torch.save({"w": torch.arange(5)}, f)
    assert torch.load(path)["w"].tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="boom"):            # any failure: old file kept
        with atomic.atomic_write(path) as f:
            f.write(b"half")
            raise ValueError("boom")
    assert torch.load(path)["w"].tolist() == [0, 1, 2, 3, 4]
    with atomic.atomic_write(tmp_path / "notes.txt", "w") as f:
        f.write("text")
    assert (tmp_path / "notes.txt").read_text() == "text"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "notes.txt"]


@pytest.mark.parametrize("how", ["write", "torch.save"])
def test_atomic_write_on_a_full_disk(tmp_path, how):
    path = tmp_path / "run" / "best.pt"
    path.parent.mkdir()
    atomic.write_bytes(path, b"previous")
    with pytest.raises(DiskFullError) as err:
        with atomic.atomic_write(path) as f:
            if how == "write":
                f.write(b"x" * 10)
                raise OSError(errno.ENOSPC, "No space left on device")
            torch.save({"w": torch.zeros(10000)}, _DiskFillsAfter(f, 1000))   # torch wraps it
    assert str(err.value).startswith(f"cannot write {path}: the disk is full")
    assert "unexpected pos" not in str(err.value) and err.value.errno == errno.ENOSPC
    assert path.read_bytes() == b"previous" and [p.name for p in path.parent.iterdir()] == ["best.pt"]
    assert atomic.is_disk_full(err.value) and not atomic.is_disk_full(OSError(errno.EACCES, "no"))


READER = """
import json, sys
from fakes import FakeBackbone, FakeDataset, FakeProjector
from pointcalip.extract import extract
from pointcalip.store import FeatureStore
ds, out = FakeDataset(), {}
store = FeatureStore(sys.argv[1]).check().open(ds, FakeProjector(), FakeBackbone())
feats = extract(store, ds, range(8), FakeProjector(), FakeBackbone(), batch_size=4)
out["encoded"], out["first"] = feats.stats.encoded, store.read([3])[0].tolist()
try:
    extract(store, ds, None, FakeProjector(), FakeBackbone())
except OSError as err:
    out["error"] = str(err)
print(json.dumps(out))
"""


def test_read_only_store_is_read_and_missing_rows_name_it(tmp_path):
    base = tmp_path
    try:
        root = base / "features"
        ds = FakeDataset()
        store = open_store(root, ds)
        extract(store, ds, range(8), FakeProjector(), FakeBackbone(), batch_size=4)
        make_read_only(base)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
        proc = run_as_reader([sys.executable, "-c", READER, str(root)], env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        assert out["encoded"] == 0 and out["first"] == expected_features(ds, [3])[0].tolist()
        assert out["error"] == (f"2 of 10 clouds of fake test are not stored yet, but cannot write in "
                                f"{store.path} (Permission denied): make it writable or set cache_dir "
                                f"to a writable folder (--set cache_dir=DIR)")
        assert store.missing().tolist() == [8, 9]
    finally:
        remove_tree(base)


def test_a_piece_copied_in_from_another_store_is_set_aside(tmp_path, caplog):
    """A piece of another split's store (same number of rows, same shapes) copied into this
    store's pieces/ names its own store: set aside with a warning, its rows encoded again
    (issue 27 section 3)."""
    import logging
    import shutil

    other_ds, ds = FakeDataset(seed=1), FakeDataset(seed=0)
    extract(open_store(tmp_path, other_ds), other_ds, None, FakeProjector(), FakeBackbone(),
            batch_size=5)
    other = open_store(tmp_path, other_ds)
    ours = open_store(tmp_path, ds)
    (ours.path / "pieces").mkdir(exist_ok=True)
    for piece in (other.path / "pieces").iterdir():
        shutil.copytree(piece, ours.path / "pieces" / piece.name)
    bb = FakeBackbone()
    with caplog.at_level(logging.WARNING):
        again = open_store(tmp_path, ds)
        extract(again, ds, None, FakeProjector(), bb, batch_size=5)
    assert bb.images_seen == 10 * V
    assert "does not belong here" in caplog.text and other.meta["key"] in caplog.text
    assert len(list((ours.path / "damaged").iterdir())) == 2
    np.testing.assert_array_equal(again.read(np.arange(10))[1], expected_features(ds, np.arange(10))[1])


def test_run_folders_and_store_folders_name_a_checkpoint_the_same_way(tiny_checkpoints, tiny_vit,
                                                                      tmp_path):
    """A local checkpoint is ``tiny_vit.pt`` in feature-store folders and in run folders alike
    (run folders used to drop the extension); an OpenAI name is ``ViT-B_16`` in both."""
    from pointcalip.backbones.families import short_name
    from pointcalip.config import ZeroShotConfig
    from pointcalip.core.paths import slug
    from pointcalip.report.results import backbone_label
    from pointcalip.zeroshot import default_output_dir

    path = tiny_checkpoints["vit"]
    assert tiny_vit.name == short_name(str(path)) == "tiny_vit.pt"
    assert backbone_label(str(path)) == slug(tiny_vit.name) == "tiny_vit.pt"
    assert backbone_label("ViT-B/16") == "ViT-B_16" and short_name("ViT-B/16") == "ViT-B/16"
    store = FeatureStore(tmp_path).open(FakeDataset(), FakeProjector(), tiny_vit)
    assert "-tiny_vit.pt-" in store.path.name
    run = default_output_dir(ZeroShotConfig(backbone=str(path)))
    assert run.name.startswith("modelnet40-pointclip-tiny_vit.pt-tune_val-"), run.name
