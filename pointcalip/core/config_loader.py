"""The generic config loader: composition, overrides, and typed, range-checked sections.

The sections every run command shares (data, projector, tuning, backbone keys) and the
command configs are in :mod:`pointcalip.config`, which also re-exports these names.

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
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, List, Mapping, Optional, Sequence, Tuple, Union

import yaml

from ..prompts import configs_root, read_yaml
from .paths import user_path
from .words import count

#: fields that hold a folder or file: a ``~user`` in them must name a user of this machine
PATH_KEYS = frozenset({"root", "output_dir", "cache_dir", "source", "parts"})

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
        return f"a list of {_plural(args[0])}" if args else "a list"
    names = {bool: "true or false", int: f"a {adj}integer" if adj else "an integer",
             float: f"a {adj}number", str: "a string", dict: "a mapping", type(None): "null"}
    if tp in names:
        return names[tp]
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _plural(tp: Any) -> str:
    """What many values of type ``tp`` read as: 'strings', 'strings or lists of strings'."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Union:
        return " or ".join(_plural(a) for a in args)
    if origin in (list, List):
        return f"lists of {_plural(args[0])}" if args else "lists"
    if origin is typing.Literal:
        return "values among " + ", ".join(repr(a) for a in args)
    names = {bool: "true or false values", int: "integers", float: "numbers", str: "strings",
             dict: "mappings", type(None): "nulls"}
    if tp in names:
        return names[tp]
    return "mappings" if dataclasses.is_dataclass(tp) else f"{getattr(tp, '__name__', tp)} values"


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
    if tp is float and isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
        value = float(value.strip())      # YAML 1.1 reads 1e-3 (no dot) as text
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


#: a number written as text: YAML 1.1 reads ``1e-3`` and ``5e+2`` (no dot) as strings
_FLOAT_TEXT = re.compile(r"[-+]?(\d[\d_]*\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _type_error(key: str, tp: Any, value: Any) -> ConfigError:
    hint = " (a string: write true or false without quotes)" if (
        tp is bool and isinstance(value, str)) else ""
    return ConfigError(key, f"must be {_describe(tp)}, got {value!r}{hint}")


# ------------------------------------------------------------------------------------ sizes


def check_size(key: str, size: int, limit: int, what: str, why: str = "",
               fix: str = "lower it") -> None:
    """Refuse a setting that would make ``size`` of ``what`` (more than ``limit``) before any
    work starts: a ConfigError naming ``key`` and the projected size. ``what == "bytes"``
    reads in GiB."""
    if size > limit:
        because = f" ({why})" if why else ""
        raise ConfigError(key, f"would make {_count(size, what)}{because}, over the limit of "
                               f"{_count(limit, what)}; {fix}")


def _count(n: int, what: str) -> str:
    """'12,345 clouds', '1.2e+18 cells', '953.7 GiB': readable sizes however large."""
    if what == "bytes":
        return f"{n / 2 ** 30:,.1f} GiB"
    return f"{n:,} {what}" if n < 10 ** 15 else f"{n:.3g} {what}"


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
            if f.name in PATH_KEYS and isinstance(value, str) and value.startswith("~"):
                try:
                    user_path(value, "is")
                except ValueError as err:
                    raise ConfigError(f.name, str(err).removeprefix("is ")) from None
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


#: most values (mappings, lists and scalars, aliases counted each time they are used) that
#: one config file or one --set value may hold: the shipped configs hold under 100, and a
#: file whose aliases expand exponentially ("billion laughs") is refused before it is walked
MAX_YAML_VALUES = 100_000


def check_yaml_size(data: Any, where: str, limit: int = MAX_YAML_VALUES) -> None:
    """ValueError naming ``where`` if ``data`` holds more than ``limit`` values once its YAML
    aliases are expanded (counted over the shared objects, without expanding them)."""
    sizes: dict = {}

    def size(value: Any) -> int:
        if not isinstance(value, (dict, list)):
            return 1
        if id(value) not in sizes:
            sizes[id(value)] = limit + 1          # an alias cycle counts as too large
            items = value.items() if isinstance(value, dict) else enumerate(value)
            total = 1
            for _, v in items:
                total += size(v)
                if total > limit:
                    break
            sizes[id(value)] = total
        return sizes[id(value)]

    if size(data) > limit:
        raise ValueError(f"{where} holds more than {count(limit, 'value', spec=',')} once its YAML "
                         "aliases (*name) "
                         f"are expanded; a config needs far fewer: remove the nested aliases")


def load_yaml_tree(path: str | Path, _seen: tuple = ()) -> dict:
    """Read a config file with its `include:` files merged underneath it."""
    path = Path(path).resolve()
    if path in _seen:
        raise ValueError(f"config include cycle: {' -> '.join(map(str, _seen + (path,)))}")
    data = read_yaml(path)
    check_yaml_size(data, f"config file {path}")
    includes = data.pop("include", []) or []
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) and i for i in includes):
        raise ValueError(f"config file {path}: include must be a file name or a list of file "
                         f"names (include: [base.yaml]), got {includes!r}")
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
    check_yaml_size(value, f"--set {key.strip()}")
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


def check_command(command: Any) -> None:
    """The ``command:`` key holds a command name (a string), or ConfigError."""
    if not isinstance(command, str):
        raise ConfigError("command", f"must be a command name such as zeroshot, got "
                                     f"{command!r}", hint=False)


def load_config(cls, paths: Sequence[str | Path], overrides: Sequence[str] = ()):
    """Merge config files and overrides into a checked ``cls`` (a command's Section).

    A top-level ``command:`` key (set by the shipped defaults of each command) must name
    ``cls.COMMAND``; ``name`` defaults to the last file's stem; ``cls.file_overrides(paths)``
    go before ``overrides``.
    """
    merged = merged_config(paths, [*cls.file_overrides(paths), *overrides])
    command = merged.pop("command", cls.COMMAND)
    check_command(command)
    if command != cls.COMMAND:
        raise ConfigError("command", f"is {command!r}: these configs are for `pointcalip "
                                     f"{command}`, not `pointcalip {cls.COMMAND}`", hint=False)
    if paths:
        merged.setdefault("name", resolve_config_path(paths[-1]).stem)
    return cls.from_mapping(merged)
