"""`pointcalip segment` end to end with the tiny ViT: a planted ShapeNetPart folder whose part
labels are the tiny model's own dense CALIP predictions at known betas and view weights.

VAL is planted with PARAMS_VAL and TEST with PARAMS_TEST (different betas): tuning on VAL must
find parameters that reproduce VAL exactly (tuning mIoU 100) and report TEST below 100, while
``--tune-on test`` reaches 100 on TEST and says it tuned on TEST. Dense CLIP (betas 0) must be
clearly worse, so the planted signal is real.
"""
import json

import h5py
import numpy as np
import pytest
import torch

from pointcalip.cli import main
from pointcalip.config import config_class, load_config
from pointcalip.datasets.shapenetpart import PART_OFFSETS, ShapeNetPart
from pointcalip.segmentation.locations import LocationCache
from pointcalip.segmentation.run import part_text, predict_split, segment_cloud
from pointcalip.segmentation.search import SegParams
from synthetic_shapenetpart import write_shapenetpart

CATEGORIES = ["chair", "lamp", "motorbike"]
PARAMS_VAL = SegParams(1.0, 0.5, [1.0, 0.25, 1.0, 0.5])
PARAMS_TEST = SegParams(0.0, 1.5, [1.0, 1.0, 0.25, 1.0])


def overrides(root, out, cache):
    return [f"data.root={root}", "data.num_points=64", f"data.categories={CATEGORIES}",
            "projector.name=pointclip", "projector.views=[0,1,2,3]", "engine=eager",
            "device=cpu", f"cache_dir={cache}",
            f"output_dir={out}", "tune.points=64", "tune.per_category=false", "pictures=1",
            "templates=['a depth map of the {part} of a {category}.']", "batch_size=8"]


def plant(root, cfg, backbone, templates=None):
    """Rewrite each split's pid with the tiny model's dense CALIP parts at its PARAMS, with the
    part texts of ``templates[split]`` (default: the config's templates for both)."""
    from pointcalip.extract import extract
    from pointcalip.pipeline import open_store

    store, projector = open_store(cfg.cache_dir), cfg.projector.build()
    signal = {}
    for split, params in (("val", PARAMS_VAL), ("test", PARAMS_TEST)):
        ds = ShapeNetPart(root, split, num_points=64, categories=CATEGORIES)
        texts = {c: part_text(backbone, ds.classnames[c], ds.parts[ds.classnames[c]],
                              (templates or {}).get(split, cfg.templates))
                 for c in np.unique(ds.labels)}
        feats = extract(store.open(ds, projector, backbone), ds, None, projector, backbone, 8)
        locations = LocationCache(store.root, ds, projector, cfg.visible_tolerance)
        preds = predict_split(feats, ds, texts, locations, cfg, {c: params for c in texts})
        signal[split] = (preds.clip != preds.calip).mean()
        path = root / f"ply_data_{split}0.h5"
        with h5py.File(path, "r+") as h5:
            pid = h5["pid"][...]
            full = pid.astype(np.int64)
            full[ds.index, :64] = preds.calip
            pid[...] = full
            h5["pid"][...] = pid
    return signal


@pytest.fixture(scope="module")
def planted(tmp_path_factory, tiny_checkpoints, tiny_vit):
    base = tmp_path_factory.mktemp("segplant")
    root = write_shapenetpart(base, {"train": 6, "val": 18, "test": 18}, num_points=64,
                              categories=CATEGORIES)
    cfg = load_config(config_class("segment"), ["shapenetpart"],
                      overrides(root, base / "unused", base / "cache") +
                      [f"backbone={tiny_checkpoints['vit']}"])
    signal = plant(root, cfg, tiny_vit)
    assert signal["val"] > 0.1 and signal["test"] > 0.1, signal   # CALIP != dense CLIP
    return root, base


