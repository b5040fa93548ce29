"""`pointcalip extract`: filling the store ahead of the runs, on one process or under torchrun.

The torchrun tests start real process groups (gloo, on the CPU) in subprocesses and compare
the stores they write with a single-process extraction piece by piece: the same blocks of
rows, byte-identical arrays. As docs/feature-store.md states the condition, the single process runs with as
many intra-op threads as each rank (torchrun sets OMP_NUM_THREADS=1; CPU kernels sum in an
order that depends on the thread count), and every piece records the threads that encoded it.
"""
import errno
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fakes import make_read_only, remove_tree, run_as_reader
from pointcalip.cli import main
from pointcalip.config import load_any_config
from pointcalip.datasets import validation_indices
from pointcalip.core.distributed import Shard, rank_device, shard_from_env
from pointcalip.extract import blocks_of
from pointcalip.fewshot.config import FewShotConfig
from pointcalip.plan import feature_jobs
from messages import error_block

TESTS = Path(__file__).parent
VAL_FRACTION = 0.5     # 12 of small_modelnet's 20 train clouds (3 per class)


def settings(root, ckpt, store, batch_size=5):
    return ["--set", f"data.root={root}", "--set", f"backbone={ckpt}",
            "--set", f"cache_dir={store}", "--set", f"batch_size={batch_size}",
            "--set", f"tune.val_fraction={VAL_FRACTION}"]


def pieces(store_root: Path) -> dict:
    """{(store folder, first row, rows): (sha256 of the piece's arrays, intra-op threads
    that encoded it)}: what must be byte-identical (piece folder suffixes and the rest of
    info.json name the writer and the time)."""
    out = {}
    for piece in store_root.glob("*/pieces/*"):
        first, n = piece.name.split("-")[:2]
        digest = hashlib.sha256()
        for array in sorted(piece.glob("*.npy")):        # rows, global, spatial, norm, ...
            digest.update(array.name.encode() + array.read_bytes())
        key = (piece.parent.parent.name, int(first), int(n))
        assert key not in out, f"two pieces hold rows {first}..+{n} of {key[0]}"
        out[key] = digest.hexdigest(), json.loads((piece / "info.json").read_text())["threads"]
    return out


def torchrun(ranks, *argv, script=None, check=True):
    """``torchrun --nproc_per_node=ranks -m pointcalip ARGV`` (or ``script``), on the CPU."""
    target = [str(script)] if script else ["-m", "pointcalip"]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={ranks}", *target, *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def single(small_modelnet, tiny_checkpoints, tmp_path_factory):
    """The store one process writes for test + val of the modelnet40 config (12 + 12 clouds,
    blocks of 5), and its pieces."""
    store = tmp_path_factory.mktemp("single")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                 # as each torchrun rank (OMP_NUM_THREADS=1)
    try:
        assert main(["extract", "--config", "modelnet40",
                     *settings(small_modelnet, tiny_checkpoints["vit"], store)]) == 0
    finally:
        torch.set_num_threads(threads)
    stored = pieces(store)
    assert {t for _, t in stored.values()} == {1}
    return store, stored


def test_blocks_depend_only_on_the_request():
    blocks = blocks_of(np.array([9, 3, 4, 3, 0, 7, 8]), 3)
    assert [b.tolist() for b in blocks] == [[0, 3, 4], [7, 8, 9]]
    shares = [Shard(r, 3).take(list(range(7))) for r in range(3)]
    assert shares == [[0, 3, 6], [1, 4], [2, 5]]


