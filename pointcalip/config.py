"""YAML configs of the commands: the shared run sections and every command's config class.

The generic loader (composition, ``include:``, ``--set`` overrides, typed and range-checked
:class:`Section` dataclasses, :class:`ConfigError`) is :mod:`pointcalip.core.config_loader`; its names
are re-exported here, so ``from pointcalip.config import ZeroShotConfig, load_config`` works.

How files compose (``include:``, several files, ``--set``, shipped names) is described in
:mod:`pointcalip.core.config_loader`.

Types: every command has one dataclass (e.g. `ZeroShotConfig`) made of fields and of shared
sections (`DataConfig`, `ProjectorConfig`, `TuneConfig`). Any problem is a ConfigError naming
the full key (``tune.grid must be a positive integer, got -3``), so wrong values stop a run
before any work starts, whether the config came from YAML or from Python. Dataset and
projector names come from their catalogs (:mod:`pointcalip.datasets.catalog`,
:mod:`pointcalip.projection.catalog`), which import no torch.
"""
from __future__ import annotations

import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, List, Mapping, Optional, Sequence, Union

from .core.config_loader import (MAX_YAML_VALUES, ConfigError, Rule, Section, _plain, apply_override,
                          check_command, check_size, check_yaml_size, deep_merge,
                          load_config, load_yaml_tree, merged_config, non_negative,
                          open_fraction, positive, resolve_config_path, ruled)
from .datasets.catalog import DATASETS
from .projection.catalog import PROJECTORS, projector_options
from .prompts import load_templates
from .core.words import count

#: the most cells of the beta2 x beta3 tuning grid (4096 x 4096): the search holds one
#: accuracy per cell
MAX_GRID_CELLS = 4096 ** 2
#: the most points per cloud (the published files store 2048; 1M points per cloud is far
#: beyond any projector's use)
MAX_POINTS = 1 << 20
#: the most views a projector may have (the published sets have 6 and 10)
MAX_VIEWS = 1000
#: the most bytes of CLIP images one projection batch may make (batch_size x views x 3 x
#: image_size^2 float32)
MAX_BATCH_IMAGE_BYTES = 8 << 30
#: the most augmented clouds a few-shot run encodes (copies x shots x classes): 100 times
#: ModelNet40's training set
MAX_AUGMENTED_CLOUDS = 1_000_000

#: what the feature store keeps (pointcalip.store.STORE_MODES, which imports numpy; a test
#: keeps them equal): float16 tokens, int8 tokens, or per-view CALIP logits of one text set
STORE_MODES = ("tokens", "tokens8", "logits")

#: the datasets a classification config may name (segmentation ones have `pointcalip segment`,
#: robustness ones `pointcalip benchmark`)
CLASSIFICATION_DATASETS = tuple(n for n in DATASETS.names()
                                if DATASETS[n].meta.get("task") not in ("segmentation", "robustness"))