def sentence_files(folder):
    """Per-part sentence files for CATEGORIES: ``a`` and ``b`` (two phrasings) and ``decoy``
    (each part described with the next part's name: the parts' texts are permuted)."""
    from pointcalip.datasets.shapenetpart import load_part_names

    names, files = load_part_names(), {}
    for key, say in (("a", "a depth map of the {p} of a {c}."),
                     ("b", "{p}, one part of a {c}, in grey."),
                     ("decoy", "a depth map of the {q} of a {c}.")):
        body = {c: {p: [say.format(p=p, q=names[c][(k + 1) % len(names[c])], c=c)]
                    for k, p in enumerate(names[c])} for c in CATEGORIES}
        files[key] = folder / f"{key}.yaml"
        files[key].write_text(json.dumps(body))
    return files


@pytest.fixture(scope="module")
def planted_prompts(tmp_path_factory, tiny_checkpoints, tiny_vit):
    """VAL planted with sentence file ``a``, TEST with ``b`` (at PARAMS_VAL / PARAMS_TEST)."""
    base = tmp_path_factory.mktemp("segprompts")
    files = sentence_files(base)
    root = write_shapenetpart(base, {"train": 6, "val": 18, "test": 18}, num_points=64,
                              categories=CATEGORIES, seed=1)
    cfg = load_config(config_class("segment"), ["shapenetpart"],
                      overrides(root, base / "unused", base / "cache") +
                      [f"backbone={tiny_checkpoints['vit']}"])
    signal = plant(root, cfg, tiny_vit, {"val": str(files["a"]), "test": str(files["b"])})
    assert signal["val"] > 0.1 and signal["test"] > 0.1, signal
    return root, base, files


def run_cli(root, out, cache, ckpt, *extra):
    code = main(["segment", "--config", "shapenetpart", "--set", f"backbone={ckpt}",
                 *[a for o in overrides(root, out, cache) for a in ("--set", o)], *extra])
    assert code == 0
    return json.loads((out / "results.json").read_text())


def test_val_tuning_recovers_planted_parameters(planted, tiny_checkpoints, tmp_path):
    root, base = planted
    r = run_cli(root, tmp_path / "val", base / "cache", tiny_checkpoints["vit"])
    assert r["tuning"]["split"] == "val" and "official VAL" in r["tuning"]["protocol"]
    # a rerun renders nothing (the locations are read from the cache) and reports the same
    again = run_cli(root, tmp_path / "again", base / "cache", tiny_checkpoints["vit"])
    assert {s: (c["located"], c["read"]) for s, c in again["locations"].items()} == {
        "val": (0, 18), "test": (0, 18)}
    assert again["miou"] == r["miou"] and again["tuning"]["params"] == r["tuning"]["params"]
    p = r["tuning"]["params"]["chair"]
    assert p["tune_miou"] == pytest.approx(1.0)                     # VAL reproduced exactly
    assert r["miou"]["instance"] < 99.0                             # TEST planted differently
    assert r["dense_clip"]["instance"] < r["miou"]["instance"] or r["dense_clip"]["instance"] < 95
    # predictions.npz recomputes the reported metric
    npz = np.load(tmp_path / "val" / "predictions.npz")
    test = ShapeNetPart(root, "test", num_points=64, categories=CATEGORIES)
    assert np.array_equal(npz["index"], test.index) and npz["pred"].shape == (len(test), 64)
    from pointcalip.datasets.shapenetpart import PART_COUNTS, SHAPENETPART_CATEGORIES
    from pointcalip.segmentation import segmentation_scores
    s = segmentation_scores(npz["pred"], test.pid[np.searchsorted(test.index, npz["index"])],
                            test.labels, SHAPENETPART_CATEGORIES, PART_OFFSETS, PART_COUNTS)
    assert 100 * s.instance == pytest.approx(r["miou"]["instance"])
    assert 100 * s.class_ == pytest.approx(r["miou"]["class"])
    assert set(r["per_category"]) == set(CATEGORIES)
    assert (tmp_path / "val" / "results.md").read_text().count("| chair |") == 1
    assert (tmp_path / "val" / "pictures" / "chair_0.png").stat().st_size > 1000
    assert (tmp_path / "val" / "pictures" / "views_test0.png").stat().st_size > 1000
    # a part confusion matrix per category and method: the reported cells, counted by hand
    gt = test.pid[np.searchsorted(test.index, npz["index"])]
    off_diagonal = 0
    for method, pred in (("calip", npz["pred"]), ("clip", npz["pred_dense_clip"])):
        for c, name in enumerate(SHAPENETPART_CATEGORIES):
            rows = test.labels == c
            if name not in CATEGORIES or not rows.any():
                continue
            lines = (tmp_path / "val" / "confusion" / f"test_{method}_{name}.csv").read_text().splitlines()
            parts = test.parts[name]
            assert lines[0] == "true \\ predicted," + ",".join(parts)
            matrix = np.array([[int(v) for v in line.split(",")[1:]] for line in lines[1:]])
            off = PART_OFFSETS[c]
            by_hand = np.zeros((len(parts), len(parts)), int)
            np.add.at(by_hand, (gt[rows].ravel() - off, pred[rows].ravel() - off), 1)
            assert (matrix == by_hand).all(), (method, name)
            assert matrix.sum() == rows.sum() * 64
            if method == "calip":
                acc = r["per_category"][name]["calip_accuracy"]
                assert 100 * matrix.trace() / matrix.sum() == pytest.approx(acc)
                off_diagonal += matrix.sum() - matrix.trace()
            assert (tmp_path / "val" / "confusion" / f"test_{method}_{name}.png").stat().st_size > 1000
    assert off_diagonal > 0                                         # some points confused
    assert "Part confusion matrices" in (tmp_path / "val" / "results.md").read_text()



