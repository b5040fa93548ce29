"""Few-shot results: one row per (method, shots, seed), mean and std per (method, shots),
Markdown, and the plots (accuracy against shots; training curves)."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import logging

import numpy as np

from ..report import plots
from ..report.results import RunInfo, display_name, run_title
from ..core.words import count

log = logging.getLogger(__name__)

ZERO_SHOT_METHODS = ("pointclip", "calip")     # the rows of method `zeroshot`, at 0 shots


@dataclass
class FewShotRun:
    """One trained or searched model, evaluated once on TEST (accuracies in percent).
    ``seconds``: the training time of a method that trains (over every resumed part), the
    search and evaluation time of one that does not (Tip-Adapter); 0 for zero-shot rows."""

    method: str
    shots: Optional[int]
    seed: Optional[int]
    test_accuracy: float
    val_accuracy: float
    hyperparameters: dict = field(default_factory=dict)
    trainable_parameters: int = 0
    best_epoch: Optional[int] = None
    epochs_run: Optional[int] = None
    seconds: float = 0.0
    run_dir: Optional[str] = None
    test_mean_class_accuracy: Optional[float] = None     # mAcc on TEST, percent
    #: TEST's confusion matrix [K, K] (row: true class, column: predicted), cloud counts
    test_confusion: Optional[List[List[int]]] = None

    def to_dict(self) -> dict:
        return asdict(self)


def summarise(runs: Sequence[FewShotRun]) -> List[dict]:
    """Mean test accuracy per (method, shots), in the order the runs came, with ``n`` (runs)
    and ``seeds`` (how many of them drew their shots or weights with a seed). ``std``: the
    sample standard deviation over seeds where there are two or more, else None (one seed
    measures no spread; zero-shot and released-checkpoint rows do not depend on a seed)."""
    groups: Dict[tuple, List[FewShotRun]] = defaultdict(list)
    for r in runs:
        groups[(r.method, r.shots)].append(r)
    out = []
    for (method, shots), rows in groups.items():
        accs = [r.test_accuracy for r in rows]
        seeds = len({r.seed for r in rows if r.seed is not None})
        std = float(np.std(accs, ddof=1)) if seeds > 1 and len(accs) > 1 else None
        maccs = [r.test_mean_class_accuracy for r in rows]
        macc = None if any(m is None for m in maccs) else float(np.mean(maccs))
        macc_std = (float(np.std(maccs, ddof=1)) if macc is not None and std is not None
                    else None)
        out.append({"method": method, "shots": shots, "n": len(accs), "seeds": seeds,
                    "mean": float(np.mean(accs)), "std": std, "macc": macc,
                    "macc_std": macc_std})
    return out


def spread_text(cell: Optional[dict]) -> str:
    """A table cell: ``81.25 ± 2.10 (3 seeds)``, ``81.25 (1 seed)``, or ``81.25`` for a row
    that depends on no seed; "-" when nothing ran."""
    if cell is None:
        return "-"
    seeds = cell.get("seeds", 0)
    if cell.get("std") is not None:
        return f"{cell['mean']:.2f} ± {cell['std']:.2f} ({count(seeds, 'seed')})"
    return f"{cell['mean']:.2f}" + (f" ({seeds} seed)" if seeds == 1 else "")


@dataclass
class FewShotResult:
    """Everything one `pointcalip fewshot` invocation measured; ``to_dict()`` is results.json."""

    config: dict
    run: RunInfo
    dataset: str
    num_test_clouds: int
    num_val_clouds: int
    protocol: str
    runs: List[FewShotRun]
    features: dict = field(default_factory=dict)
    data: list = field(default_factory=list)        # DataStatement per dataset read

    classnames: List[str] = field(default_factory=list)

    def summary(self) -> List[dict]:
        return summarise(self.runs)

    def confusions(self) -> dict:
        """TEST's confusion matrix per (method, shots) cell, the counts SUMMED over the cell's
        seeds (each test cloud counted once per seed: a row sums to the class's clouds x the
        seeds; its shares are the mean over seeds) -> ``{name: (classnames, [K, K], draw,
        title)}``, e.g. ``test_calip_fs_16shot``. A cell with a run that recorded no matrix
        (a result.json of an older version) gets none."""
        cells: Dict[tuple, List[FewShotRun]] = defaultdict(list)
        for r in self.runs:
            cells[(r.method, r.shots)].append(r)
        out = {}
        for (method, shots), rows in cells.items():
            if not self.classnames or any(r.test_confusion is None for r in rows):
                continue
            matrix = np.sum([np.asarray(r.test_confusion, dtype=np.int64) for r in rows], axis=0)
            seeds = len({r.seed for r in rows if r.seed is not None})
            over = (f"counts summed over {count(seeds, 'seed')}" if seeds > 1 else
                    "1 seed" if seeds == 1 else "no seed")
            tag = {0: "zeroshot", None: "checkpoint"}.get(shots, f"{shots}shot")
            out[f"test_{method}_{tag}"] = (
                self.classnames, matrix, True,
                f"{display_name(method)}, {shots_words(shots)}: TEST confusion ({over})")
        return out

    def title(self) -> str:
        """What ran: dataset, projector, backbone (never a config file's name)."""
        return run_title(self.dataset, self.config["projector"]["name"], self.config["backbone"])

    def to_dict(self) -> dict:
        return {"command": "fewshot", "config": self.config, "run": self.run.to_dict(),
                "dataset": self.dataset, "num_test_clouds": self.num_test_clouds,
                "num_val_clouds": self.num_val_clouds, "protocol": self.protocol,
                "summary": self.summary(),
                "runs": [{k: v for k, v in r.to_dict().items() if k != "test_confusion"}
                         for r in self.runs],        # the matrices: confusion/*.csv
                "features": self.features, "data": [d.to_dict() for d in self.data]}

    def to_markdown(self) -> str:
        summary = self.summary()
        shots = sorted({s["shots"] for s in summary if s["shots"]})
        methods = list(dict.fromkeys(s["method"] for s in summary))
        cell = {(s["method"], s["shots"]): s for s in summary}
        fmt = spread_text
        seeds = sorted({r.seed for r in self.runs if r.seed is not None})
        lines = [f"# Few-shot results: {self.title()}", "",
                 f"{self.dataset}, {self.num_test_clouds} test clouds; backbone "
                 f"{self.config['backbone']}, projector {self.config['projector']['name']}. "
                 f"Test top-1 (%): the mean over seeds ± the sample standard deviation where "
                 f"two or more seeds ran (the seed count in brackets); one seed shows no "
                 f"spread, and zero-shot and released-checkpoint rows depend on no seed.", "",
                 "| method | " + " | ".join(shots_words(k) for k in [0, *shots]) + " |",
                 "|---" * (len(shots) + 2) + "|"]
        for m in methods:
            row = [fmt(cell.get((m, 0)))] + [fmt(cell.get((m, k))) for k in shots]
            if (m, None) in cell:
                row[0] = f"{fmt(cell[(m, None)])} (released checkpoint)"
            lines.append(f"| {display_name(m)} | " + " | ".join(row) + " |")
        macc = lambda c: "-" if c is None or c.get("macc") is None else f"{c['macc']:.2f}"  # noqa: E731
        lines += ["", "Test mean class accuracy (mAcc, %), the mean over seeds:", "",
                  "| method | " + " | ".join(shots_words(k) for k in [0, *shots]) + " |",
                  "|---" * (len(shots) + 2) + "|"]
        for m in methods:
            row = [macc(cell.get((m, 0)) or cell.get((m, None)))] + [macc(cell.get((m, k))) for k in shots]
            lines.append(f"| {display_name(m)} | " + " | ".join(row) + " |")
        lines += ["", *[f"- Data: {d.text()}" for d in self.data],
                  f"- Protocol: {self.protocol}",
                  *([f"- Seeds: {seeds}"] if seeds else []),
                  *(["- Confusion matrices: confusion/ (CSV and figure), TEST, one per method "
                     "and shots, the counts summed over its seeds"] if self.confusions() else []),
                  f"- Command: `{self.run.command_line}` ({self.run.date}, {self.run.device}, "
                  f"{self.run.precision})", "",
                  "| method | shots | seed | test | test mAcc | val | hyper-parameters | trainable | best epoch |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in self.runs:
            hp = ", ".join(f"{k}={_short(v)}" for k, v in r.hyperparameters.items())
            lines.append(f"| {display_name(r.method)} | {_blank(r.shots)} | {_blank(r.seed)} | "
                         f"{r.test_accuracy:.2f} | {_pct(r.test_mean_class_accuracy)} | "
                         f"{r.val_accuracy:.2f} | {hp} | {r.trainable_parameters} | "
                         f"{'-' if r.best_epoch is None else r.best_epoch} |")
        return "\n".join(lines) + "\n"


def shots_words(shots: Optional[int]) -> str:
    """Shots per class as a paper writes them: "zero-shot", "1 shot", "16 shots"."""
    if shots is None:
        return "released checkpoint"
    if shots == 0:
        return "zero-shot"
    return count(shots, "shot")


def _pct(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"


def _blank(value) -> str:
    """A table cell: "-" for a value that does not apply (e.g. no seed), else the value."""
    return "-" if value is None else str(value)


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    return str(value)


def plot_accuracy_vs_shots(summary: Sequence[dict], path: Path, title: str = "") -> Optional[Path]:
    """Test top-1 and, beside it, mean class accuracy (mean over seeds, with a +-std band where
    seeds vary) against shots, one line per method; zero-shot methods and released checkpoints
    as dashed horizontal references. The mAcc panel is left out when a run recorded none (a
    result.json of an older version). Nothing to draw (no row at all): no file, and None."""
    def panel(mean: str, std: str):
        series, references = {}, {}
        for method in dict.fromkeys(s["method"] for s in summary):
            rows = sorted((s for s in summary if s["method"] == method and s["shots"]),
                          key=lambda s: s["shots"])
            if rows:
                series[display_name(method)] = ([s["shots"] for s in rows],
                                                [s[mean] for s in rows],
                                                [s.get(std) or 0.0 for s in rows])
            for s in summary:
                if s["method"] == method and s["shots"] in (0, None):
                    what = "zero-shot" if s["shots"] == 0 else "released checkpoint"
                    references[f"{display_name(method)} ({what})"] = s[mean]
        return series, references

    series, references = panel("mean", "std")
    if not series and not references:
        log.info("no accuracy to plot against shots: %s not written", path.name)
        return None
    with_macc = all(s.get("macc") is not None for s in summary)
    second = ("test mAcc (%)", *panel("macc", "macc_std")) if with_macc else None
    plots.bands(path, series, references, "shots per class", "test top-1 (%)", title,
                second=second)
    return path


def plot_curves(curves: Sequence[dict], path: Path, title: str = "",
                selected_epoch: Optional[int] = None,
                initial_val_accuracy: Optional[float] = None) -> Path:
    """Train and validation accuracy over the training loss, against epochs (the rows of
    ``curves``: epoch, loss, train_accuracy, val_accuracy), with a star at the selected
    epoch. Epoch 0 is the untrained model: from an epoch-0 row of ``curves`` if there is
    one, else ``initial_val_accuracy`` (its validation accuracy) when given."""
    rows = sorted(curves, key=lambda c: c["epoch"])
    if rows and rows[0]["epoch"] != 0 and initial_val_accuracy is not None:
        rows.insert(0, {"epoch": 0, "loss": None, "train_accuracy": None,
                        "val_accuracy": initial_val_accuracy})
    epochs = [c["epoch"] for c in rows]
    val = [c.get("val_accuracy") for c in rows]
    selected = None
    if selected_epoch is not None and selected_epoch in epochs:
        selected = (selected_epoch, val[epochs.index(selected_epoch)])
    plots.training_curves(path, epochs, [c.get("loss") for c in rows],
                          {"train top-1 (running, during the epoch)":
                               [c.get("train_accuracy") for c in rows],
                           "validation top-1": val}, selected, title)
    return path
