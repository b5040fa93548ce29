"""YAML configs: composition, overrides, and typed, range-checked sections.

Files: a config file may name other files in `include: [a.yaml, b.yaml]` (paths relative to
it); they are merged first, in order, then the file itself on top. Several files given on the
command line merge left to right, then `--set a.b=value` overrides (values parsed as YAML). A
file that is not found is looked up among the shipped configs (`modelnet40`,
`model/realistic_vitb16`), so an installed PointCALIP needs no checkout.

Types: every command has one dataclass (e.g. `ZeroShotConfig`) made of fields and of shared
sections (`DataConfig`, `ProjectorConfig`, `TuneConfig`). All derive from :class:`Section`,
whose ``__post_init__`` checks every field against its type hint (nested sections are found by
field type), applies the field's range rule (``metadata["rule"]``, see :func:`positive`), then
runs the section's own ``validate()``. Any problem is a :class:`ConfigError` naming the full
key (``tune.grid must be a positive integer, got -3``), so wrong values stop a run before any
work starts, whether the config came from YAML or from Python.
"""
from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, List, Mapping, Optional, Sequence, Tuple, Union

import yaml

from .prompts import configs_root, load_templates, read_yaml

# ----------------------------------------------------------------------------------- errors


class ConfigError(ValueError):
    """A config value is wrong. ``key`` is the dotted key (``tune.grid``), ``problem`` what is
    wrong with it (``must be a positive integer, got -3``)."""

    def __init__(self, key: str, problem: str, hint: bool = True):
        self.key, self.problem, self.hint = key, problem, hint
        where = f" (set it in the YAML file or with --set {key}=...)" if hint else ""
        super().__init__(f"config key {key} {problem}{where}" if key else problem)

    def within(self, section: str) -> "ConfigError":
        """The same error, seen from the section that holds this one."""
        return ConfigError(f"{section}.{self.key}" if self.key else section, self.problem,
                           self.hint)


# ------------------------------------------------------------------------------ range rules

#: (test of a value, how an allowed value reads given the field's type)
Rule = Tuple[Callable[[Any], bool], Callable[[Any], str]]


def ruled(default: Any, test: Callable[[Any], bool], description: str) -> Any:
    """A field whose value (if not None) must pass ``test``; ``description`` says what an
    allowed value is ("a number in [0, 1)")."""
    return _ruled(default, (test, lambda tp: description))


def _ruled(default: Any, rule: Rule) -> Any:
    return field(default=default, metadata={"rule": rule})


def positive(default: Any) -> Any:
    """A field whose value (if not None) must be > 0."""
    return _ruled(default, (lambda v: v > 0, lambda tp: _describe(tp, "positive")))


def non_negative(default: Any) -> Any:
    """A field whose value (if not None) must be >= 0."""
    return _ruled(default, (lambda v: v >= 0, lambda tp: _describe(tp, "non-negative")))


def open_fraction(default: Any) -> Any:
    """A field whose value must lie strictly between 0 and 1."""
    return _ruled(default, (lambda v: 0 < v < 1, lambda tp: "a number between 0 and 1 (exclusive)"))


# ------------------------------------------------------------------------------ type checks

