"""Shared fixtures: a private PointCALIP home, tiny CLIP checkpoints, synthetic datasets.

Helper modules beside this file: `tiny_clip` (tiny random CLIP models), `synthetic_data`
(h5 folders in the published layouts), `planted` (a dataset whose labels the tiny CLIP can
recover), `fakes` (stand-ins for the feature store's inputs).
"""
import numpy as np
import pytest

import planted as planted_data
import tiny_clip
from pointcalip.backbones import load_clip
from synthetic_data import shape_family_clouds, write_modelnet40, write_modelnet_clouds


@pytest.fixture(scope="session", autouse=True)
def _eager_engine():
    """The tests run the image tower in PyTorch: ``auto`` would export an ONNX graph into each
    test's private home whenever a test loads a tiny CLIP (tests/test_engine.py tests the
    engines, with this variable removed). Session-scoped, so it also holds while session
    fixtures such as ``tiny_vit`` load their models."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POINTCALIP_ENGINE", "eager")
        yield


@pytest.fixture(autouse=True)
def _private_home(tmp_path_factory, monkeypatch):
    """Never read or write the user's real ~/.cache/pointcalip during tests."""
    monkeypatch.setenv("POINTCALIP_HOME", str(tmp_path_factory.mktemp("pointcalip_home")))


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> dict:
    """{"resnet", "vit": state-dict files, "resnet_jit": a TorchScript archive}."""
    return tiny_clip.write_tiny_checkpoints(tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="session")
def tiny_vit(tiny_checkpoints):
    return load_clip(tiny_checkpoints["vit"], device="cpu")


@pytest.fixture(scope="session")
def tiny_resnet(tiny_checkpoints):
    return load_clip(tiny_checkpoints["resnet"], device="cpu")


@pytest.fixture(scope="session")
def small_modelnet(tmp_path_factory):
    """A ModelNet40 folder with 4 classes, 5 train and 3 test clouds each."""
    return write_modelnet40(tmp_path_factory.mktemp("modelnet"), n_train_per_class=5,
                            n_test_per_class=3, classes=["airplane", "bed", "chair", "lamp"])


@pytest.fixture(scope="session")
def planted(tmp_path_factory, tiny_vit) -> planted_data.Planted:
    """A ModelNet folder whose labels are the tiny ViT's CALIP predictions at known betas and
    view weights (tests/planted.py)."""
    p = planted_data.write_planted(tmp_path_factory.mktemp("planted"), tiny_vit)
    planted_data.check_signal(p)
    return p


SHAPE_FAMILY_NAMES = ["blicket", "dax", "wug", "toma"]


@pytest.fixture(scope="session")
def shape_families(tmp_path_factory):
    """A ModelNet folder of 4 shape families (sphere, rod, disk, cube) under class names that
    mean nothing to CLIP: 16 train and 10 test clouds each. Zero-shot is at chance; the
    families are separable in the tiny CLIPs' features, so few-shot methods must learn them."""
    rng = np.random.default_rng(0)

    def split(per_class):
        labels = rng.permutation(np.repeat(np.arange(4), per_class))
        return shape_family_clouds(labels, 1024, rng), labels

    return write_modelnet_clouds(tmp_path_factory.mktemp("families") / "families",
                                 SHAPE_FAMILY_NAMES, {"train": split(16), "test": split(10)})