def test_rank_from_torchrun_environment(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert shard_from_env() == Shard(0, 1, 0)
    monkeypatch.setenv("RANK", "5")
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert shard_from_env() == Shard(5, 8, 1)
    assert rank_device("cpu", Shard(5, 8, 1)) == "cpu"
    monkeypatch.setenv("RANK", "8")
    with pytest.raises(ValueError, match="RANK=8 and WORLD_SIZE=8"):
        shard_from_env()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE='two'"):
        shard_from_env()


def test_extract_then_zeroshot_encodes_nothing(single, small_modelnet, tiny_checkpoints,
                                                tmp_path, capsys):
    store, stored = single
    assert {(k[1], k[2]) for k in stored if "-test-" in k[0]} == {(0, 5), (5, 5), (10, 2)}
    assert sorted(k[2] for k in stored if "-train-" in k[0]) == [2, 5, 5]
    assert main(["extract", "--config", "modelnet40",
                 *settings(small_modelnet, tiny_checkpoints["vit"], store)]) == 0
    assert "| 12 | 0 | 12 |" in capsys.readouterr().out          # rows, encoded, stored
    out = tmp_path / "out"
    assert main(["zeroshot", "--config", "modelnet40", "--set", f"output_dir={out}",
                 *settings(small_modelnet, tiny_checkpoints["vit"], store)]) == 0
    features = json.loads((out / "results.json").read_text())["features"]
    assert {k: (f["rows"], f["encoded_now"]) for k, f in features.items()} == \
        {"test": (12, 0), "tune": (12, 0)}
    assert pieces(store) == stored


def test_two_ranks_store_what_one_process_stores(single, small_modelnet, tiny_checkpoints,
                                                 tmp_path):
    torchrun(2, "extract", "--config", "modelnet40",
             *settings(small_modelnet, tiny_checkpoints["vit"], tmp_path))
    assert pieces(tmp_path) == single[1]


def test_uneven_shares_and_idle_ranks(single, small_modelnet, tiny_checkpoints, tmp_path):
    # 3 ranks and blocks of 5: test and val each have 3 blocks (5, 5, 2 clouds); blocks of
    # 12: one block each, so ranks 1 and 2 have nothing to do
    proc = torchrun(3, "extract", "--config", "modelnet40",
                    *settings(small_modelnet, tiny_checkpoints["vit"], tmp_path))
    assert pieces(tmp_path) == single[1]
    assert proc.stdout.count("| modelnet40 ") == 2        # one summary, printed by rank 0
    whole = tmp_path / "whole"
    torchrun(3, "extract", "--config", "modelnet40",
             *settings(small_modelnet, tiny_checkpoints["vit"], whole, batch_size=12))
    assert sorted(k[2] for k in pieces(whole)) == [12, 12]


def test_two_ranks_store_the_logits_one_process_stores(small_modelnet, tiny_checkpoints,
                                                       tmp_path):
    argv = ["extract", "--config", "modelnet40", "--set", "store=logits"]
    torchrun(2, *argv, *settings(small_modelnet, tiny_checkpoints["vit"], tmp_path / "ranks"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                 # as each torchrun rank (OMP_NUM_THREADS=1)
    try:
        assert main([*argv, *settings(small_modelnet, tiny_checkpoints["vit"], tmp_path / "one")]) == 0
    finally:
        torch.set_num_threads(threads)
    one = pieces(tmp_path / "one")
    assert pieces(tmp_path / "ranks") == one and len(one) == 6       # 3 blocks each of test, val
    assert all("-logits-" in folder for folder, _, _ in one)
    assert not list(tmp_path.glob("*/*/pieces/*/spatial.npy"))
    assert len(list(tmp_path.glob("*/*/pieces/*/l2.npy"))) == 12


def test_crashed_rank_resumes_to_the_same_store(single, small_modelnet, tiny_checkpoints,
                                                tmp_path):
    argv = ["extract", "--config", "modelnet40",
            *settings(small_modelnet, tiny_checkpoints["vit"], tmp_path)]
    crashed = torchrun(2, *argv, script=TESTS / "crash_one_rank.py", check=False)
    assert crashed.returncode != 0
    partial = pieces(tmp_path)
    assert 0 < len(partial) < len(single[1])
    assert all(single[1][k] == v for k, v in partial.items())
    torchrun(2, *argv)
    assert pieces(tmp_path) == single[1]


def test_ablation_and_fewshot_configs_list_what_their_runs_read(small_modelnet, tiny_checkpoints):
    base = settings(small_modelnet, tiny_checkpoints["vit"], "unused")[1::2]
    ablate = load_any_config(["ablation_projectors", "ablation_backbones"],
                             [*base, f"backbones_study.backbones=[{tiny_checkpoints['resnet']}]"])
    jobs = feature_jobs(ablate)
    assert [(j.label, j.projector.name, Path(j.backbone).name) for j in jobs] == [
        ("test", "pointclip", "tiny_vit.pt"), ("val", "pointclip", "tiny_vit.pt"),
        ("test", "realistic", "tiny_vit.pt"), ("val", "realistic", "tiny_vit.pt"),
        ("test", "pointclip", "tiny_resnet.pt"), ("val", "pointclip", "tiny_resnet.pt")]

    fewshot = load_any_config(["modelnet40_fewshot"],
                              [*base, "shots=[2]", "seeds=[0, 1]", "methods=[tip, calip_fs]",
                               "augment.copies=3"])
    assert isinstance(fewshot, FewShotConfig)
    jobs = {j.label: j for j in feature_jobs(fewshot, ["val", "test"])}
    assert list(jobs) == ["test", "val", "val (copies)"]
    train_labels = jobs["val"].dataset.labels
    rows = jobs["val"].rows               # validation (3 per class) + each seed's 2 shots
    assert len(set(rows)) == len(rows) and set(validation_indices(train_labels, VAL_FRACTION, 0)) < set(rows)
    assert (np.bincount(train_labels[rows])[np.unique(train_labels)] >= 3 + 2).all()
    shots = np.setdiff1d(rows, validation_indices(train_labels, VAL_FRACTION, 0))
    assert jobs["val (copies)"].rows.tolist() == [3 * s + c for s in shots for c in range(3)]
    whole = {j.label: j for j in feature_jobs(fewshot, ["val", "train"])}   # train covers val
    assert list(whole) == ["val (copies)", "train"] and whole["train"].rows is None
    assert [j.label for j in feature_jobs(fewshot, ["train"])] == ["train"]
    zeroshot = load_any_config(["modelnet40"], base)
    assert [j.label for j in feature_jobs(zeroshot, ["test", "val", "train"])] == ["test", "train"]


def test_extract_fills_what_fewshot_reads(small_modelnet, tiny_checkpoints, tmp_path):
    argv = [*settings(small_modelnet, tiny_checkpoints["vit"], tmp_path / "store"),
            "--set", f"output_dir={tmp_path / 'out'}", "--set", "shots=[1]", "--set",
            "seeds=[0]", "--set", "tune.grid=4"]
    assert main(["extract", "--config", "modelnet40_fewshot", *argv]) == 0
    assert main(["fewshot", "--config", "modelnet40_fewshot", "--method", "tip", *argv]) == 0
    features = json.loads((tmp_path / "out" / "results.json").read_text())["features"]
    assert features and all(f["encoded_now"] == 0 for f in features.values())


def test_unknown_command_key_is_named(tmp_path):
    cfg = tmp_path / "odd.yaml"
    cfg.write_text("command: classify\n")
    with pytest.raises(ValueError, match="command is 'classify'"):
        load_any_config([cfg])


def test_read_only_store_serves_runs_and_names_itself_when_rows_are_missing(
        single, small_modelnet, tiny_checkpoints, tmp_path):
    """Reading needs no write permission: zeroshot reads a read-only store that holds every
    row; extracting rows it lacks stops before encoding, naming the folder."""
    store = tmp_path / "store"
    shutil.copytree(single[0], store)
    make_read_only(store)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    base = [sys.executable, "-m", "pointcalip"]
    opts = settings(small_modelnet, tiny_checkpoints["vit"], store)
    try:
        ok = run_as_reader([*base, "zeroshot", "--config", "modelnet40", *opts,
                            "--set", f"output_dir={tmp_path / 'out'}"], env=env)
        assert ok.returncode == 0, ok.stderr[-3000:]
        features = json.loads((tmp_path / "out" / "results.json").read_text())["features"]
        assert {k: (f["rows"], f["encoded_now"]) for k, f in features.items()} == \
            {"test": (12, 0), "tune": (12, 0)}
        refused = run_as_reader([*base, "extract", "--config", "modelnet40", "--splits", "train",
                                 *opts], env=env)
        [train] = [p for p in store.iterdir() if "-train-" in p.name]
        assert refused.returncode == 2 and error_block(refused.stderr).startswith(
            f"pointcalip extract: error: 8 of 20 clouds of modelnet40 train are not stored yet, "
            f"but cannot write in {train} (Permission denied): make it writable or set "
            f"cache_dir to a writable folder (--set cache_dir=DIR)")
    finally:
        remove_tree(store)


def test_full_disk_is_one_line_naming_the_file(small_modelnet, tiny_checkpoints, tmp_path,
                                               monkeypatch, capsys):
    import pointcalip.store as store_module

    real_save, saved = store_module._save, []

    def save(path, array):                     # the disk fills during the second piece
        saved.append(path)
        if len(saved) <= 5:
            return real_save(path, array)
        with open(path, "wb") as f:
            f.write(array.tobytes()[:64])
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module, "_save", save)
    argv = ["extract", "--config", "modelnet40",
            *settings(small_modelnet, tiny_checkpoints["vit"], tmp_path)]
    assert main(argv) == 2
    err = error_block(capsys.readouterr().err)
    assert re.match(r"pointcalip extract: error: cannot write \S+/writing/\S+/global\.npy: the "
                    r"disk is full \(no space left on the device, \d+ MB free\); free some "
                    r"space or write elsewhere", err), err
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp") or p.parent.name == "writing"]
    assert len(list(tmp_path.glob("*/pieces/*"))) == 1       # the first piece stays valid
    monkeypatch.undo()
    assert main(argv) == 0 and len(list(tmp_path.glob("*/pieces/*"))) == 6