def test_first_run_locates_in_the_render_that_encodes(planted, tiny_checkpoints, tmp_path,
                                                      monkeypatch):
    """A first run (empty store and location cache) locates every shape in the render that
    makes its images: ``locate`` (a second render) is never called, and the results equal a
    run whose locations came from ``locate`` (the planted cache)."""
    from pointcalip.projection.base import Projector

    root, base = planted
    ckpt = tiny_checkpoints["vit"]
    reference = run_cli(root, tmp_path / "ref", base / "cache", ckpt)
    calls = []
    inner = Projector.locate
    monkeypatch.setattr(Projector, "locate",
                        lambda self, *a, **k: calls.append(1) or inner(self, *a, **k))
    r = run_cli(root, tmp_path / "first", tmp_path / "cache", ckpt)
    assert calls == []
    assert {s: (c["located"], c["with_images"], c["read"]) for s, c in r["locations"].items()
            } == {"val": (18, 18, 0), "test": (18, 18, 0)}      # each shape counted once
    assert r["miou"] == reference["miou"] and r["dense_clip"] == reference["dense_clip"]
    assert r["tuning"]["params"] == reference["tuning"]["params"]
    assert np.array_equal(np.load(tmp_path / "first" / "predictions.npz")["pred"],
                          np.load(tmp_path / "ref" / "predictions.npz")["pred"])


def test_extract_fills_what_segment_reads(planted, tiny_checkpoints, tmp_path, capsys):
    """`pointcalip extract --config shapenetpart` encodes TEST and VAL and locates their
    points; `segment` then encodes and locates nothing."""
    root, _ = planted
    cache, ckpt = tmp_path / "cache", tiny_checkpoints["vit"]
    sets = [a for o in overrides(root, tmp_path / "out", cache) for a in ("--set", o)]
    assert main(["extract", "--config", "shapenetpart", "--set", f"backbone={ckpt}", *sets]) == 0
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines()
            if line.startswith("| shapenetpart")]
    assert [(r[0], r[3], r[4]) for r in rows] == [("| shapenetpart test", "18", "18"),
                                                  ("| shapenetpart val", "18", "18")]
    stored = sorted(p.name for p in cache.rglob("pieces/*"))
    assert any(name.endswith(".npz") for name in stored)                # locations kept
    r = run_cli(root, tmp_path / "out", cache, ckpt)
    assert {s: c["located"] for s, c in r["locations"].items()} == {"val": 0, "test": 0}
    assert sorted(p.name for p in cache.rglob("pieces/*")) == stored    # nothing encoded

