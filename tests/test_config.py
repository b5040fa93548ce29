"""Config composition, overrides, typed validation, and the shipped configs."""
from pathlib import Path

import pytest

from pointcalip.config import (CONFIG_KINDS, ConfigError, config_class, DataConfig, ProjectorConfig, TuneConfig,
                               ZeroShotConfig, load_config, load_yaml_tree)
from pointcalip.datasets import DATASETS
from pointcalip.datasets.scanobjectnn import VARIANT_FILES
from pointcalip.projection import PROJECTORS
from pointcalip.prompts import check_classnames, check_templates, load_classnames, load_templates

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_include_merge_and_overrides(tmp_path):
    (tmp_path / "base.yaml").write_text("backbone: RN50\ntune:\n  grid: 200\n  seed: 0\n")
    (tmp_path / "top.yaml").write_text("include: [base.yaml]\ntune:\n  seed: 3\n")
    cfg = load_config(ZeroShotConfig, [tmp_path / "top.yaml"],
                      ["backbone=ViT-B/16", "tune.grid=20", "views=[0, 2]"])
    assert cfg.backbone == "ViT-B/16" and cfg.tune.grid == 20 and cfg.tune.seed == 3
    assert cfg.views == [0, 2] and cfg.name == "top"
    assert isinstance(cfg.tune, TuneConfig) and isinstance(cfg.data, DataConfig)


def test_unknown_key_is_named_with_a_suggestion(tmp_path):
    (tmp_path / "c.yaml").write_text("tune:\n  betaa2_max: 1\n")
    with pytest.raises(ConfigError, match=r"tune\.betaa2_max is unknown \(did you mean 'beta2_max'"):
        load_config(ZeroShotConfig, [tmp_path / "c.yaml"])


@pytest.mark.parametrize("override, message", [
    ("batch_size=-4", r"batch_size must be a positive integer, got -4"),
    ("batch_size=0", r"batch_size must be a positive integer, got 0"),
    ("batch_size=2.5", r"batch_size must be an integer, got 2\.5"),
    ("batch_size=true", r"batch_size must be an integer, got True"),
    ("tune.grid=0", r"tune\.grid must be a positive integer"),
    ("tune.beta2_max=0", r"tune\.beta2_max must be a positive number"),
    ("tune.beta3_max=-0.1", r"tune\.beta3_max must be a positive number"),
    ("tune.val_fraction=1", r"tune\.val_fraction must be a number between 0 and 1"),
    ("tune.seed=-1", r"tune\.seed must be a non-negative integer"),
    ("tune.split=train", r"tune\.split must be one of 'val', 'test', got 'train'"),
    ("tune.view_weights='true'", r"tune\.view_weights must be true or false, got 'true' \(a string"),
    ("download=maybe", r"download must be true or false"),
    ("views=[0, 6]", r"views holds \[6\], outside the projector's 6 views"),
    ("views=[1, 1]", r"views lists a view twice"),
    ("views=[]", r"views must list at least one view"),
    ("views=2", r"views must be a list of integers or null, got 2"),
    ("device=gpu7", r"device must be a device such as cpu, cuda"),
    ("device=cuda:99", r"device is 'cuda:99'"),
    ("engine=fast", r"engine is 'fast', which is not an engine: choose one of auto, eager, "
                    r"onnxruntime"),
    ("backbone=/nowhere/RN50.pt", r"backbone is '/nowhere/RN50\.pt', which is neither"),
    ("data.num_points=0", r"data\.num_points must be a positive integer"),
    ("data.name=shapenet", r"data\.name must be one of 'modelnet40', 'modelnet10', 'scanobjectnn'"),
    ("data.variant=OBJ_BG", r"data\.variant applies to scanobjectnn only"),
    ("data.sampling=random", r"data\.sampling must be one of 'first', 'fps'"),
    ("projector.name=sparse", r"projector\.name must be one of 'pointclip', 'realistic'"),
    ("projector.distance=-1", r"projector\.distance is invalid: distance must be a positive number"),
    ("projector.grid_resolution=100", r"projector\.grid_resolution is not an option of the pointclip"),
    ("templates=['no placeholder']", r"templates is not usable: every prompt template needs exactly one"),
    ("templates=nonexistent", r"templates is not usable: unknown template set 'nonexistent'"),
    ("tune=3", r"tune must be a mapping, got 3"),
])
def test_bad_values_name_their_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(ZeroShotConfig, ["modelnet40"], [override])


def test_scanobjectnn_needs_a_known_variant():
    with pytest.raises(ConfigError, match=r"data\.variant must be one of OBJ_BG, OBJ_ONLY, PB_T50_RS"):
        load_config(ZeroShotConfig, ["scanobjectnn_obj_bg"], ["data.variant=PB_T25"])


def test_sections_check_values_from_python_too():
    with pytest.raises(ConfigError, match="grid must be a positive integer"):
        TuneConfig(grid=-1)
    with pytest.raises(ConfigError, match=r"views holds \[12\]"):
        ZeroShotConfig(projector=ProjectorConfig("realistic"), views=[0, 12])
    assert ZeroShotConfig(projector=ProjectorConfig("realistic"), views=[0, 9]).views == [0, 9]