def _describe(tp: Any, adjective: str = "") -> str:
    """How a type reads in an error message: 'a positive integer', 'true or false', ..."""
    adj = f"{adjective} " if adjective else ""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Union:
        return " or ".join(_describe(a, adjective) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (list, List):
        return f"a list of {_describe(args[0]).split(' ', 1)[1]}s" if args else "a list"
    names = {bool: "true or false", int: f"a {adj}integer" if adj else "an integer",
             float: f"a {adj}number", str: "a string", dict: "a mapping", type(None): "null"}
    if tp in names:
        return names[tp]
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _check_type(value: Any, tp: Any, key: str) -> Any:
    """``value`` as type ``tp`` (ints accepted for floats, tuples for lists), or ConfigError."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin is Union:
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _check_type(value, option, key)
            except ConfigError:
                continue
        raise _type_error(key, tp, value)
    if origin is typing.Literal:
        if isinstance(value, str) and value in args:
            return value
        raise _type_error(key, tp, value)
    if origin in (list, List):
        if not isinstance(value, (list, tuple)):
            raise _type_error(key, tp, value)
        return [_check_type(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)] if args else list(value)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise _type_error(key, tp, value)
        try:
            return tp.from_mapping(value)
        except ConfigError as err:
            raise err.within(key) from None
    ok = {bool: lambda v: isinstance(v, bool),
          int: lambda v: isinstance(v, int) and not isinstance(v, bool),
          float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          str: lambda v: isinstance(v, str),
          dict: lambda v: isinstance(v, Mapping)}
    if tp not in ok or not ok[tp](value):
        raise _type_error(key, tp, value)
    if tp is float:
        if not math.isfinite(value):
            raise ConfigError(key, f"must be a finite number, got {value!r}")
        return float(value)
    return dict(value) if tp is dict else value


def _type_error(key: str, tp: Any, value: Any) -> ConfigError:
    hint = " (a string: write true or false without quotes)" if (
        tp is bool and isinstance(value, str)) else ""
    return ConfigError(key, f"must be {_describe(tp)}, got {value!r}{hint}")


# ---------------------------------------------------------------------------------- sections


@dataclass
class Section:
    """Base of every config dataclass: type- and range-checks its fields on construction."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = _check_type(getattr(self, f.name), hints[f.name], f.name)
            rule = f.metadata.get("rule")
            if rule is not None and value is not None and not rule[0](value):
                raise ConfigError(f.name, f"must be {rule[1](hints[f.name])}, got {value!r}")
            object.__setattr__(self, f.name, value)
        self.validate()

    def validate(self) -> None:
        """Checks across fields; raise ConfigError(key, problem)."""

    @classmethod
    def file_overrides(cls, paths: Sequence[Union[str, Path]]) -> List[str]:
        """``--set`` assignments that :func:`load_config` puts before the user's, derived
        from the config files themselves (none here; ablation configs join their studies)."""
        return []

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "Section":
        """Build from a mapping of keys; unknown keys are errors (with a suggestion)."""
        known = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ConfigError(str(key), f"is unknown ({hint}known keys here: "
                                            f"{', '.join(known)})", hint=False)
        return cls(**values)

    def to_dict(self) -> dict:
        """Plain JSON/YAML-friendly values, nested sections as mappings."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _plain(value: Any) -> Any:
    if isinstance(value, Section):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclass
class DataConfig(Section):
    """Which clouds: dataset, its folder, points per cloud."""

    name: typing.Literal["modelnet40", "modelnet10", "scanobjectnn"] = "modelnet40"
    root: Optional[str] = None
    variant: Optional[str] = None
    num_points: int = positive(1024)
    sampling: typing.Literal["first", "fps"] = "first"

    def validate(self) -> None:
        from .datasets.scanobjectnn import VARIANT_FILES

        if self.name == "scanobjectnn" and self.variant not in VARIANT_FILES:
            raise ConfigError("variant", f"must be one of {', '.join(VARIANT_FILES)} for "
                                         f"scanobjectnn, got {self.variant!r}")
        if self.name != "scanobjectnn" and self.variant is not None:
            raise ConfigError("variant", f"applies to scanobjectnn only; {self.name} has none "
                                         f"(got {self.variant!r})")

    @property
    def label(self) -> str:
        """Dataset and variant as one word, e.g. ``scanobjectnn_pb_t50_rs``."""
        return self.name if self.variant is None else f"{self.name}_{self.variant.lower()}"


@dataclass
class ProjectorConfig(Section):
    """A projector by name and the keyword arguments of its class (``views``, ``preset``,
    ``resolution``, ...), written flat in YAML: ``projector: {name: pointclip, views: fewshot}``."""

    name: str = "pointclip"
    options: dict = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "ProjectorConfig":
        values = dict(values)
        return cls(name=values.pop("name", "pointclip"), options=values)

    def validate(self) -> None:
        from .projection import PROJECTORS

        if self.name not in PROJECTORS:
            raise ConfigError("name", f"must be one of {', '.join(map(repr, sorted(PROJECTORS)))}, "
                                      f"got {self.name!r}")
        for key in self.options:
            if key not in self.accepted_options():
                raise ConfigError(key, f"is not an option of the {self.name} projector "
                                       f"(options: {', '.join(self.accepted_options())})",
                                  hint=False)
        self.build()

    def accepted_options(self) -> List[str]:
        from .projection import PROJECTORS

        return [p for p in inspect.signature(PROJECTORS[self.name]).parameters if p != "self"]

    def build(self):
        """The projector these settings describe (ConfigError naming the option if the
        projector rejects a value)."""
        from .projection import build_projector

        try:
            return build_projector(self.name, **self.options)
        except (ValueError, TypeError) as err:
            first_word = str(err).split(" ", 1)[0].strip("`'\"=")
            key = first_word if first_word in self.options else ""
            raise ConfigError(key, f"is invalid: {err}") from None

    def to_dict(self) -> dict:
        return {"name": self.name, **_plain(self.options)}


@dataclass
class TuneConfig(Section):
    """How CALIP's betas (and optionally view weights) are tuned (spec/calip.md section 4)."""

    split: typing.Literal["val", "test"] = "val"
    val_fraction: float = open_fraction(0.1)
    seed: int = non_negative(0)
    beta2_max: float = positive(2.0)
    beta3_max: float = positive(0.1)
    grid: int = positive(200)
    view_weights: bool = False


def check_device(spec: Optional[str]) -> None:
    """A torch device string that exists on this machine (None: chosen at run time);
    ValueError otherwise."""
    if spec is None:
        return
    import torch

    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError):
        raise ValueError(f"must be a device such as cpu, cuda or cuda:1, got {spec!r}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"is {spec!r} but no CUDA GPU is available here; use cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"is {spec!r} but this machine has {torch.cuda.device_count()} "
                             f"CUDA device(s)")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"is {spec!r} but MPS is not available here; use cpu")
    elif device.type != "cpu":
        raise ValueError(f"must be cpu, cuda[:N] or mps, got {spec!r}")


