"""Class names and prompt templates: shipped data (configs/) and the checks every caller uses.

    load_classnames("modelnet40")         # label order, from configs/classnames.yaml
    load_templates("pointclip")           # a set from configs/prompts.yaml, or an inline list
    check_classnames(names)               # non-empty strings giving distinct prompts
    check_templates(templates)            # a list of strings, each with one '{}'
    class_prompts(names, "pointclip")     # per class, the complete sentences to encode
    class_prompts(names, "gpt.json")      # ... or a per-class prompt file's sentences

A per-class prompt file (``templates: my_prompts.json``: a string ending in .json, .yaml or
.yml) maps each class name to a list of complete sentences, the layout PointCLIP V2 uses
for its LLM-generated prompts::

    {"airplane": ["a depth map of an airplane.", "..."], "bathtub": ["..."], ...}

Each class's sentences are encoded and ensembled (``backbone.encode_prompts``). A class is
found under its own name or with ``_`` written as a space; a class the file lacks is an error
naming it. Classes the file has beyond those asked for are ignored.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import yaml
from .core.words import count


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


def prompt_name(name: str) -> str:
    """What CLIP reads of a class name: ``_`` as a space, runs of spaces as one, no spaces
    around, lower case (CLIP's tokenizer lower-cases and collapses white space, so
    ``"Chair "``, ``"chair"`` give the same tokens), e.g. ``"Night_stand "`` -> ``"night stand"``.
    A per-class prompt file is looked up under the name or the name with ``_`` as a space."""
    return " ".join(name.replace("_", " ").split()).lower()


def check_classnames(classnames: Sequence[str], where: str = "") -> list[str]:
    """Class names as a list: a sequence (not one string) of non-empty strings, no two of
    which become the same prompt (:func:`prompt_name`: ``night_stand`` and ``night stand``,
    ``chair`` and ``chair `` are one class to CLIP). ``where`` (e.g. a file) prefixes errors."""
    at = f"{where}: " if where else ""
    names = _string_list(classnames, f"{at}class names", "chair")
    bad = [n for n in names if not isinstance(n, str) or not n.strip()]
    if bad:
        raise ValueError(f"{at}class names must be non-empty strings, got {bad[:5]}")
    repeated = sorted({n for n in names if names.count(n) > 1}, key=names.index)
    if repeated:
        raise ValueError(f"{at}class names must be distinct; repeated: {repeated[:5]}")
    seen: Dict[str, str] = {}
    for name in names:
        first = seen.setdefault(prompt_name(name), name)
        if first != name:
            raise ValueError(
                f"{at}class names {first!r} and {name!r} are the same class to CLIP: both "
                f"become the prompt word {prompt_name(name)!r} ('_' reads as a space; case and "
                f"extra spaces are ignored), so they would get the same probability; keep one"
            )
    return names


def check_templates(templates: Sequence[str]) -> list[str]:
    """Prompt templates as a list: strings each holding exactly one '{}' for the class name."""
    out = _string_list(templates, "prompt templates", "point cloud depth map of a {}.")
    for t in out:
        if is_prompt_file(t) and "{}" not in t:
            raise ValueError(f"{t!r} names a per-class prompt file, which is not a template: "
                             f"give it as the whole `templates:` value of a config "
                             f"(templates: {t}); options that take template set names do not "
                             f"read prompt files")
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
    """Resolve `templates:` (a set name in configs/prompts.yaml, or an inline list) to its
    templates. A per-class prompt file (see the module doc) has no templates: it is read and
    checked, and the result is its absolute path as the one entry, which is what a run
    records (:func:`class_prompts` gives the sentences)."""
    path = prompt_file(spec)
    if path is not None:
        read_prompt_file(path)
        return [str(path)]
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
    name, ``_`` replaced by a space; or, for a per-class prompt file, that class's sentences
    from the file (ValueError naming the file and the class if it has none)."""
    names = check_classnames(classnames)
    path = prompt_file(templates)
    if path is not None:
        table = read_prompt_file(path)
        out = []
        for name in names:
            key = next((k for k in (name, name.replace("_", " ")) if k in table), None)
            if key is None:
                spaced = f" (nor under {name.replace('_', ' ')!r})" if "_" in name else ""
                raise ValueError(f"prompt file {path} has no prompts for class {name!r}{spaced}; "
                                 f"add a list of sentences for it (the file has "
                                 f"{count(len(table), 'class')}: {', '.join(sorted(table)[:8])}"
                                 f"{', ...' if len(table) > 8 else ''})")
            out.append(list(table[key]))
        return out
    filled = load_templates(templates)
    return [[t.format(name.replace("_", " ")) for t in filled] for name in names]


