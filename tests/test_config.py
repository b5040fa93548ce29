"""Config composition, overrides, validation, and the shipped configs."""
from pathlib import Path

import pytest

from pointcalip.config import load_templates, load_zeroshot_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_include_merge_and_overrides(tmp_path):
    (tmp_path / "base.yaml").write_text("backbone: RN50\ntune:\n  grid: 200\n  seed: 0\n")
    (tmp_path / "top.yaml").write_text("include: [base.yaml]\ntune:\n  seed: 3\n")
    cfg = load_zeroshot_config([tmp_path / "top.yaml"], ["backbone=ViT-B/16", "tune.grid=20", "views=[0, 2]"])
    assert cfg.backbone == "ViT-B/16" and cfg.tune.grid == 20 and cfg.tune.seed == 3
    assert cfg.views == [0, 2] and cfg.name == "top"


def test_unknown_key_is_named(tmp_path):
    (tmp_path / "c.yaml").write_text("tune:\n  betaa2_max: 1\n")
    with pytest.raises(ValueError, match="tune.betaa2_max"):
        load_zeroshot_config([tmp_path / "c.yaml"])


def test_bad_values_rejected(tmp_path):
    (tmp_path / "c.yaml").write_text("backbone: RN50\n")
    with pytest.raises(ValueError, match="tune.split"):
        load_zeroshot_config([tmp_path / "c.yaml"], ["tune.split=train"])
    with pytest.raises(ValueError, match="key=value"):
        load_zeroshot_config([tmp_path / "c.yaml"], ["backbone"])
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_zeroshot_config([tmp_path / "nope.yaml"])


RUN_CONFIGS = sorted(p for p in CONFIGS.glob("*.yaml") if p.name not in ("prompts.yaml", "classnames.yaml"))


def test_every_dataset_and_projector_has_a_config():
    assert len(RUN_CONFIGS) == 11  # 5 datasets x 2 projectors + the shared defaults


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    cfg = load_zeroshot_config([path])
    assert cfg.tune.split == "val"  # honest protocol by default, everywhere
    assert cfg.data.name in {"modelnet40", "modelnet10", "scanobjectnn"}
    assert cfg.projector["name"] in {"pointclip", "realistic"}
    assert load_templates(cfg.templates)


def test_model_files_compose_with_a_dataset():
    cfg = load_zeroshot_config([CONFIGS / "scanobjectnn_pb_t50_rs.yaml", CONFIGS / "model/realistic_vitb16.yaml"])
    assert (cfg.data.variant, cfg.backbone, cfg.projector["name"]) == ("PB_T50_RS", "ViT-B/16", "realistic")


def test_shipped_configs_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ folder here: names resolve to the shipped ones
    cfg = load_zeroshot_config(["modelnet10_realistic", "model/pointclip_vitb32.yaml"])
    assert (cfg.data.name, cfg.backbone, cfg.projector["name"]) == ("modelnet10", "ViT-B/32", "pointclip")
    assert cfg.name == "pointclip_vitb32"


def test_classnames_are_data():
    from pointcalip.config import load_classnames

    assert len(load_classnames("modelnet40")) == 40 and load_classnames("modelnet40")[15] == "flower_pot"
    assert load_classnames("scanobjectnn")[14] == "toilet"
    with pytest.raises(ValueError, match="no class list"):
        load_classnames("shapenet")


def test_templates():
    assert load_templates("pointclip") == ["point cloud depth map of a {}."]
    assert load_templates(["a {} shape"]) == ["a {} shape"]
    with pytest.raises(ValueError, match="unknown template set"):
        load_templates("nonexistent")
    with pytest.raises(ValueError, match="'{}'"):
        load_templates(["no placeholder"])
