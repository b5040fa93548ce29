"""`pointcalip fewshot`: every method at every shot count and seed, on stored features.

    prepare(cfg)                 the stages (fewshot/stages.py): splits, features (encoded once
                                 into the feature store), text, zero-shot view logits and the
                                 zero-shot search on validation -> Prepared
    run_one(prepared, m, k, s)   one (method, shots, seed) by its registered runner
                                 (fewshot/methods/): train or search on validation, test once
    run_fewshot(cfg)             all of it -> FewShotResult (results.json, results.md, plots)

Protocol: validation is a class-stratified part of TRAIN disjoint from every shot
(fewshot/data.py); model selection, early stopping and every search (betas, view weights,
Tip-Adapter's alpha and beta) use it; TEST is evaluated once per run, with the selected model.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from ..backbones import ClipBackbone
from ..report.results import RunInfo, backbone_label
from .config import FewShotConfig
from .methods import METHODS, method_entries
from .report import FewShotResult, FewShotRun, plot_accuracy_vs_shots
from .stages import Prepared, TrainRows, output_dir, prepare, train_rows

__all__ = ["RUNNERS", "Prepared", "TrainRows", "output_dir", "prepare", "protocol", "run_fewshot",
           "run_one", "train_rows", "write_fewshot_results"]

log = logging.getLogger(__name__)

#: the runner of every method run per (shots, seed): ``runner(prepared, k, seed) -> FewShotRun``
RUNNERS: Dict[str, Callable] = {e.name: e.target for e in method_entries()
                                if not e.meta.get("baseline", False)}


def protocol(prepared: Prepared) -> str:
    c = prepared.cfg.tune
    return (f"validation: class-stratified {c.val_fraction:.0%} of TRAIN (seed {c.seed}, "
            f"{len(prepared.splits.val)} clouds), disjoint from every shot; shots drawn per seed "
            f"from the rest of TRAIN. Model selection (best epoch), early stopping, the zero-shot "
            f"betas and view weights (CALIP-FS init, CALIP base) and Tip-Adapter's alpha and beta "
            f"are all chosen on validation; TEST is evaluated once per run, with the selected model")


def run_one(prepared: Prepared, method: str, k: int, seed: int) -> FewShotRun:
    """One (method, shots, seed), or its saved result when resuming a finished run."""
    folders = prepared.folders
    folder = folders.run_dir(method, k, seed)
    saved, run_id = folder / "result.json", folders.run_id(method, k, seed)
    if folders.resume and saved.is_file():
        data = json.loads(saved.read_text())
        if data.get("run_id") == run_id:
            log.info("%s %d-shot seed %d: finished before; reusing %s", method, k, seed, saved)
            return FewShotRun(**data["run"])
    log.info("%s %d-shot seed %d", method, k, seed)
    run = METHODS[method].target(prepared, k, seed)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = saved.with_name(f".result.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"run_id": run_id, "run": run.to_dict()}, indent=1))
    os.replace(tmp, saved)
    return run


def _runs_once(entry, cfg: FewShotConfig) -> bool:
    once = entry.meta.get("once", False)
    return bool(once(cfg) if callable(once) else once)


def run_fewshot(cfg: FewShotConfig, backbone: Optional[ClipBackbone] = None,
                argv: Optional[Sequence[str]] = None, resume: bool = False) -> FewShotResult:
    """Every requested method x shots x seed (the baselines' rows first) -> FewShotResult."""
    prepared = prepare(cfg, backbone, resume)
    entries = [METHODS[m] for m in cfg.methods]
    runs: List[FewShotRun] = []
    for entry in sorted(entries, key=lambda e: not e.meta.get("baseline", False)):   # stable
        if entry.meta.get("baseline", False) or _runs_once(entry, cfg):
            runs.extend(entry.target(prepared, None, None))
            continue
        for k in sorted(cfg.shots):
            for seed in cfg.seeds:
                runs.append(run_one(prepared, entry.name, k, seed))
    return FewShotResult(config=cfg.to_dict(),
                         run=RunInfo.collect(prepared.device, prepared.backbone.precision,
                                             prepared.splits.root, argv),
                         dataset=cfg.data.label, num_test_clouds=len(prepared.splits.test),
                         num_val_clouds=len(prepared.splits.val), protocol=protocol(prepared),
                         runs=runs, features=prepared.features.to_dict())


def write_fewshot_results(result: FewShotResult, out: Path):
    """results.json, results.md and accuracy_vs_shots.png in ``out``."""
    from ..report.results import write_results

    json_path, md_path = write_results(result, out)
    png = plot_accuracy_vs_shots(result.summary(), Path(out) / "accuracy_vs_shots.png",
                                 f"{result.dataset}, {backbone_label(result.config['backbone'])}")
    return json_path, md_path, png
