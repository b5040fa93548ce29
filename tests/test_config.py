"""Config composition, overrides, typed validation, and the shipped configs."""
from pathlib import Path

import pytest

from pointcalip.config import (CONFIG_KINDS, ConfigError, config_class, DataConfig, ProjectorConfig, TuneConfig,
                               ZeroShotConfig, load_config, load_yaml_tree)
from pointcalip.datasets import DATASETS
from pointcalip.datasets.catalog import DATASETS as CATALOG
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
    if command == "segment":        # part templates ({part}, {category}), checked by its config
        from pointcalip.segmentation.config import check_part_templates
        assert check_part_templates(cfg.templates)
    else:
        assert load_templates(cfg.templates)


def test_every_dataset_and_projector_has_a_zeroshot_config():
    wanted = {(name, variant, proj) for name in DATASETS for proj in PROJECTORS
              if CATALOG[name].meta.get("task") not in ("segmentation", "robustness")  # own commands
              and "train" in CATALOG[name].meta.get("splits", ("train", "test"))  # tuning needs TRAIN
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


# ------------------------------------------------------------------ bad input (issue 18)
def write_laughs(path, levels=9):
    """A YAML file whose aliases expand to 10**levels strings under `backbone:`."""
    lines = ["backbone:", '  a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_exponential_aliases_are_refused_fast_naming_the_file(tmp_path):
    import time

    path = write_laughs(tmp_path / "laughs.yaml")
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"config file .*laughs\.yaml holds more than 100,000 "
                                         r"values once its YAML aliases"):
        load_config(ZeroShotConfig, [path])
    assert time.perf_counter() - t0 < 2.0
    with pytest.raises(ValueError, match=r"--set backbone holds more than"):
        load_config(ZeroShotConfig, ["modelnet40"], [
            "backbone=" + write_laughs(tmp_path / "v.yaml", 7).read_text().replace("backbone:\n", "")
            .replace("\n  ", ", ").strip().join("{}")])
    # aliases that stay small are fine (a value used twice)
    (tmp_path / "ok.yaml").write_text("data: {name: modelnet40, num_points: &n 20}\ntune: {grid: *n}\n")
    assert load_config(ZeroShotConfig, [tmp_path / "ok.yaml"]).tune.grid == 20


@pytest.mark.parametrize("include", ["5", "[null]", "[base.yaml, 3]", "{a: b}", "['']"])
def test_include_must_name_files(tmp_path, include):
    (tmp_path / "c.yaml").write_text(f"include: {include}\nbackbone: RN50\n")
    with pytest.raises(ValueError, match=r"config file .*c\.yaml: include must be a file name or "
                                         r"a list of file names"):
        load_config(ZeroShotConfig, [tmp_path / "c.yaml"])


@pytest.mark.parametrize("value", ["[zeroshot]", "{a: 1}", "3"])
def test_command_must_be_a_name(value):
    from pointcalip.config import load_any_config

    for load in (lambda o: load_config(ZeroShotConfig, ["modelnet40"], o),
                 lambda o: load_any_config(["modelnet40"], o)):
        with pytest.raises(ConfigError, match=r"config key command must be a command name such "
                                              r"as zeroshot, got"):
            load([f"command={value}"])


def float_keys(cls, prefix=""):
    """Dotted keys of every float field of a config class and its sections."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if tp is float or typing.get_args(tp) == (float, type(None)):
            yield prefix + f.name
        elif dataclasses.is_dataclass(tp):
            yield from float_keys(tp, f"{prefix}{f.name}.")


@pytest.mark.parametrize("command", ["zeroshot", "fewshot", "ablate"])
def test_every_float_key_takes_exponent_notation(tmp_path, command):
    """YAML 1.1 reads 5e-1 (no dot) as text: every float key accepts it, from --set and YAML."""
    cls = config_class(command)
    keys = sorted(float_keys(cls))
    assert "tune.beta3_max" in keys and (command != "fewshot" or "calip_fs.train.lr" in keys)
    default = {"zeroshot": "modelnet40", "fewshot": "modelnet40_fewshot",
               "ablate": "ablation_views"}[command]
    for key in keys:
        cfg = load_config(cls, [default], [f"{key}=5e-1"])
        value = cfg
        for part in key.split("."):
            value = getattr(value, part)
        assert value == 0.5 and isinstance(value, float), key
    (tmp_path / "c.yaml").write_text(f"include: {CONFIGS / (default + '.yaml')}\n"
                                     "tune:\n  beta3_max: 1e-2\n  beta2_max: +2E0\n")
    cfg = load_config(cls, [tmp_path / "c.yaml"])
    assert cfg.tune.beta3_max == 0.01 and cfg.tune.beta2_max == 2.0
    with pytest.raises(ConfigError, match=r"tune\.beta3_max must be a number, got 'x1e-2'"):
        load_config(cls, [default], ["tune.beta3_max=x1e-2"])


@pytest.mark.parametrize("configs, override, message", [
    (["modelnet40"], "tune.grid=100000", r"tune\.grid would make 10,000,000,000 beta2 x beta3 "
                                         r"grid cells \(100000 x 100000\), over the limit of 16,777,216"),
    (["modelnet40"], "data.num_points=1000000000", r"data\.num_points would make 1,000,000,000 "
                                                   r"points per cloud, over the limit of 1,048,576"),
    (["modelnet40"], "batch_size=100000", r"batch_size would make 373\.1 GiB \(per batch: 100000 "
                                          r"clouds x 6 views"),
    (["modelnet40"], "projector.views={ring: 100000}", r"projector\.views would make 100,000 "
                                                        r"views, over the limit of 1,000"),
    (["modelnet40"], "projector.views={ring: 900}", r"batch_size would make 9\.0 GiB \(per "
                                                     r"batch: 16 clouds x 900 views x \(3 x 224\^2 image"),
    (["modelnet40"], "projector.resolution=30000", r"projector would make 20\.1 GiB \(per cloud: "
                                                   r"6 views x \(3 x 224\^2 image \+ 1 x 30000\^2 map"),
    (["modelnet40_realistic"], "projector.grid_resolution=20000", r"projector would make 119\.2 GiB "
                                                                  r"\(per cloud: 10 views x \(3 x "
                                                                  r"224\^2 image \+ 8 x 19998\^2 map\)"),
    (["modelnet40_fewshot"], "augment.copies=10000000",
     r"augment\.copies would make 6,400,000,000 augmented clouds to encode \(10000000 copies x 16 "
     r"shots x 40 classes\), over the limit of 1,000,000"),
])
def test_settings_that_multiply_are_refused_with_the_projected_size(configs, override, message):
    import time

    from pointcalip.config import load_any_config

    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=message):
        load_any_config(configs, [override])
    assert time.perf_counter() - t0 < 2.0        # refused before anything is allocated


def test_sizes_within_the_limits_still_load():
    from pointcalip.config import load_any_config

    assert load_any_config(["modelnet40"], ["tune.grid=4096"]).tune.grid == 4096
    assert load_any_config(["modelnet40_fewshot"], ["augment.copies=100"]).augment.copies == 100
    assert load_any_config(["scanobjectnn_pb_t50_rs_fewshot"], ["augment.copies=4166"]).augment.copies == 4166


def test_checking_every_shipped_config_imports_no_torch_nor_open_clip():
    """Loading and checking a config (any command) is cheap: no torch, no open_clip (the CLI
    answers config errors at once). Run in a fresh process; the failure names who imported."""
    import subprocess
    import sys

    code = f"""
import builtins, sys, traceback
from pathlib import Path
first = {{}}
real_import = builtins.__import__
def spy(name, *args, **kwargs):
    top = name.split(".")[0]
    if top in ("torch", "open_clip") and top not in first and top not in sys.modules:
        first[top] = [f"{{f.filename}}:{{f.lineno}}" for f in traceback.extract_stack()
                      if "/pointcalip/" in f.filename or "/projection/" in f.filename
                      or "/datasets/" in f.filename][-3:]
    return real_import(name, *args, **kwargs)
builtins.__import__ = spy
from pointcalip.config import load_any_config, load_yaml_tree
count = 0
for path in sorted(Path({str(CONFIGS)!r}).glob("*.yaml")):
    if load_yaml_tree(path).get("command") is not None:
        load_any_config([path])
        count += 1
print(count, first)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    count, _, first = out.stdout.strip().partition(" ")
    assert int(count) == sum(len(v) for v in shipped_configs_by_kind().values()) > 20
    assert first == "{}", f"checking configs imported (module: importing lines) {first}"