def test_tune_on_test_reaches_the_planted_test_labels(planted, tiny_checkpoints, tmp_path):
    root, base = planted
    r = run_cli(root, tmp_path / "test", base / "cache", tiny_checkpoints["vit"],
                "--tune-on", "test")
    assert r["tuning"]["split"] == "test" and "TEST split itself" in r["tuning"]["protocol"]
    assert r["miou"]["instance"] == pytest.approx(100.0)
    assert r["dense_clip"]["instance"] < 95.0
    assert "--tune-on test" in r["rerun"]


def test_one_file(tmp_path, tiny_checkpoints, tiny_vit, capsys):
    rng = np.random.default_rng(0)
    cloud = tmp_path / "chair.npy"
    np.save(cloud, rng.normal(size=(300, 3)).astype(np.float32))
    out, png = tmp_path / "chair_parts.ply", tmp_path / "chair_parts.png"
    code = main(["segment", str(cloud), "--category", "chair", "--parts", "back", "seat", "leg",
                 "--backbone", str(tiny_checkpoints["vit"]), "--projector", "pointclip",
                 "--num-points", "256", "--beta2", "0.5", "-o", str(out), "--png", str(png),
                 "--device", "cpu"])
    assert code == 0
    text = out.read_text().splitlines()
    assert text[2] == "element vertex 256" and len(text) == 11 + 256
    labels = np.array([int(line.split()[-1]) for line in text[11:]])
    # the same as the library call
    from pointcalip.datasets import load_point_cloud
    from pointcalip.projection import PointCLIPProjector
    from pointcalip.segmentation.config import DEFAULT_PART_TEMPLATES
    seg = segment_cloud(load_point_cloud(cloud, num_points=256), "chair", ["back", "seat", "leg"],
                        tiny_vit, PointCLIPProjector(), DEFAULT_PART_TEMPLATES, 0.5, 0.0)
    assert np.array_equal(labels, seg.labels)
    assert png.stat().st_size > 1000
    assert "chair.npy: back" in capsys.readouterr().out


def test_bad_input_is_one_line(tmp_path, capsys):
    assert main(["segment", "--config", "shapenetpart", "--set", "data.categories=[chiar]"]) == 2
    err = capsys.readouterr().err
    assert "data.categories holds 'chiar'" in err and "Traceback" not in err
    assert main(["segment", "x.ply", "--category", "chair"]) == 2
    assert "needs --parts" in capsys.readouterr().err


