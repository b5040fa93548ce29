"""Backbones study: one row per backbone whose features are in the store.

For every backbone of ``backbones_study.backbones`` the study looks up, without loading the
model, whether the store holds its features of every test cloud and every tuning cloud
under the config's dataset and projector (the store is keyed by the checkpoint's identity,
precision and engine; see :mod:`pointcalip.store`). Those that are complete are evaluated (this
loads the model for its text encoder only; nothing is encoded). The others are listed as
missing, with the exact ``pointcalip zeroshot`` command that encodes them into this store.
"""
from __future__ import annotations

import json
import logging
import shlex
from pathlib import Path
from typing import Dict, List

import numpy as np
import yaml

from ..report import plots
from ..backbones import checkpoint_identity, precision_on
from ..config import ZeroShotConfig
from ..backbones.engines import planned_engine
from ..report.results import backbone_label
from .config import AblationConfig
from .context import AblationContext
from .tables import BETA_FORMAT, StudyResult, Table, accuracy_groups
from .tuning import test_accuracy, tune_then_test
from ..core.words import count

log = logging.getLogger(__name__)


def study_rows(splits) -> Dict[str, tuple]:
    """{name: (dataset, rows)} the study needs stored for a backbone (``splits``: the
    run's :class:`~pointcalip.pipeline.ZeroShotSplits`): every test cloud and, when tuned on
    validation, every tuning cloud."""
    wanted = {"test": (splits.test, np.arange(len(splits.test)))}
    if splits.tuning.split == "val":
        wanted["tune"] = (splits.tuning.dataset, splits.tuning.rows)
    return wanted


def missing_clouds(ctx: AblationContext, spec: str) -> Dict[str, int]:
    """Clouds of the test split and of the tuning set whose features under ``spec`` the
    store lacks ({} when complete)."""
    return lacking_rows(ctx.store, study_rows(ctx.splits), ctx.cfg.projector.build(), spec,
                        ctx.cfg.device, ctx.cfg.engine, ctx.loaded_backbone(spec))


def lacking_rows(store, wanted: Dict[str, tuple], projector, spec: str, device, engine: str,
                 loaded=None) -> Dict[str, int]:
    """{name: rows the store lacks} for ``wanted`` {name: (dataset, rows)} under backbone
    ``spec`` (looked up by its identity, precision and engine without loading it, unless
    ``loaded``, the loaded backbone, says them); names with nothing missing are left out."""
    identity = loaded.identity if loaded else checkpoint_identity(spec)
    precision = loaded.precision if loaded else precision_on(device)
    engine = loaded.engine if loaded else planned_engine(engine, device)[0]
    out = {}
    for name, (dataset, rows) in wanted.items():
        found = store.find(dataset, projector, identity, precision, engine)
        lacking = len(rows) if found is None else len(found.missing(rows))
        if lacking:
            out[name] = lacking
    return out


def _yaml_value(value) -> str:
    """A value as `--set key=VALUE` text that YAML reads back as the same value."""
    if isinstance(value, str) and yaml.safe_load(value) == value and value.strip() == value:
        return value
    return json.dumps(value)


def _leaves(mapping: dict, prefix: str = "") -> Dict[str, object]:
    out = {}
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def fill_command(cfg: AblationConfig, backbone: str) -> str:
    """The `pointcalip zeroshot` command that encodes what this study needs of ``backbone``
    (the test split and the tuning set of the config's dataset and projector) into the
    config's store: the shipped zero-shot defaults plus every setting that differs."""
    return shlex.join(command_words("zeroshot", "zeroshot_defaults",
                                    cfg.zeroshot(backbone=backbone, views=None),
                                    ZeroShotConfig()))


def command_words(command: str, config: str, wanted, base) -> List[str]:
    """``pointcalip <command> --config <config>`` plus a ``--set`` for every setting of the
    config ``wanted`` that differs from ``base`` (what ``config`` loads to); ``name`` and
    ``output_dir`` are left out."""
    defaults = _leaves(base.to_dict())
    words = ["pointcalip", command, "--config", config]
    for key, value in _leaves(wanted.to_dict()).items():
        if key in ("name", "output_dir") or (key in defaults and defaults[key] == value):
            continue
        words += ["--set", f"{key}={_yaml_value(value)}"]
    return words


def run_backbones(ctx: AblationContext) -> StudyResult:
    cfg = ctx.cfg
    table = Table(["backbone", "status", "pointclip_test", "beta2", "beta3", "tune_top1",
                   "test_top1", "pointclip_test_macc", "test_macc"],
                  formats={"beta2": BETA_FORMAT, "beta3": BETA_FORMAT})
    present: List[str] = []
    missing: Dict[str, dict] = {}
    for spec in cfg.backbones_study.backbones:
        lacking = missing_clouds(ctx, spec)
        if lacking:
            command = fill_command(cfg, spec)
            missing[spec] = {"missing_clouds": lacking, "command": command}
            table.add(spec, "missing: " + ", ".join(count(n, f"{s} cloud")
                                                    for s, n in lacking.items()),
                      None, None, None, None, None, None, None)
            continue
        try:
            pair = ctx.logits(backbone=spec)
        except (RuntimeError, OSError, ValueError) as err:
            log.warning("backbone %s: its features are stored but it cannot be evaluated: %s",
                        spec, err)
            table.add(spec, f"stored, but the model cannot be loaded: {err}", None, None, None,
                      None, None, None, None)
            continue
        if cfg.views is not None:
            pair = pair.select(cfg.views)
        plain = test_accuracy(pair.test, 0.0, 0.0)
        t = tune_then_test(pair, cfg.tune)
        table.add(spec, "in store", plain.top1, t.found.beta2, t.found.beta3, t.tune_top1,
                  t.test.top1, plain.mean_per_class, t.test.mean_per_class)
        present.append(spec)
    notes = [f"Dataset {cfg.data.label}, projector {cfg.projector.name}, precision "
             f"{precision_on(cfg.device)}: a backbone counts as in the store when every "
             f"test cloud and every tuning cloud is stored."]
    if missing:
        notes.append("Missing backbones; each command encodes them into this store (then run "
                     "this study again):")
        notes.extend(f"`{info['command']}`" for info in missing.values())
    if present:
        tune = table.column("tune_top1")
        best = max(present, key=lambda b: tune[cfg.backbones_study.backbones.index(b)])
        notes.append(f"Best by tuning accuracy: {best}.")
    labels = [backbone_label(b) + ("" if b in present else " (not stored)")
              for b in cfg.backbones_study.backbones]

    def draw(path: Path):
        return plots.bars(path, labels, accuracy_groups(table), "test top-1 and mAcc (%)",
                          f"Backbones: {ctx.caption(backbone=False)}", min_pad=1.0)

    return StudyResult(name="backbones", title="Backbones in the feature store", table=table,
                       figures={"backbones.png": draw}, notes=notes,
                       summary={"present": present, "missing": missing})
