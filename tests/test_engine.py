"""Engines of the image tower (pointcalip/backbones/engines.py, onnx.py): ONNX Runtime gives PyTorch's tokens, a
checkpoint's graph is exported once and cached, unusable cached graphs are replaced, ``auto``
falls back to PyTorch, and how the images are split into forward calls does not matter."""
import importlib.util
import logging
import re
import sys
import types
from pathlib import Path

import open_clip
import pytest
import torch

from pointcalip.backbones import CPU_IMAGES_PER_CALL, default_images_per_call, engines, load_clip, onnx
from pointcalip.backbones.families.openclip import OpenClipBackbone
from pointcalip.core import paths

INSTALL = "pip install 'pointcalip[cpu-fast]'"
SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture(autouse=True)
def _engines_on(monkeypatch):
    """conftest.py runs every other test in PyTorch (POINTCALIP_ENGINE=eager); not these."""
    monkeypatch.delenv("POINTCALIP_ENGINE", raising=False)


@pytest.fixture
def exports(monkeypatch):
    """The graphs exported during the test (paths), counted at onnx.export_graph."""
    calls, original = [], onnx.export_graph

    def counting(tower, path):
        calls.append(path)
        return original(tower, path)

    monkeypatch.setattr(onnx, "export_graph", counting)
    return calls


def _images(n, seed=0, size=224):
    """Images as the projectors make them: [n, 3, size, size] in [0, 1]."""
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _assert_same_features(got, want, atol=1e-5):
    for name, a, b in zip(("global", "spatial", "norms"), got, want):
        torch.testing.assert_close(a, b, atol=atol, rtol=1e-5, msg=lambda m: f"{name}: {m}")


def _graph_files():
    return sorted(p.name for p in (paths.home_dir() / "engines").iterdir())


@pytest.mark.parametrize("which", ["vit", "resnet"])
def test_onnxruntime_gives_the_eager_tokens(tiny_checkpoints, which, monkeypatch, caplog):
    eager = load_clip(tiny_checkpoints[which], device="cpu", engine="eager")
    with caplog.at_level(logging.INFO, logger="pointcalip.backbones"):
        fast = load_clip(tiny_checkpoints[which], device="cpu")           # auto
    assert (eager.engine, fast.engine) == ("eager", "onnxruntime")
    assert "image tower runs on onnxruntime (CPU, onnxruntime" in caplog.text
    assert not fast.model.training                # the export leaves the frozen model in eval

    def no_pytorch(x):
        raise AssertionError("the onnxruntime engine ran the PyTorch tower")

    monkeypatch.setattr(fast, "_tokens", no_pytorch)
    images = _images(11, seed=1, size=160)        # resized to 224 first, as in encode_images
    got = fast.encode_images(images, return_norms=True)
    want = eager.encode_images(images, return_norms=True)
    _assert_same_features(got, want)
    assert got[1].shape == (11, 49, 32) and got[1].std() > 0


def test_graph_is_exported_once_then_read_from_the_cache(tiny_checkpoints, exports, caplog):
    first = load_clip(tiny_checkpoints["resnet"], device="cpu", engine="onnxruntime")
    with caplog.at_level(logging.INFO, logger="pointcalip.backbones"):
        second = load_clip(tiny_checkpoints["resnet"], device="cpu", engine="onnxruntime")
    assert len(exports) == 1 and "exporting" not in caplog.text
    path = exports[0]
    assert path == onnx.graph_path(first.tower()) == onnx.graph_path(second.tower())
    assert path.parent == paths.home_dir() / "engines"
    assert path.name.startswith("tiny_resnet.pt-") and "-v1-onnxruntime" in path.name
    assert _graph_files() == [path.name]          # no temporary file left behind
    load_clip(tiny_checkpoints["vit"], device="cpu", engine="onnxruntime")
    assert len(exports) == 2 and len(_graph_files()) == 2   # one graph per checkpoint