def test_prompt_search_picks_the_planted_sentence_file_on_val(planted_prompts, tiny_checkpoints,
                                                              tmp_path):
    root, base, files = planted_prompts
    prompts = [f"templates={files['decoy']}", f"tune.prompts=[{files['a']}, {files['b']}]"]
    r = run_cli(root, tmp_path / "val", base / "cache", tiny_checkpoints["vit"],
                *[a for o in prompts + ["tune.per_category=true"] for a in ("--set", o)])
    record = r["tuning"]["prompts"]
    assert record["split"] == "val" and record["candidates"] == [
        str(files["decoy"]), str(files["a"]), str(files["b"])]
    assert set(record["categories"]) == set(CATEGORIES)
    for name, c in record["categories"].items():       # each category: its best, first on ties
        scores = c["tune_miou"]
        assert len(scores) == 3 and c["chosen"] == scores.index(max(scores)), (name, c)
        assert c["templates"] == record["candidates"][c["chosen"]]
        assert r["tuning"]["params"][name]["tune_miou"] == max(scores)
    for name in ("chair", "motorbike"):                # where the phrasings differ clearly
        c = record["categories"][name]
        assert c["chosen"] == 1 and c["tune_miou"][1] > 0.98, (name, c)
        assert max(c["tune_miou"][0], c["tune_miou"][2]) < 0.95, (name, c)
    assert r["miou"]["instance"] < 99.0                               # TEST was planted with b
    assert "| prompt |" in (tmp_path / "val" / "results.md").read_text()

    # V2's protocol, one shared search: tuned on TEST it takes b and reaches 100
    t = run_cli(root, tmp_path / "test", base / "cache", tiny_checkpoints["vit"],
                *[a for o in prompts for a in ("--set", o)], "--tune-on", "test")
    record = t["tuning"]["prompts"]
    assert record["split"] == "test"
    assert {c["chosen"] for c in record["categories"].values()} == {2}
    assert t["miou"]["instance"] == pytest.approx(100.0)


def test_prompt_candidates_are_checked(tmp_path):
    from pointcalip.core.config_loader import ConfigError

    with pytest.raises(ConfigError, match=r"tune.prompts\[1\] is not usable: part sentence file "
                                          r".*nowhere.yaml not found"):
        load_config(config_class("segment"), ["shapenetpart"],
                    ["tune.prompts=[['the {part}.'], nowhere.yaml]"])
    with pytest.raises(ConfigError, match=r"tune.prompts\[0\] is not usable: every part "
                                          r"template needs '\{part\}'"):
        load_config(config_class("segment"), ["shapenetpart"], ["tune.prompts=[['a chair.']]"])


def test_tuning_on_fewer_points_takes_labels_and_logits_at_the_same_points(tmp_path):
    """``tune.points`` below the shapes' points: the search scores a seeded subsample (not a
    prefix), and each kept point's labels, dense terms, visibility and nearest visible source
    are those of that very point (as on all points), never of another."""
    from pointcalip.projection import PointCLIPProjector
    from pointcalip.segmentation.points import nearest_visible
    from pointcalip.segmentation.run import gather_tuning, kept_locations

    root = write_shapenetpart(tmp_path, {"val": 6}, num_points=400, categories=["chair", "mug"])
    ds = ShapeNetPart(root, "val", num_points=400)
    rng = np.random.default_rng(0)
    tokens = rng.normal(size=(len(ds), 2, 4, 8)).astype(np.float32)
    tokens /= np.linalg.norm(tokens, axis=-1, keepdims=True)

    class Features:          # the feature store surface gather_tuning reads: fixed tokens per row
        class store:
            @staticmethod
            def read(rows):
                return None, tokens[rows], None

    texts = {c: torch.nn.functional.normalize(torch.randn(k, 8), dim=-1) for c, k in ((4, 4), (11, 2))}
    cache = LocationCache(tmp_path / "store", ds, PointCLIPProjector(views=[0, 1]))

    def groups(points):
        cfg = load_config(config_class("segment"), ["shapenetpart"],
                          [f"tune.points={points}", "batch_size=4"])
        kept = kept_locations(ds, cache, cfg)
        return kept.keep, gather_tuning(Features, ds, texts, kept, cfg)

    _, every = groups(400)
    keep, some = groups(100)
    assert len(keep) == 100 and not np.array_equal(keep, np.arange(16))   # seeded, not a prefix
    k = torch.as_tensor(keep)
    for c, group in some.items():
        rows = np.flatnonzero(ds.labels == c)
        assert torch.equal(group.gt, torch.from_numpy(ds.pid[rows][:, keep] - PART_OFFSETS[c]))
        assert torch.equal(group.gt, every[c].gt[:, k]) and len(group.gt.unique()) > 1
        for term in ("s0", "s1", "s2", "visible"):
            assert torch.equal(getattr(group.logits, term), getattr(every[c].logits, term)[:, :, k]), term
        points = ds.points(rows)[:, k]
        seen = group.logits.visible.any(1)
        assert seen.any() and not seen.all()         # some kept points take a neighbour's label
        assert torch.equal(group.logits.source, nearest_visible(points, seen))