def check_backbone(spec: str) -> None:
    """An OpenAI CLIP name, an existing checkpoint file, or an open_clip model
    (``open_clip:ARCH/TAG`` and the other forms of :mod:`pointcalip.openclip`, checked against
    the installed library without downloading anything); ValueError otherwise."""
    from .backbone import available_models, is_open_clip_spec

    if is_open_clip_spec(spec):
        from .openclip import check_open_clip_spec
        check_open_clip_spec(spec)
        return
    if spec in available_models():
        return
    if not Path(spec).expanduser().is_file():
        raise ValueError(f"is {spec!r}, which is neither a CLIP model name "
                         f"({', '.join(available_models())}) nor an existing checkpoint file "
                         f"(open_clip models: open_clip:ARCH/TAG, e.g. "
                         f"open_clip:ViT-H-14/laion2b_s32b_b79k)")


@dataclass
class RunConfig(Section):
    """The keys of every command that encodes clouds: which data, projector, backbone and
    prompts, how to encode (batch size, device), where the store and outputs go, and the
    tuning set (``tune``)."""

    data: DataConfig = field(default_factory=DataConfig)
    projector: ProjectorConfig = field(default_factory=ProjectorConfig)
    backbone: str = "RN50"
    templates: Union[str, List[str]] = "pointclip"
    batch_size: int = positive(16)
    device: Optional[str] = None
    engine: str = "auto"
    cache_dir: Optional[str] = None
    output_dir: Optional[str] = None
    download: bool = True
    tune: TuneConfig = field(default_factory=TuneConfig)

    def validate(self) -> None:
        check_model_keys(self)


@dataclass
class ZeroShotConfig(RunConfig):
    """`pointcalip zeroshot`: PointCLIP and CALIP accuracy on a dataset's test split."""

    COMMAND: ClassVar[str] = "zeroshot"

    views: Optional[List[int]] = None
    name: str = "zeroshot"

    def validate(self) -> None:
        super().validate()
        if self.views is not None:
            check_views(self.views, self.projector.build().num_views)


def check_model_keys(cfg) -> None:
    """The ``templates``, ``engine``, ``device`` and ``backbone`` keys every run config has:
    usable, or a ConfigError naming the key."""
    try:
        load_templates(cfg.templates)      # a set name, a list, or a per-class prompt file
    except (ValueError, OSError) as err:
        raise ConfigError("templates", f"is not usable: {err}") from None
    from .engine import check_engine

    try:
        check_engine(cfg.engine, cfg.device)
    except ValueError as err:
        raise ConfigError("engine", str(err).removeprefix("engine ")) from None
    for key, check in (("device", check_device), ("backbone", check_backbone)):
        try:
            check(getattr(cfg, key))
        except ValueError as err:
            raise ConfigError(key, str(err)) from None


def check_views(views: Sequence[int], num_views: int, key: str = "views") -> None:
    """A non-empty list of distinct view indices in [0, num_views)."""
    if not views:
        raise ConfigError(key, "must list at least one view index (or be null for all views)")
    bad = [v for v in views if not 0 <= v < num_views]
    if bad:
        raise ConfigError(key, f"holds {bad}, outside the projector's {num_views} views "
                               f"(indices 0..{num_views - 1})")
    if len(set(views)) != len(views):
        raise ConfigError(key, f"lists a view twice: {list(views)}")