# ----------------------------------------------------------------------- per-class prompt files

PROMPT_FILE_SUFFIXES = (".json", ".yaml", ".yml")
#: CLIP's text context (tokens, with the start and end tokens), the same for every OpenAI model
CONTEXT_LENGTH = 77
_PROMPT_FILES: Dict[Tuple[str, int, int], Dict[str, List[str]]] = {}


def prompt_file(spec) -> Optional[Path]:
    """The per-class prompt file a `templates:` value names, or None: a string ending in .json,
    .yaml or .yml, or a list holding just one (the form results record, see load_templates)."""
    if isinstance(spec, (list, tuple)) and len(spec) == 1:
        spec = spec[0]
    if isinstance(spec, (str, Path)) and Path(str(spec)).suffix.lower() in PROMPT_FILE_SUFFIXES:
        return Path(str(spec)).expanduser().resolve()
    return None


def is_prompt_file(spec) -> bool:
    """True when a `templates:` value names a per-class prompt file (see prompt_file)."""
    return prompt_file(spec) is not None


def read_prompt_file(path: Union[str, Path]) -> Dict[str, List[str]]:
    """A per-class prompt file as ``{class name: [sentence, ...]}``, checked: a mapping of
    names to non-empty lists of non-empty strings, each short enough for CLIP's text encoder.
    Errors (ValueError, FileNotFoundError) name the file and the class. Memoised per
    (path, size, modification time)."""
    path = Path(path).expanduser().resolve()
    try:
        st = path.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"per-class prompt file not found: {path} (a `templates:` value "
                                f"ending in .json/.yaml/.yml names a file of class name -> "
                                f"prompts)") from None
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _PROMPT_FILES:
        _PROMPT_FILES[key] = _parse_prompt_file(path)
    return _PROMPT_FILES[key]


def _parse_prompt_file(path: Path) -> Dict[str, List[str]]:
    if path.is_dir():
        raise ValueError(f"per-class prompt file {path} is a folder, not a file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"per-class prompt file {path} is not UTF-8 text ({err})") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
        raise ValueError(f"per-class prompt file {path} is not valid {kind}: {err}") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(f"per-class prompt file {path} must map class names to lists of "
                         f"prompts, e.g. {{\"chair\": [\"a depth map of a chair.\"]}}; got "
                         f"{'an empty file' if not data else type(data).__name__}")
    table: Dict[str, List[str]] = {}
    for name, prompts in data.items():
        where = f"per-class prompt file {path}, class {name!r}"
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"per-class prompt file {path}: class names must be non-empty "
                             f"strings, got {name!r}")
        if not isinstance(prompts, list) or not prompts:
            raise ValueError(f"{where}: needs a non-empty list of prompts, got {prompts!r:.80}")
        for i, sentence in enumerate(prompts):
            if not isinstance(sentence, str) or not sentence.strip():
                raise ValueError(f"{where}: prompt {i} must be a non-empty string, got "
                                 f"{sentence!r:.80}")
        _check_lengths(prompts, where)
        table[name] = list(prompts)
    return table


def _check_lengths(sentences: List[str], where: str) -> None:
    """Every sentence fits CLIP's text context (otherwise encoding would fail later)."""
    with warnings.catch_warnings():  # openai-clip imports the deprecated pkg_resources
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        import clip
    try:
        clip.tokenize(sentences, context_length=CONTEXT_LENGTH)
    except RuntimeError:
        for i, sentence in enumerate(sentences):
            try:
                clip.tokenize([sentence], context_length=CONTEXT_LENGTH)
            except RuntimeError:
                raise ValueError(f"{where}: prompt {i} is longer than CLIP's {CONTEXT_LENGTH}-"
                                 f"token text context; shorten it: {sentence!r:.120}") from None
        raise