@pytest.mark.parametrize("damage", ["truncated", "another model's graph"])
def test_unusable_cached_graph_is_set_aside_and_exported_again(tiny_checkpoints, exports,
                                                               damage, caplog):
    vit = load_clip(tiny_checkpoints["vit"], device="cpu", engine="onnxruntime")
    resnet = load_clip(tiny_checkpoints["resnet"], device="cpu", engine="onnxruntime")
    path = onnx.graph_path(resnet.tower())
    bad = path.read_bytes()[:5000] if damage == "truncated" else onnx.graph_path(vit.tower()).read_bytes()
    path.write_bytes(bad)                         # the ViT graph has the same token shapes
    with caplog.at_level(logging.WARNING, logger="pointcalip.backbones"):
        again = load_clip(tiny_checkpoints["resnet"], device="cpu", engine="onnxruntime")
    assert "the cached ONNX graph is unusable" in caplog.text and path.name in caplog.text
    assert len(exports) == 3 and exports[-1] == path
    assert path.with_name(path.name + ".bad").read_bytes() == bad
    eager = load_clip(tiny_checkpoints["resnet"], device="cpu", engine="eager")
    images = _images(3, seed=2)
    _assert_same_features(again.encode_images(images, return_norms=True),
                          eager.encode_images(images, return_norms=True))


def test_an_export_that_fails_leaves_no_file(tiny_checkpoints, monkeypatch, caplog):
    def killed(model, args, f, **kwargs):
        with open(f, "wb") as out:
            out.write(b"half a graph")
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(torch.onnx, "export", killed)
    with pytest.raises(KeyboardInterrupt):        # not caught: a killed export stays killed
        load_clip(tiny_checkpoints["vit"], device="cpu", engine="onnxruntime")
    assert _graph_files() == []

    def failing(model, args, f, **kwargs):
        with open(f, "wb") as out:
            out.write(b"half a graph")
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(torch.onnx, "export", failing)
    with pytest.raises(onnx.GraphError, match="tiny_vit.pt: exporting the image tower to ONNX "
                                                "failed .RuntimeError: unsupported operator"):
        load_clip(tiny_checkpoints["vit"], device="cpu", engine="onnxruntime")
    with caplog.at_level(logging.INFO, logger="pointcalip.backbones"):
        bb = load_clip(tiny_checkpoints["vit"], device="cpu")            # auto: PyTorch
    assert bb.engine == "eager"
    assert "(RuntimeError: unsupported operator); using PyTorch" in caplog.text
    assert "image tower runs on eager (the ONNX graph failed)" in caplog.text
    assert _graph_files() == []


@pytest.mark.parametrize("package", ["onnxruntime", "onnx"])
def test_auto_falls_back_to_pytorch_when_a_package_is_missing(tiny_checkpoints, monkeypatch,
                                                              caplog, package):
    monkeypatch.setitem(sys.modules, package, None)       # `import package` raises ImportError
    with caplog.at_level(logging.INFO, logger="pointcalip.backbones"):
        bb = load_clip(tiny_checkpoints["vit"], device="cpu")
    assert bb.engine == "eager"
    assert f"runs on eager (the CPU engine needs the {package} package" in caplog.text
    assert INSTALL in caplog.text
    install = re.escape(INSTALL)
    with pytest.raises(ValueError, match=rf"engine is 'onnxruntime', which needs the {package} "
                                         rf"package.*{install}"):
        load_clip(tiny_checkpoints["vit"], device="cpu", engine="onnxruntime")


def test_engine_names_are_checked(tiny_checkpoints, monkeypatch, caplog):
    with pytest.raises(ValueError, match="engine is 'tensorrt', which is not an engine: choose "
                                         "one of auto, eager, onnxruntime"):
        load_clip(tiny_checkpoints["vit"], device="cpu", engine="tensorrt")
    monkeypatch.setenv("POINTCALIP_ENGINE", "fast")
    with pytest.raises(ValueError, match=r"\$POINTCALIP_ENGINE is 'fast', which is not an engine"):
        load_clip(tiny_checkpoints["vit"], device="cpu")
    assert load_clip(tiny_checkpoints["vit"], device="cpu", engine="eager").engine == "eager"
    monkeypatch.setenv("POINTCALIP_ENGINE", "eager")
    with caplog.at_level(logging.INFO, logger="pointcalip.backbones"):
        assert load_clip(tiny_checkpoints["vit"], device="cpu").engine == "eager"
    assert "runs on eager ($POINTCALIP_ENGINE=eager)" in caplog.text


