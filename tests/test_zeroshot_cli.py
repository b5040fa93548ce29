"""End-to-end: `pointcalip zeroshot` and `pointcalip classify` on tiny synthetic data."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from pointcalip import PointCALIP, load_clip
from pointcalip.cli import main
from pointcalip.datasets import ModelNet40, validation_indices
from pointcalip.projection import PointCLIPProjector
from synthetic_data import write_modelnet40
from tiny_clip import write_tiny_checkpoints

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "modelnet40.yaml")
CLASSES = ["airplane", "bed", "chair", "lamp"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    root = write_modelnet40(tmp / "data", n_train_per_class=5, n_test_per_class=3, classes=CLASSES)
    ckpt = write_tiny_checkpoints(tmp / "ckpt")["resnet"]
    return tmp, root, ckpt


def run_zeroshot(tmp, root, ckpt, out, *extra):
    argv = ["zeroshot", "--config", CONFIG, "--set", f"data.root={root}", "--set", f"backbone={ckpt}",
            "--set", f"cache_dir={tmp / 'cache'}", "--set", f"output_dir={out}", "--set", "tune.grid=12",
            "--set", "tune.val_fraction=0.2", "--set", "batch_size=5", *extra]
    assert main(argv) == 0
    return json.loads((out / "results.json").read_text())


def test_zeroshot_end_to_end(setup, capsys):
    tmp, root, ckpt = setup
    first = run_zeroshot(tmp, root, ckpt, tmp / "out1")
    printed = capsys.readouterr().out
    assert "PointCLIP top-1" in printed and "Tuning protocol: val" in printed

    test = ModelNet40(root, "test")
    train = ModelNet40(root, "train")
    assert first["num_test_clouds"] == len(test) == 12
    assert first["tuning"]["split"] == "val"
    assert first["tuning"]["num_clouds"] == len(validation_indices(train.labels, 0.2, 0))
    assert first["views"] == list(range(6)) and first["view_weights"] == [1.0] * 6
    assert 0 < first["beta2"] <= 2 and 0 < first["beta3"] <= 0.1
    assert first["cache"]["test_hit"] is False and first["cache"]["tune_hit"] is False
    assert set(first["per_class"]) == set(test.classnames)
    assert sum(c["n"] for c in first["per_class"].values()) == 12
    md = (tmp / "out1" / "results.md").read_text()
    assert md.startswith("# Zero-shot results") and f"| modelnet40 (12 test clouds) | {ckpt} | pointclip | 6 |" in md

    # The same accuracies from the model itself, without the cache (fp32 features instead of
    # fp16): predictions agree wherever the top-2 margin is not razor-thin.
    backbone = load_clip(ckpt, device="cpu")
    points = test.points()
    labels = test.labels
    for key, b2, b3 in (("pointclip", 0.0, 0.0), ("calip", first["beta2"], first["beta3"])):
        model = PointCALIP(backbone=backbone, classnames=test.classnames, projector=PointCLIPProjector(),
                           templates=first["templates"], beta2=b2, beta3=b3)
        with torch.no_grad():
            logits = model(points)
        top2 = logits.topk(2).values
        sure = (top2[:, 0] - top2[:, 1]) > 0.05
        correct = (logits.argmax(-1).numpy() == labels)
        lo = 100 * (correct & sure.numpy()).sum() / len(labels)
        hi = 100 * (correct | ~sure.numpy()).sum() / len(labels)
        assert lo - 1e-6 <= first["accuracy"][key] <= hi + 1e-6, (key, lo, hi, first["accuracy"][key])

    # Second run: everything comes from the cache, same numbers.
    second = run_zeroshot(tmp, root, ckpt, tmp / "out2")
    assert second["cache"]["test_hit"] is True and second["cache"]["tune_hit"] is True
    assert second["accuracy"] == first["accuracy"] and second["beta2"] == first["beta2"]
    assert "test_encoding_s" not in second["timings"] and "test_encoding_s" in first["timings"]


def test_tune_on_test_is_recorded(setup):
    tmp, root, ckpt = setup
    res = run_zeroshot(tmp, root, ckpt, tmp / "out_test", "--tune-on", "test", "--set", "views=[0, 2, 4]")
    assert res["tuning"]["split"] == "test" and "TEST" in res["tuning"]["protocol"]
    assert res["tuning"]["num_clouds"] == 12
    assert res["views"] == [0, 2, 4] and len(res["view_weights"]) == 3
    # Tuned on test: the tuning set is the test set, so the two accuracies are the same number.
    assert res["tuning"]["tuning_accuracy"] == pytest.approx(res["accuracy"]["calip"])


def test_missing_dataset_is_a_clear_error(setup, capsys, tmp_path):
    tmp, _, ckpt = setup
    code = main(["zeroshot", "--config", CONFIG, "--set", f"data.root={tmp_path / 'nowhere'}",
                 "--set", f"backbone={ckpt}"])
    assert code == 2
    assert "nowhere" in capsys.readouterr().err


def test_classify_own_files(setup, capsys, tmp_path):
    _, root, ckpt = setup
    cloud = ModelNet40(root, "test").points([0, 5])
    files = []
    for i, pts in enumerate(cloud):
        files.append(tmp_path / f"cloud{i}.npy")
        np.save(files[-1], pts.numpy())
    classes = ["chair", "table", "lamp"]
    assert main(["classify", *map(str, files), "--classes", *classes, "--backbone", str(ckpt), "--top-k", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    for line, path in zip(lines, files):
        assert line.startswith(f"{path}: ")
        found = re.findall(r"(\w+) ([\d.]+)%", line)
        assert sorted(name for name, _ in found) == sorted(classes)
        assert sum(float(p) for _, p in found) == pytest.approx(100, abs=0.2)


def test_classify_reuses_results(setup, capsys, tmp_path):
    tmp, root, ckpt = setup
    res = run_zeroshot(tmp, root, ckpt, tmp / "out_reuse", "--set", "views=[1, 3]")
    capsys.readouterr()
    path = tmp_path / "cloud.npy"
    np.save(path, ModelNet40(root, "test").points([2])[0].numpy())
    classes = ["chair", "table", "lamp"]
    assert main(["classify", str(path), "--classes", *classes, "--results", str(tmp / "out_reuse" / "results.json"),
                 "--backbone", str(ckpt)]) == 0
    printed = capsys.readouterr().out.strip()

    from pointcalip.datasets import load_point_cloud

    model = PointCALIP(backbone=load_clip(ckpt, device="cpu"), classnames=classes,
                       projector=PointCLIPProjector(views=[1, 3]), templates=res["templates"],
                       beta2=res["beta2"], beta3=res["beta3"], view_weights=res["view_weights"])
    with torch.no_grad():
        probs = model(load_point_cloud(path)).softmax(-1)[0]
    values, idx = probs.topk(3)
    expected = ", ".join(f"{classes[i]} {v:.1%}" for v, i in zip(values.tolist(), idx.tolist()))
    assert printed == f"{path}: {expected}"
