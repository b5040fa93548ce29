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
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..backbones import ClipBackbone
from ..core.atomic import atomic_write
from ..datasets.release import describe
from ..report import plots
from ..report.results import RunInfo, backbone_label
from .config import FewShotConfig
from .methods import METHODS, method_entries
from .result import FewShotResult, FewShotRun, plot_accuracy_vs_shots
from .stages import Prepared, TrainRows, output_dir, prepare, train_rows
from .train import DamagedCheckpoint, set_aside
from ..core.words import count

__all__ = ["RUNNERS", "Prepared", "TrainRows", "output_dir", "prepare", "protocol", "run_fewshot",
           "run_one", "train_rows", "write_fewshot_results"]

log = logging.getLogger(__name__)

#: the runner of every method run per (shots, seed): ``runner(prepared, k, seed) -> FewShotRun``
RUNNERS: Dict[str, Callable] = {e.name: e.target for e in method_entries()
                                if not e.meta.get("baseline", False)}


def protocol(prepared: Prepared) -> str:
    c = prepared.cfg.tune
    return (f"validation: class-stratified {c.val_fraction:.0%} of TRAIN (seed {c.seed}, "
            f"{count(len(prepared.splits.val), 'cloud')}), disjoint from every shot; shots drawn "
            "per seed "
            f"from the rest of TRAIN. Model selection (best epoch), early stopping, the zero-shot "
            f"betas and view weights (CALIP-FS init, CALIP base) and Tip-Adapter's alpha and beta "
            f"are all chosen on validation; TEST is evaluated once per run, with the selected model. "
            f"Every class has at least {max(prepared.cfg.shots)} TRAIN clouds outside validation "
            f"(checked: a K-shot run with a class short of K clouds is refused), so K shots are "
            f"K of every class")


def run_one(prepared: Prepared, method: str, k: int, seed: int) -> FewShotRun:
    """One (method, shots, seed), or its saved result when resuming a finished run."""
    folders = prepared.folders
    folder = folders.run_dir(method, k, seed)
    saved, run_id = folder / "result.json", folders.run_id(method, k, seed)
    if folders.resume and saved.is_file():
        try:
            run_id_of, run = read_run_result(saved)
        except DamagedCheckpoint as err:
            set_aside(saved, err)
        else:
            if run_id_of == run_id:
                log.info("%s %d-shot seed %d: finished before; reusing %s", method, k, seed, saved)
                return run
    log.info("%s %d-shot seed %d", method, k, seed)
    began = time.perf_counter()
    run = METHODS[method].target(prepared, k, seed)
    if not METHODS[method].meta["trains"]:          # its time: the search and the evaluation
        run.seconds = time.perf_counter() - began
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_write(saved, "w") as f:
        f.write(json.dumps({"run_id": run_id, "run": run.to_dict()}, indent=1))
    return run


def read_run_result(path: Path) -> Tuple[Optional[str], FewShotRun]:
    """A run folder's ``result.json`` -> (its run id, its row); a file that is not one (empty,
    cut short, edited) is a :class:`DamagedCheckpoint` naming it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data.get("run_id"), FewShotRun(**data["run"])
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as err:
        raise DamagedCheckpoint(path, f"not a complete run result: {type(err).__name__}: {err}"
                                ) from None


def earlier_runs(prepared: Prepared) -> List[FewShotRun]:
    """Every finished run kept in the folder's ``runs/`` whose run id says it has this
    invocation's settings and data (e.g. the other shots and methods of an earlier command);
    an unreadable ``result.json`` is left out with a warning naming it."""
    folders, found = prepared.folders, []
    for saved in sorted((folders.out / "runs").glob("*/*/result.json")):
        try:
            run_id, run = read_run_result(saved)
        except DamagedCheckpoint as err:
            log.warning("%s; left out of the report", err)
            continue
        if (run.method in METHODS.names() and run.shots is not None and run.seed is not None
                and saved.parent == folders.run_dir(run.method, run.shots, run.seed)
                and run_id == folders.run_id(run.method, run.shots, run.seed)):
            found.append(run)
    return found


def with_earlier_runs(prepared: Prepared, runs: List[FewShotRun]) -> List[FewShotRun]:
    """``runs`` and every :func:`earlier_runs` row they do not hold, so the folder's report
    covers every finished run of its settings: the requested methods first (in their order),
    then the others, each by shots and seed."""
    have = {(r.method, r.shots, r.seed) for r in runs}
    extra = [r for r in earlier_runs(prepared) if (r.method, r.shots, r.seed) not in have]
    if not extra:
        return runs
    asked = list(prepared.cfg.methods)
    order = {e.name: (asked.index(e.name) if e.name in asked else len(asked) + e.order)
             for e in method_entries()}
    once = [r for r in runs if r.shots in (None, 0) or r.seed is None]     # baselines, checkpoints
    per_shot = [r for r in runs if not (r.shots in (None, 0) or r.seed is None)] + extra
    return once + sorted(per_shot, key=lambda r: (order.get(r.method, 1 << 30), r.shots, r.seed))


def _runs_once(entry, cfg: FewShotConfig) -> bool:
    once = entry.meta.get("once", False)
    return bool(once(cfg) if callable(once) else once)


def run_fewshot(cfg: FewShotConfig, backbone: Optional[ClipBackbone] = None,
                argv: Optional[Sequence[str]] = None, resume: bool = False,
                trust_checkpoint: bool = False) -> FewShotResult:
    """Every requested method x shots x seed (the baselines' rows first) -> FewShotResult.
    ``trust_checkpoint``: unpickle ``adapter.checkpoint`` in full (the user trusts it)."""
    prepared = prepare(cfg, backbone, resume, trust_checkpoint)
    entries = [METHODS[m] for m in cfg.methods]
    runs: List[FewShotRun] = []
    for entry in sorted(entries, key=lambda e: not e.meta.get("baseline", False)):   # stable
        if entry.meta.get("baseline", False) or _runs_once(entry, cfg):
            runs.extend(entry.target(prepared, None, None))
            continue
        for k in sorted(cfg.shots):
            for seed in cfg.seeds:
                runs.append(run_one(prepared, entry.name, k, seed))
    asked = len(runs)
    runs = with_earlier_runs(prepared, runs)
    earlier = (f". {len(runs) - asked} of the rows are earlier finished runs of the same settings "
               f"and data kept in runs/ (other shots, seeds or methods)" if len(runs) > asked else "")
    return FewShotResult(config=cfg.to_dict(),
                         run=RunInfo.collect(prepared.device, prepared.backbone.precision,
                                             prepared.splits.root, argv),
                         dataset=cfg.data.label, num_test_clouds=len(prepared.splits.test),
                         num_val_clouds=len(prepared.splits.val), protocol=protocol(prepared) + earlier,
                         runs=runs, features=prepared.features.to_dict(),
                         classnames=list(prepared.splits.test.classnames),
                         data=[describe(cfg.data.label, {"test": prepared.splits.test,
                                                         "train": prepared.splits.train})])


def write_fewshot_results(result: FewShotResult, out: Path):
    """results.json, results.md, confusion/ (a matrix per method and shots, summed over
    seeds) and accuracy_vs_shots.png in ``out``."""
    from ..report.results import write_results

    json_path, md_path = write_results(result, out)
    figure = plot_accuracy_vs_shots(result.summary(), Path(out) / "accuracy_vs_shots.png",
                                    f"{result.dataset}, {backbone_label(result.config['backbone'])}")
    return json_path, md_path, None if figure is None else plots.figure_name(figure)