def test_gpus_run_pytorch():
    assert default_images_per_call("cuda") is None and default_images_per_call("cpu") == 8
    on_gpu = types.SimpleNamespace(device=torch.device("cuda", 0), precision="float16")
    assert engines.auto_choice(on_gpu) == ("eager", "on cuda:0 PyTorch runs the model in float16")
    with pytest.raises(ValueError, match="'onnxruntime', which runs on the CPU only, but the "
                                         "device is cuda"):
        engines.check_engine("onnxruntime", "cuda")


@pytest.mark.parametrize("which", ["vit", "resnet"])
@pytest.mark.parametrize("name", ["eager", "onnxruntime"])
def test_images_per_call_does_not_change_the_features(tiny_checkpoints, which, name):
    bb = load_clip(tiny_checkpoints[which], device="cpu", engine=name)
    assert bb.images_per_call == CPU_IMAGES_PER_CALL == 8
    calls, run = [], bb._image_tokens
    bb._image_tokens = lambda x: calls.append(len(x)) or run(x)
    images = _images(20, seed=3)
    chunked = bb.encode_images(images, return_norms=True)
    assert calls == [8, 8, 4]
    one_call = bb.encode_images(images, batch_size=20, return_norms=True)
    assert calls[3:] == [20]
    _assert_same_features(chunked, one_call, atol=1e-6)


def test_resnets_run_channels_last_with_the_same_tokens(tiny_checkpoints):
    bb = load_clip(tiny_checkpoints["resnet"], device="cpu", engine="eager")
    assert bb.model.visual.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    x = bb._model_input(_images(3, seed=4))
    assert x.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        fast = bb._tokens(x)
        bb.model.visual.to(memory_format=torch.contiguous_format)
        plain = bb._tokens(x.contiguous())
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("tower", ["vit", "resnet"])
def test_open_clip_backbones_run_on_onnxruntime(tower, tmp_path, exports):
    """2 heads in the ViT: open_clip's batch-first attention then takes PyTorch's fused
    inference kernel, which the export has to avoid (it has no ONNX form)."""
    text = {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 1}
    vision = ({"image_size": 224, "layers": 2, "width": 64, "head_width": 32, "patch_size": 32}
              if tower == "vit" else
              {"image_size": 224, "layers": [1, 1, 1, 1], "width": 8, "head_width": 64})
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = open_clip.CLIP(embed_dim=32, vision_cfg=vision, text_cfg=text).eval()
    eager = OpenClipBackbone(model, f"tiny-{tower}", f"test-{tower}")
    fast = OpenClipBackbone(model, f"tiny-{tower}", f"test-{tower}")
    assert fast.set_engine("onnxruntime", cache_dir=tmp_path) == "onnxruntime"
    assert exports == [onnx.graph_path(fast.tower(), tmp_path)] and exports[0].is_file()
    images = _images(5, seed=5)
    _assert_same_features(fast.encode_images(images, return_norms=True),
                          eager.encode_images(images, return_norms=True))
    assert eager.engine == "eager"


def test_an_unwritable_cache_falls_back_to_pytorch(tiny_checkpoints, caplog):
    blocker = paths.home_dir() / "engines"            # a file where the folder should be
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("")
    with pytest.raises(onnx.GraphError, match="exporting the image tower to ONNX failed"):
        load_clip(tiny_checkpoints["vit"], device="cpu", engine="onnxruntime")
    with caplog.at_level(logging.WARNING, logger="pointcalip.backbones"):
        assert load_clip(tiny_checkpoints["vit"], device="cpu").engine == "eager"
    assert str(blocker) in caplog.text


