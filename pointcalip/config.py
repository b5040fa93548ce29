"""YAML configs: composition (`include:`), `--set key=value` overrides, typed validation.

A config file may name other files in `include: [a.yaml, b.yaml]` (paths relative to it); they
are merged first, in order, then the file itself on top. Several files given on the command
line merge left to right, then `--set a.b=value` overrides (values parsed as YAML).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


def _configs_root() -> Path:
    """The shipped `configs/` folder (repository checkout or installed package data)."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "configs", here / "configs"):
        if (candidate / "prompts.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"cannot find PointCALIP's configs/ folder next to {here}")


def _read_yaml(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"config file not found: {path}") from None
    except yaml.YAMLError as err:
        raise ValueError(f"config file {path} is not valid YAML: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a mapping at top level, got {type(data).__name__}")
    return data


def deep_merge(base: dict, top: dict) -> dict:
    """Recursively merge `top` onto `base` (mappings merge, everything else replaces)."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_yaml_tree(path: str | Path, _seen: tuple = ()) -> dict:
    """Read a config file with its `include:` files merged underneath it."""
    path = Path(path).resolve()
    if path in _seen:
        raise ValueError(f"config include cycle: {' -> '.join(map(str, _seen + (path,)))}")
    data = _read_yaml(path)
    includes = data.pop("include", []) or []
    if isinstance(includes, str):
        includes = [includes]
    merged: dict = {}
    for inc in includes:
        merged = deep_merge(merged, load_yaml_tree(path.parent / inc, _seen + (path,)))
    return deep_merge(merged, data)


def apply_override(cfg: dict, assignment: str) -> dict:
    """Apply one `key.sub=value` override (value parsed as YAML: numbers, lists, null...)."""
    if "=" not in assignment:
        raise ValueError(f"--set expects key=value, got {assignment!r}")
    key, raw = assignment.split("=", 1)
    value = yaml.safe_load(raw) if raw.strip() else None
    update: Any = value
    for part in reversed(key.strip().split(".")):
        update = {part: update}
    return deep_merge(cfg, update)


def load_classnames(dataset: str) -> list[str]:
    """Class names of a published dataset in label order, from configs/classnames.yaml."""
    lists = _read_yaml(_configs_root() / "classnames.yaml")
    if dataset not in lists:
        raise ValueError(f"no class list for {dataset!r} in configs/classnames.yaml; known: {sorted(lists)}")
    return [str(c) for c in lists[dataset]]


def load_templates(spec: str | list[str]) -> list[str]:
    """Resolve `templates:` (a set name in configs/prompts.yaml, or an inline list)."""
    if isinstance(spec, (list, tuple)):
        templates = [str(t) for t in spec]
    else:
        sets = _read_yaml(_configs_root() / "prompts.yaml")
        if spec not in sets:
            raise ValueError(f"unknown template set {spec!r}: choose one of {sorted(sets)} "
                             "(configs/prompts.yaml) or give a list of templates")
        templates = list(sets[spec])
    bad = [t for t in templates if "{}" not in t]
    if not templates or bad:
        raise ValueError(f"every prompt template needs a '{{}}' for the class name; got {bad or templates}")
    return templates


@dataclass
class DataConfig:
    name: str = "modelnet40"
    root: str | None = None
    variant: str | None = None
    num_points: int = 1024
    sampling: str = "first"


@dataclass
class TuneConfig:
    split: str = "val"
    val_fraction: float = 0.1
    seed: int = 0
    beta2_max: float = 2.0
    beta3_max: float = 0.1
    grid: int = 200
    view_weights: bool = False


@dataclass
class ZeroShotConfig:
    data: DataConfig = field(default_factory=DataConfig)
    projector: dict = field(default_factory=lambda: {"name": "pointclip"})
    backbone: str = "RN50"
    templates: Any = "pointclip"
    views: list[int] | None = None
    batch_size: int = 16
    device: str | None = None
    cache_dir: str | None = None
    output_dir: str | None = None
    download: bool = True
    tune: TuneConfig = field(default_factory=TuneConfig)
    name: str = "zeroshot"


def _build(cls, values: dict, where: str):
    """Instantiate a config dataclass, rejecting unknown keys with their full name."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown config key(s) {', '.join(where + k for k in unknown)}; "
                         f"known keys under {where or 'top level'}: {sorted(known)}")
    kwargs = {}
    for key, value in values.items():
        sub = {"data": DataConfig, "tune": TuneConfig}.get(key) if cls is ZeroShotConfig else None
        if sub is not None:
            if not isinstance(value, dict):
                raise ValueError(f"config key {where}{key} must be a mapping, got {value!r}")
            value = _build(sub, value, f"{where}{key}.")
        kwargs[key] = value
    return cls(**kwargs)


def resolve_config_path(path: str | Path) -> Path:
    """A config file path as given, or else the shipped config of that name
    (`modelnet40`, `model/realistic_vitb16.yaml`, ...), so installed users need no checkout."""
    path = Path(path).expanduser()
    if path.is_file():
        return path
    for candidate in (_configs_root() / path, _configs_root() / path.with_suffix(".yaml")):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"config file not found: {path} (nor a shipped config of that name in "
                            f"{_configs_root()})")


def load_zeroshot_config(paths: list[str | Path], overrides: list[str] = ()) -> ZeroShotConfig:
    """Merge config files and overrides into a validated :class:`ZeroShotConfig`."""
    paths = [resolve_config_path(p) for p in paths]
    merged: dict = {}
    for path in paths:
        merged = deep_merge(merged, load_yaml_tree(path))
    for assignment in overrides:
        merged = apply_override(merged, assignment)
    merged.setdefault("name", Path(paths[-1]).stem if paths else "zeroshot")
    cfg = _build(ZeroShotConfig, merged, "")
    if cfg.tune.split not in ("val", "test"):
        raise ValueError(f"tune.split must be 'val' (validation subset of train) or 'test', got {cfg.tune.split!r}")
    if not 0 < cfg.tune.val_fraction < 1:
        raise ValueError(f"tune.val_fraction must be in (0, 1), got {cfg.tune.val_fraction}")
    if not isinstance(cfg.projector, dict) or "name" not in cfg.projector:
        raise ValueError(f"config key projector must be a mapping with a 'name', got {cfg.projector!r}")
    return cfg