@dataclass
class DataConfig(Section):
    """Which clouds: dataset, its folder, points per cloud."""

    name: typing.Literal[CLASSIFICATION_DATASETS] = "modelnet40"
    root: Optional[str] = None
    variant: Optional[str] = None
    num_points: int = positive(1024)
    sampling: typing.Literal["first", "fps"] = "first"
    up_axis: Optional[str] = None   # null: the dataset's own; datasets declaring up_axes only

    def validate(self) -> None:
        axes = DATASETS[self.name].meta.get("up_axes")
        if self.up_axis is not None and axes is None:
            having = [e.name for e in DATASETS.entries() if "up_axes" in e.meta]
            raise ConfigError("up_axis", f"applies to {', '.join(having)} only; {self.name} is "
                                         f"served as its files store it (got {self.up_axis!r})")
        if self.up_axis is not None and self.up_axis not in axes:
            raise ConfigError("up_axis", f"must be one of {', '.join(axes)} for {self.name}, "
                                         f"got {self.up_axis!r}")
        variants = DATASETS[self.name].meta.get("variants")
        if variants is not None and self.variant not in variants:
            raise ConfigError("variant", f"must be one of {', '.join(variants)} for "
                                         f"{self.name}, got {self.variant!r}")
        if variants is None and self.variant is not None:
            having = [e.name for e in DATASETS.entries() if "variants" in e.meta
                      and e.meta.get("task") != "robustness"]      # data: names clean datasets
            raise ConfigError("variant", f"applies to {', '.join(having)} only; {self.name} has "
                                         f"none (got {self.variant!r})")
        check_size("num_points", self.num_points, MAX_POINTS, "points per cloud")

    @property
    def num_classes(self) -> int:
        """The dataset's number of classes (declared in its catalog entry)."""
        return DATASETS[self.name].classes

    def dataset_kwargs(self) -> dict:
        """The keyword arguments of the dataset class this section asks for (besides root
        and split): points, sampling, and the variant and up axis where set."""
        kwargs = {"num_points": self.num_points, "sampling": self.sampling}
        if self.variant is not None:
            kwargs["variant"] = self.variant
        if self.up_axis is not None:
            kwargs["up_axis"] = self.up_axis
        return kwargs

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
        if self.name not in PROJECTORS:
            raise ConfigError("name", f"must be one of {', '.join(map(repr, sorted(PROJECTORS)))}, "
                                      f"got {self.name!r}")
        views = self.options.get("views")      # a ring or a list: counted before building it
        num_views = views.get("ring") if isinstance(views, Mapping) else (
            len(views) if isinstance(views, list) else None)
        if isinstance(num_views, int):
            check_size("views", num_views, MAX_VIEWS, "views", fix="use fewer views")
        for key in self.options:
            if key not in self.accepted_options():
                raise ConfigError(key, f"is not an option of the {self.name} projector "
                                       f"(options: {', '.join(self.accepted_options())})",
                                  hint=False)
        self.build()

    def accepted_options(self) -> List[str]:
        return projector_options(self.name)

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
    """How CALIP's betas (and optionally view weights) are tuned (docs/calip.md#the-search)."""

    split: typing.Literal["val", "test"] = "val"
    val_fraction: float = open_fraction(0.1)
    seed: int = non_negative(0)
    beta2_max: float = positive(2.0)
    beta3_max: float = positive(0.1)
    grid: int = positive(200)
    view_weights: bool = False

    def validate(self) -> None:
        check_size("grid", self.grid ** 2, MAX_GRID_CELLS, "beta2 x beta3 grid cells",
                   f"{self.grid} x {self.grid}")


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
    """A backbone name some registered family accepts (an OpenAI CLIP name or checkpoint
    file, ``open_clip:...``), checked cheaply by its family: no model library imported, nothing
    built or downloaded (:func:`pointcalip.backbones.families.check_backbone_name`; the family
    checks the rest on loading, before downloading anything); ValueError otherwise."""
    from .backbones.families import check_backbone_name

    check_backbone_name(spec)


@dataclass
class RunConfig(Section):
    """The keys of every command that encodes clouds: which data, projector, backbone and
    prompts, how to encode (batch size, device), where the store and outputs go, what the
    store keeps (``store``: docs/feature-store.md#compact-stores), and the tuning set (``tune``)."""

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
    store: typing.Literal[STORE_MODES] = "tokens"

    def validate(self) -> None:
        if self.templates == "v2":       # PointCLIP V2's GPT-3 prompts for this dataset
            from .prompt_downloads import v2_prompt_file

            try:
                self.templates = str(v2_prompt_file(self.data.name))
            except (OSError, ValueError) as err:
                raise ConfigError("templates", f"is v2: {err}") from None
        check_model_keys(self)
        check_batch_size(self.batch_size, self.projector.build())
        command = getattr(self, "COMMAND", None)
        if self.store != "tokens" and command not in compact_store_commands():
            what = ("keeps CALIP's per-view logits for the run's class texts and no tokens"
                    if self.store == "logits" else "keeps int8 tokens")
            raise ConfigError("store", f"is {self.store}, which {what}; `pointcalip {command}` "
                                       f"reads float16 tokens only: use tokens (compact stores "
                                       f"serve {' and '.join(compact_store_commands())})")


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