ROTATION = {"mode": "so3", "seed": 3}


@pytest.fixture(scope="module")
def planted_rotated(tmp_path_factory, tiny_checkpoints, tiny_vit):
    """Both splits' part ids are the tiny model's dense CALIP parts at PARAMS_VAL on the
    ROTATED clouds (so3, seed 3): the signal lives in the rotated views only."""
    from pointcalip.extract import extract
    from pointcalip.segmentation.rotation import RotatedSplit
    from pointcalip.pipeline import open_store

    base = tmp_path_factory.mktemp("segrot")
    root = write_shapenetpart(base, {"train": 6, "val": 18, "test": 18}, num_points=64,
                              categories=CATEGORIES, seed=2)
    cfg = load_config(config_class("segment"), ["shapenetpart"],
                      overrides(root, base / "unused", base / "cache") +
                      [f"backbone={tiny_checkpoints['vit']}"])
    store, projector = open_store(cfg.cache_dir), cfg.projector.build()
    for split in ("val", "test"):
        ds = RotatedSplit(ShapeNetPart(root, split, num_points=64, categories=CATEGORIES),
                          **ROTATION)
        texts = {c: part_text(tiny_vit, ds.classnames[c], ds.parts[ds.classnames[c]],
                              cfg.templates) for c in np.unique(ds.labels)}
        feats = extract(store.open(ds, projector, tiny_vit), ds, None, projector, tiny_vit, 8)
        locations = LocationCache(store.root, ds, projector, cfg.visible_tolerance)
        preds = predict_split(feats, ds, texts, locations, cfg, {c: PARAMS_VAL for c in texts})
        assert (preds.clip != preds.calip).mean() > 0.1          # CALIP != dense CLIP
        with h5py.File(root / f"ply_data_{split}0.h5", "r+") as h5:
            pid = h5["pid"][...].astype(np.int64)
            pid[ds.index, :64] = preds.calip
            h5["pid"][...] = pid.astype(h5["pid"].dtype)
    return root, base