def test_overrides_and_files_are_checked(tmp_path):
    with pytest.raises(ValueError, match="key=value"):
        load_config(ZeroShotConfig, ["modelnet40"], ["backbone"])
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(ZeroShotConfig, [tmp_path / "nope.yaml"])
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="must hold a mapping"):
        load_config(ZeroShotConfig, [tmp_path / "list.yaml"])


def test_command_key_guards_the_command(tmp_path):
    (tmp_path / "fs.yaml").write_text("include: [" + str(CONFIGS / "modelnet40.yaml") + "]\ncommand: fewshot\n")
    with pytest.raises(ConfigError, match="for `pointcalip fewshot`, not `pointcalip zeroshot`"):
        load_config(ZeroShotConfig, [tmp_path / "fs.yaml"])


def shipped_configs_by_kind() -> dict:
    """Every runnable shipped config (top-level file with a `command:`), grouped by command."""
    kinds: dict = {}
    for path in sorted(CONFIGS.glob("*.yaml")):
        command = load_yaml_tree(path).get("command")
        if command is not None:
            kinds.setdefault(command, []).append(path)
    return kinds


def test_every_kind_of_shipped_config_has_a_loader():
    kinds = shipped_configs_by_kind()
    assert set(kinds) <= set(CONFIG_KINDS) and "zeroshot" in kinds


@pytest.mark.parametrize("path", sorted(p for ps in shipped_configs_by_kind().values() for p in ps),
                         ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    command = load_yaml_tree(path)["command"]
    cfg = load_config(config_class(command), [path])
    assert cfg.tune.split == "val"  # honest protocol by default, everywhere
    assert load_templates(cfg.templates)


def test_every_dataset_and_projector_has_a_zeroshot_config():
    wanted = {(name, variant, proj) for name in DATASETS for proj in PROJECTORS
              for variant in (VARIANT_FILES if name == "scanobjectnn" else [None])}
    have = set()
    for path in shipped_configs_by_kind()["zeroshot"]:
        cfg = load_config(ZeroShotConfig, [path])
        have.add((cfg.data.name, cfg.data.variant, cfg.projector.name))
    assert wanted <= have, sorted(wanted - have)


def test_a_projector_of_another_name_replaces_the_options_below(tmp_path):
    (tmp_path / "a.yaml").write_text("projector: {name: pointclip, views: fewshot}\n")
    (tmp_path / "b.yaml").write_text("projector: {name: realistic}\n")
    (tmp_path / "c.yaml").write_text("projector: {views: [0, 1]}\n")
    cfg = load_config(ZeroShotConfig, [tmp_path / "a.yaml", tmp_path / "b.yaml", tmp_path / "c.yaml"])
    assert cfg.projector.to_dict() == {"name": "realistic", "views": [0, 1]}


def test_model_files_compose_with_a_dataset():
    cfg = load_config(ZeroShotConfig, [CONFIGS / "scanobjectnn_pb_t50_rs.yaml", CONFIGS / "model/realistic_vitb16.yaml"])
    assert (cfg.data.variant, cfg.backbone, cfg.projector.name) == ("PB_T50_RS", "ViT-B/16", "realistic")


def test_shipped_configs_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ folder here: names resolve to the shipped ones
    cfg = load_config(ZeroShotConfig, ["modelnet10_realistic", "model/pointclip_vitb32.yaml"])
    assert (cfg.data.name, cfg.backbone, cfg.projector.name) == ("modelnet10", "ViT-B/32", "pointclip")
    assert cfg.name == "pointclip_vitb32"


def test_to_dict_round_trips():
    cfg = load_config(ZeroShotConfig, ["scanobjectnn_obj_only_realistic"], ["views=[0, 3]", "tune.grid=7"])
    again = ZeroShotConfig.from_mapping(cfg.to_dict())
    assert again == cfg and again.to_dict()["projector"] == {"name": "realistic"}


def test_classnames_are_data():
    assert len(load_classnames("modelnet40")) == 40 and load_classnames("modelnet40")[15] == "flower_pot"
    assert load_classnames("scanobjectnn")[14] == "toilet"
    with pytest.raises(ValueError, match="no class list"):
        load_classnames("shapenet")


def test_templates_and_classnames_are_checked():
    assert load_templates("pointclip") == ["point cloud depth map of a {}."]
    assert load_templates(["a {} shape"]) == ["a {} shape"]
    with pytest.raises(ValueError, match="unknown template set"):
        load_templates("nonexistent")
    for bad, message in [(["no placeholder"], "exactly one '{}'"), (["{} and {}"], "exactly one '{}'"),
                         ("a {} shape", "single string"), ([], "must not be empty"),
                         (["a {0} {}"], "cannot be formatted"), (["a {} {x}"], "cannot be formatted")]:
        with pytest.raises(ValueError, match=message):
            check_templates(bad)
    assert check_classnames(("chair", "lamp")) == ["chair", "lamp"]
    for bad, message in [("chair", "single string 'chair'"), (["chair", "chair"], "repeated: \\['chair'\\]"),
                         (["chair", " "], "non-empty strings"), ([], "must not be empty")]:
        with pytest.raises(ValueError, match=message):
            check_classnames(bad)