# ------------------------------------------------------------------------------------- files


def deep_merge(base: dict, top: dict) -> dict:
    """Recursively merge `top` onto `base`: mappings merge, everything else replaces, and a
    mapping whose `name` differs from the one below replaces it (a `projector: {name:
    realistic}` drops the options of the pointclip projector it replaces)."""
    out = dict(base)
    for key, value in top.items():
        below = out.get(key)
        if isinstance(value, dict) and isinstance(below, dict) and \
                value.get("name", below.get("name")) == below.get("name"):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_yaml_tree(path: str | Path, _seen: tuple = ()) -> dict:
    """Read a config file with its `include:` files merged underneath it."""
    path = Path(path).resolve()
    if path in _seen:
        raise ValueError(f"config include cycle: {' -> '.join(map(str, _seen + (path,)))}")
    data = read_yaml(path)
    includes = data.pop("include", []) or []
    if isinstance(includes, str):
        includes = [includes]
    merged: dict = {}
    for inc in includes:
        merged = deep_merge(merged, load_yaml_tree(path.parent / inc, _seen + (path,)))
    return deep_merge(merged, data)


def apply_override(cfg: dict, assignment: str) -> dict:
    """Apply one `key.sub=value` override (value parsed as YAML: numbers, lists, null...)."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--set expects key=value, got {assignment!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw  # not YAML: keep the text as it is
    update: Any = value
    for part in reversed(key.strip().split(".")):
        update = {part: update}
    return deep_merge(cfg, update)


def resolve_config_path(path: str | Path) -> Path:
    """A config file path as given, or else the shipped config of that name
    (`modelnet40`, `model/realistic_vitb16.yaml`, ...), so installed users need no checkout."""
    path = Path(path).expanduser()
    if path.is_file():
        return path
    root = configs_root()
    for candidate in (root / path, root / path.with_suffix(".yaml")):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"config file not found: {path} (nor a shipped config of that name "
                            f"in {root})")


def merged_config(paths: Sequence[str | Path], overrides: Sequence[str] = ()) -> dict:
    """The mapping of several config files (left to right) with `--set` overrides on top."""
    merged: dict = {}
    for path in paths:
        merged = deep_merge(merged, load_yaml_tree(resolve_config_path(path)))
    for assignment in overrides:
        merged = apply_override(merged, assignment)
    return merged


def load_config(cls, paths: Sequence[str | Path], overrides: Sequence[str] = ()):
    """Merge config files and overrides into a checked ``cls`` (a command's Section).

    A top-level ``command:`` key (set by the shipped defaults of each command) must name
    ``cls.COMMAND``; ``name`` defaults to the last file's stem; ``cls.file_overrides(paths)``
    go before ``overrides``.
    """
    merged = merged_config(paths, [*cls.file_overrides(paths), *overrides])
    command = merged.pop("command", cls.COMMAND)
    if command != cls.COMMAND:
        raise ConfigError("command", f"is {command!r}: these configs are for `pointcalip "
                                     f"{command}`, not `pointcalip {cls.COMMAND}`", hint=False)
    if paths:
        merged.setdefault("name", resolve_config_path(paths[-1]).stem)
    return cls.from_mapping(merged)


#: the config dataclass of every command that reads configs, by `command:` value, as
#: "module:Class" (imported on use: command modules import this one)
CONFIG_KINDS = {"zeroshot": "pointcalip.config:ZeroShotConfig",
                "fewshot": "pointcalip.fewshot.config:FewShotConfig",
                "ablate": "pointcalip.ablation.config:AblationConfig"}


def load_any_config(paths: Sequence[str | Path], overrides: Sequence[str] = ()):
    """:func:`load_config` with the class the files' ``command:`` key names (zeroshot when
    none does): a zero-shot, few-shot or ablation config."""
    command = merged_config(paths, overrides).get("command", "zeroshot")
    if command not in CONFIG_KINDS:
        raise ConfigError("command", f"is {command!r}; configs are for one of "
                                     f"{', '.join(CONFIG_KINDS)}", hint=False)
    return load_config(config_class(command), paths, overrides)


def config_class(command: str):
    """The config dataclass of ``command`` (a key of CONFIG_KINDS)."""
    if command not in CONFIG_KINDS:
        raise ValueError(f"no command {command!r} reads configs; known: {sorted(CONFIG_KINDS)}")
    module, _, name = CONFIG_KINDS[command].partition(":")
    return getattr(importlib.import_module(module), name)