def test_rotated_protocol_recovers_a_signal_planted_in_rotated_shapes(
        planted_rotated, tiny_checkpoints, tmp_path):
    """`segment --rotate so3` tunes on VAL rotated like TEST: it reproduces the labels
    planted on the rotated clouds (VAL and TEST 100%) while the upright protocol cannot;
    tuned on upright VAL instead, the rotated TEST loses the signal. Rotations are recorded
    (predictions.npz) and are the seeded ones."""
    from pointcalip.segmentation.config import SegmentConfig
    from pointcalip.segmentation.rotation import split_rotations

    root, base = planted_rotated
    r = run_cli(root, tmp_path / "rot", base / "cache", tiny_checkpoints["vit"],
                "--rotate", "so3", "--set", "rotation.seed=3")
    rot = r["rotated"]
    assert rot["rotation"]["mode"] == "so3" and rot["rotation"]["seed"] == 3
    assert rot["rotation"]["splits"] == ["test", "val"]
    assert rot["tuning"]["params"]["chair"]["tune_miou"] == pytest.approx(1.0)
    assert rot["miou"]["instance"] == pytest.approx(100.0)           # TEST rotated alike
    assert r["miou"]["instance"] < 90.0                              # upright: no signal
    assert rot["dense_clip"]["instance"] < 95.0
    npz = np.load(tmp_path / "rot" / "predictions.npz")
    test = ShapeNetPart(root, "test", num_points=64, categories=CATEGORIES)
    assert np.array_equal(npz["rotation"], split_rotations("so3", 3, "test", test.index))
    assert npz["pred_rotated"].shape == npz["pred"].shape
    md = (tmp_path / "rot" / "results.md").read_text()
    assert "| rotated (so3, seed 3) |" in md and "rotated CALIP mIoU" in md
    # rotations are proper, distinct per shape
    m = npz["rotation"].astype(np.float64)
    assert np.allclose(m @ m.transpose(0, 2, 1), np.eye(3), atol=1e-5)
    assert np.allclose(np.linalg.det(m), 1.0, atol=1e-5) and len({x.tobytes() for x in m}) == 18
    # the signal survives only if the tuning split is rotated too: upright VAL, rotated TEST
    import pointcalip.segmentation.run as run_module
    from pointcalip.pipeline import open_store
    cfg = load_config(SegmentConfig, ["shapenetpart"], overrides(root, tmp_path / "x",
                                                                 base / "cache") +
                      [f"backbone={tiny_checkpoints['vit']}", "rotation.mode=so3",
                       "rotation.seed=3"])
    from pointcalip.backbones import load_clip
    backbone = load_clip(cfg.backbone, device="cpu", engine="eager")
    _, test, val = run_module.load_segment_splits(cfg)
    rtest, _ = run_module.rotated_splits(cfg, test, val)
    texts = [{c: part_text(backbone, test.classnames[c], test.parts[test.classnames[c]],
                           cfg.templates).cpu() for c in np.unique(test.labels)}]
    half = run_module.run_protocol(cfg, open_store(cfg.cache_dir), cfg.projector.build(),
                                   backbone, rtest, val, texts, sorted(texts[0]), {})
    assert 100 * half.calip.instance < rot["miou"]["instance"] - 5


def test_a_category_without_val_shapes_takes_the_shared_betas_and_says_so(
        planted, tiny_checkpoints, tmp_path, caplog):
    """Issue 27: a category with TEST shapes but no VAL shapes was reported with betas 0 (dense
    CLIP) under "tuned on VAL"; it now takes the parameters searched on every VAL shape, and
    results.json / results.md record it per category."""
    import shutil

    from pointcalip.datasets.shapenetpart import SHAPENETPART_CATEGORIES

    root, base = planted
    copy = shutil.copytree(root, tmp_path / "data" / "hdf5_data")
    motorbike = SHAPENETPART_CATEGORIES.index("motorbike")
    with h5py.File(copy / "ply_data_val0.h5", "r+") as h5:
        arrays = {k: h5[k][...] for k in ("data", "label", "pid")}
        keep = arrays["label"][:, 0] != motorbike
        for k, a in arrays.items():
            del h5[k]
            h5[k] = a[keep]
    assert 0 < keep.sum() < len(keep)
    ckpt = tiny_checkpoints["vit"]
    r = run_cli(copy, tmp_path / "own", base / "cache", ckpt, "--set", "tune.per_category=true")
    shared = run_cli(copy, tmp_path / "shared", base / "cache", ckpt)
    got, want = r["tuning"]["params"]["motorbike"], shared["tuning"]["params"]["chair"]
    assert {k: got[k] for k in ("beta2", "beta3", "view_weights")} == \
        {k: want[k] for k in ("beta2", "beta3", "view_weights")}
    assert got["beta2"] + got["beta3"] > 0                       # not dense CLIP's betas 0
    assert r["per_category"]["motorbike"]["tuned_on"] == "shared: no tuning shapes"
    assert r["per_category"]["chair"]["tuned_on"] == "own"
    assert shared["per_category"]["chair"]["tuned_on"] == "shared"
    assert "motorbike had no VAL shapes" in r["tuning"]["protocol"]
    md = (tmp_path / "own" / "results.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| motorbike |"))
    assert row.endswith("| shared: no tuning shapes |")
    assert "motorbike had no VAL shapes" in md