def check_batch_size(batch_size: int, projector: Any) -> None:
    """What one projection batch holds (its depth maps and CLIP images, float32) within
    MAX_BATCH_IMAGE_BYTES, or a ConfigError with the projected size: a typo in the batch
    size, a ring of views or a map resolution is refused before anything is allocated. The
    key named is ``projector`` when one cloud alone is over the limit, else ``batch_size``."""
    views, image, side = projector.num_views, projector.image_size, projector.map_size
    bins = getattr(projector, "depth_bins", 1)          # the realistic projector's voxel depth
    per_cloud = views * (3 * image * image + bins * side * side) * 4
    shape = (f"{count(views, 'view')} x (3 x {image}^2 image + {bins} x {side}^2 map) float32")
    check_size("projector", per_cloud, MAX_BATCH_IMAGE_BYTES, "bytes",
               f"per cloud: {shape}", "use fewer views or a lower resolution")
    check_size("batch_size", batch_size * per_cloud, MAX_BATCH_IMAGE_BYTES, "bytes",
               f"per batch: {count(batch_size, 'cloud')} x {shape}")


def check_model_keys(cfg, read_templates: Callable[[Any], Any] = load_templates) -> None:
    """The ``templates``, ``engine``, ``device`` and ``backbone`` keys every run config has:
    usable, or a ConfigError naming the key. ``read_templates`` reads (and so checks) the
    templates: class templates by default (a set name, a list, or a per-class prompt file)."""
    try:
        read_templates(cfg.templates)
    except (ValueError, OSError) as err:
        raise ConfigError("templates", f"is not usable: {err}") from None
    from .backbones.engines import check_engine

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
        raise ConfigError(key, f"holds {bad}, outside the projector's {count(num_views, 'view')} "
                               f"(indices 0..{num_views - 1})")
    if len(set(views)) != len(views):
        raise ConfigError(key, f"lists a view twice: {list(views)}")

def config_kinds() -> dict:
    """{``command:`` value: its config dataclass as "module:Class"} of every registered task
    (:data:`pointcalip.tasks.TASKS`, in command order), imported on use."""
    from .tasks import task_entries

    return {entry.name: entry.target.config for entry in task_entries()}


def compact_store_commands() -> tuple:
    """The tasks whose runs read compact stores (tokens8, logits: zero-shot CALIP), as their
    task entries declare (``compact_stores``); the others read float16 tokens only."""
    from .tasks import task_entries

    return tuple(entry.name for entry in task_entries() if entry.target.compact_stores)


def __getattr__(name: str):
    """``CONFIG_KINDS`` and ``COMPACT_STORE_COMMANDS``, read from the tasks registry when asked
    for (the command modules that declare tasks import this module)."""
    if name == "CONFIG_KINDS":
        return config_kinds()
    if name == "COMPACT_STORE_COMMANDS":
        return compact_store_commands()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_any_config(paths: Sequence[str | Path], overrides: Sequence[str] = ()):
    """:func:`load_config` with the class the files' ``command:`` key names (zeroshot when
    none does): the config of any registered task."""
    command = merged_config(paths, overrides).get("command", "zeroshot")
    check_command(command)
    kinds = config_kinds()
    if command not in kinds:
        raise ConfigError("command", f"is {command!r}; configs are for one of "
                                     f"{', '.join(kinds)}", hint=False)
    return load_config(config_class(command), paths, overrides)


def config_class(command: str):
    """The config dataclass of task ``command`` (its tasks-registry entry)."""
    from .tasks import TASKS

    if not isinstance(command, str) or command not in TASKS:
        raise ValueError(f"no command {command!r} reads configs; known: {sorted(TASKS.names())}")
    return TASKS[command].target.config_class()
