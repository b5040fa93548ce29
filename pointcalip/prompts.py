"""Class names and prompt templates: shipped data (configs/) and the checks every caller uses.

    load_classnames("modelnet40")         # label order, from configs/classnames.yaml
    load_templates("pointclip")           # a set from configs/prompts.yaml, or an inline list
    check_classnames(names)               # a list of distinct, non-empty strings
    check_templates(templates)            # a list of strings, each with one '{}'
    class_prompts(names, "pointclip")     # per class, the complete sentences to encode
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence, Union

import yaml


def configs_root() -> Path:
    """The shipped `configs/` folder (repository checkout or installed package data)."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "configs", here / "configs"):
        if (candidate / "prompts.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"cannot find PointCALIP's configs/ folder next to {here}")


def read_yaml(path: Path) -> dict:
    """A YAML file holding a mapping (empty file: {}), with errors that name the file."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ValueError(f"config file {path} is a folder, not a YAML file") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"config file {path} is not UTF-8 text ({err})") from None
    except yaml.YAMLError as err:
        raise ValueError(f"config file {path} is not valid YAML: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a mapping at top level, "
                         f"got {type(data).__name__}")
    return data


def _string_list(values: Sequence[str], what: str, example: str) -> list[str]:
    """``values`` as a non-empty list; one string instead of a list is an error."""
    if isinstance(values, (str, bytes)):
        raise ValueError(f"{what} must be a list, got the single string {values!r}; "
                         f"pass [{values!r}]")
    out = list(values)
    if not out:
        raise ValueError(f"{what} must not be empty, e.g. [{example!r}]")
    return out


def check_classnames(classnames: Sequence[str]) -> list[str]:
    """Class names as a list: a sequence (not one string) of distinct, non-empty strings."""
    names = _string_list(classnames, "class names", "chair")
    bad = [n for n in names if not isinstance(n, str) or not n.strip()]
    if bad:
        raise ValueError(f"class names must be non-empty strings, got {bad[:5]}")
    repeated = sorted({n for n in names if names.count(n) > 1}, key=names.index)
    if repeated:
        raise ValueError(f"class names must be distinct; repeated: {repeated[:5]}")
    return names


def check_templates(templates: Sequence[str]) -> list[str]:
    """Prompt templates as a list: strings each holding exactly one '{}' for the class name."""
    out = _string_list(templates, "prompt templates", "point cloud depth map of a {}.")
    for t in out:
        if not isinstance(t, str) or t.count("{}") != 1:
            raise ValueError(f"every prompt template needs exactly one '{{}}' for the class name; "
                             f"got {t!r}")
        try:
            t.format("x")
        except (IndexError, KeyError, ValueError) as err:
            raise ValueError(f"prompt template {t!r} cannot be formatted ({err}); write literal "
                             "braces as '{{' and '}}'") from None
    return out


def load_classnames(dataset: str) -> list[str]:
    """Class names of a published dataset in label order, from configs/classnames.yaml."""
    lists = read_yaml(configs_root() / "classnames.yaml")
    if dataset not in lists:
        raise ValueError(f"no class list for {dataset!r} in configs/classnames.yaml; "
                         f"known: {sorted(lists)}")
    return check_classnames([str(c) for c in lists[dataset]])


def template_sets() -> dict:
    """The named template sets of configs/prompts.yaml."""
    return read_yaml(configs_root() / "prompts.yaml")


def load_templates(spec: Union[str, Sequence[str]]) -> list[str]:
    """Resolve `templates:` (a set name in configs/prompts.yaml, or an inline list)."""
    if isinstance(spec, str):
        sets = template_sets()
        if spec not in sets:
            raise ValueError(f"unknown template set {spec!r}: choose one of {sorted(sets)} "
                             "(configs/prompts.yaml) or give a list of templates")
        spec = sets[spec]
    return check_templates(spec)


def class_prompts(classnames: Sequence[str], templates: Union[str, Sequence[str]]) -> list[list[str]]:
    """The sentences that describe each class, for ``backbone.encode_prompts``: every template
    of ``templates`` (a set name or a list, see :func:`load_templates`) filled with the class
    name, ``_`` replaced by a space."""
    names = check_classnames(classnames)
    filled = load_templates(templates)
    return [[t.format(name.replace("_", " ")) for t in filled] for name in names]