def test_bench_engine_checks_its_options(capsys):
    spec = importlib.util.spec_from_file_location("bench_engine", SCRIPTS / "bench_engine.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    for argv, message in ((["--per-call", "8,0"], "argument --per-call: must be positive integers"),
                          (["--models", "rn50,rn49"], "argument --models: must be some of rn50")):
        with pytest.raises(SystemExit) as info:
            bench.main(argv)
        assert info.value.code == 2 and message in capsys.readouterr().err
    model = bench.random_clip("vitb32")                # the published ViT-B/32 tower
    assert sum(p.numel() for p in model.visual.parameters()) == 87_849_216


def test_planned_engine_is_what_loading_would_choose(tiny_checkpoints, monkeypatch):
    monkeypatch.delenv(engines.ENV, raising=False)
    bb = load_clip(tiny_checkpoints["resnet"], device="cpu")
    assert bb.engine == engines.planned_engine("auto", "cpu")[0] == "onnxruntime"
    assert engines.planned_engine("auto", "cpu", tower_size=3 * 1024 ** 3)[0] == "eager"
    assert engines.planned_engine("eager", "cpu")[0] == "eager"
    monkeypatch.setenv(engines.ENV, "eager")
    assert engines.planned_engine("auto", "cpu")[0] == load_clip(tiny_checkpoints["resnet"], "cpu").engine == "eager"


# --------------------------------------------------------------------- the engine registry

def test_an_unknown_engine_is_named_with_the_registered_choices():
    assert engines.ENGINES.names() == ["auto", "eager", "onnxruntime"]
    with pytest.raises(ValueError) as info:
        engines.check_engine("eagr")
    assert str(info.value) == (
        "engine is 'eagr', which is not an engine: choose one of auto, eager, onnxruntime "
        "(auto: ONNX Runtime on the CPU when installed, else PyTorch; eager: PyTorch; "
        "onnxruntime: ONNX Runtime, CPU only)")
    with pytest.raises(ValueError, match=r"\$POINTCALIP_ENGINE is 'eagr', which is not an engine"):
        engines.check_engine("eagr", option="$POINTCALIP_ENGINE")


def test_a_registered_engine_gets_a_tower_not_the_backbone(tiny_checkpoints, monkeypatch):
    """An engine added to the registry is a choice of load_clip and of the config key, and it
    is handed the tower's token function, which it may wrap."""
    from pointcalip.backbones.tower import Tower
    from pointcalip.config import ZeroShotConfig, load_config
    from pointcalip.core.registry import Entry

    given = []

    def prepare(tower, cache_dir):
        given.append(tower)
        return lambda x: tower.tokens(x) * 2          # unit rows: the features do not change

    meta = {"chooses": False, "cpu_only": False, "missing": lambda: None, "summary": "a probe"}
    monkeypatch.setitem(engines.ENGINES._entries, "probe", Entry("probe", prepare, meta))
    with pytest.raises(ValueError, match="choose one of auto, eager, onnxruntime, probe "):
        engines.check_engine("prob")
    assert load_config(ZeroShotConfig, ["modelnet40"], ["engine=probe"]).engine == "probe"
    bb = load_clip(tiny_checkpoints["vit"], device="cpu", engine="probe")
    eager = load_clip(tiny_checkpoints["vit"], device="cpu", engine="eager")
    (tower,) = given
    assert bb.engine == "probe" and isinstance(tower, Tower)
    assert tower.name == "tiny_vit.pt" and tower.weights is bb.model and tower.nbytes > 0
    images = _images(3, seed=6)
    calls, run = [], bb._engine_tokens
    bb._engine_tokens = lambda x: calls.append(len(x)) or run(x)
    _assert_same_features(bb.encode_images(images, return_norms=True)[:2],
                          eager.encode_images(images, return_norms=True)[:2])
    assert calls == [3]
