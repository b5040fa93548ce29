"""What a benchmark measured: results.json, results.md (and a ModelNet40-C run's two plots).

A table (:class:`TableResult`, OpenShape's protocol) has one row per dataset and method:
top-1 / top-3 / top-5, the clouds reported, and the protocol of the row (what CALIP's betas
were tuned on; PointCLIP tunes nothing).

For ModelNet40-C (:class:`BenchmarkResult`): accuracies are in percent. Each cell (corruption x severity), the clean ModelNet40 TEST split
and ``data_original.npy`` carry PointCLIP (betas 0, equal view weights) and CALIP (the tuned
betas and weights) top-1 / top-3 / top-5; the mean per corruption averages its severities and
the overall mean averages every cell.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ..report import plots
from ..report.metrics import Accuracy
from .corruption_error import (DGCNN_REFERENCES, MODELNET40C_DGCNN_ERROR, error_rates,
                               normalised_errors)
from ..datasets.release import DataStatement, statements_text
from ..report.results import RunInfo, display_name, run_title
from .sets import robustness_entry
from ..search import SearchResult
from ..core.words import count

METHODS = ("pointclip", "calip")
TOPK = ("top1", "macc", "top3", "top5")


def _limit(cfg) -> str:
    """The results.md line on ``cfg.limit``: how many clouds of each set were evaluated."""
    if cfg.limit is None:
        return "none (every cloud)"
    return f"{count(cfg.limit, 'cloud')} per set (class-stratified, seed {cfg.tune.seed})"


@dataclass
class SetScore:
    """PointCLIP and CALIP accuracy on one evaluated set of ``n`` clouds."""

    label: str                 # "modelnet40 test", "original", "gaussian_3"
    n: int
    pointclip: Accuracy
    calip: Accuracy
    corruption: Optional[str] = None
    severity: Optional[int] = None
    points: Optional[int] = None     # points per cloud fed to the projector (every stored one)

    def to_dict(self) -> dict:
        return {"n": self.n, "points": self.points, "pointclip": self.pointclip.topk(),
                "calip": self.calip.topk()}


def _mean(scores: List[SetScore], method: str) -> Dict[str, float]:
    return {k: float(np.mean([getattr(s, method).topk()[k] for s in scores])) for k in TOPK}



def compare_labels(theirs: np.ndarray, clean: np.ndarray) -> dict:
    """An evaluated set's labels against the clean TEST labels: ``clouds`` (of the set),
    ``clean_clouds``, ``differing`` (clouds whose label differs, plus any count difference) and
    the ``first_rows`` (at most 10) that differ."""
    theirs, clean = np.asarray(theirs).reshape(-1), np.asarray(clean).reshape(-1)
    n = min(len(theirs), len(clean))
    rows = np.flatnonzero(theirs[:n] != clean[:n])
    return {"clouds": int(len(theirs)), "clean_clouds": int(len(clean)),
            "differing": int(rows.size) + abs(len(theirs) - len(clean)),
            "first_rows": [int(r) for r in rows[:10]]}


@dataclass
class LabelCheck:
    """Every evaluated set's labels against the clean TEST labels, as results.json records
    them (``labels_vs_clean_test``): ``agree`` (all sets), ``sets_checked``,
    ``differing_sets`` and the ``first`` set that differs (its name, label file and
    :func:`compare_labels`), None when all agree."""

    checked: int = 0
    differing: int = 0
    first: Optional[dict] = None

    def add(self, name: str, file, labels: np.ndarray, clean: np.ndarray) -> bool:
        """Compare one set's labels; -> whether they agree."""
        self.checked += 1
        check = compare_labels(labels, clean)
        if not check["differing"]:
            return True
        self.differing += 1
        if self.first is None:
            self.first = {"set": name, "file": str(file), **check}
        return False

    def to_dict(self) -> dict:
        return {"agree": self.differing == 0, "sets_checked": self.checked,
                "differing_sets": self.differing, "first": self.first}


def _json_keys(value):
    """Dict keys as strings (severities are ints), recursively."""
    if isinstance(value, dict):
        return {str(k): _json_keys(v) for k, v in value.items()}
    return value


def run_header(result) -> dict:
    """What both benchmark results record about the run: its config, machine, backbone,
    projector, views, templates, limit and store mode."""
    cfg = result.config
    return {"config_name": cfg.name, "config": cfg.to_dict(), "run": result.run.to_dict(),
            "backbone": cfg.backbone, "backbone_identity": result.backbone_identity,
            "projector": result.projector_settings, "views": list(result.views),
            "templates": list(result.templates), "limit": cfg.limit, "store": cfg.store}

@dataclass
class BenchmarkResult:
    """A robustness run (ModelNet40-C, ModelNet-C, ScanObjectNN-C); ``to_dict()`` is
    results.json, ``to_markdown()`` results.md."""

    config: object                      # BenchmarkConfig
    run: RunInfo
    benchmark: str
    backbone_identity: str
    projector_settings: dict
    views: List[int]
    templates: List[str]
    tuning_protocol: str
    tuning_clouds: int
    found: SearchResult
    clean: SetScore
    original: Optional[SetScore]        # the release's uncorrupted set (None: it has none)
    cells: List[SetScore]
    timings: Dict[str, float] = field(default_factory=dict)
    labels_vs_clean: Optional[dict] = None   # every set's labels against clean TEST (LabelCheck)
    data: List[DataStatement] = field(default_factory=list)   # complete releases or not
    classnames: List[str] = field(default_factory=list)      # the clean class list, label order

    @property
    def corruptions(self) -> List[str]:
        return list(dict.fromkeys(c.corruption for c in self.cells))

    @property
    def severities(self) -> List[int]:
        return sorted({c.severity for c in self.cells})

    def of(self, corruption: str) -> List[SetScore]:
        return [c for c in self.cells if c.corruption == corruption]

    def table(self, method: str, k: str = "top1") -> np.ndarray:
        """[corruptions, severities] accuracy of ``method`` (NaN where not evaluated)."""
        out = np.full((len(self.corruptions), len(self.severities)), np.nan)
        for c in self.cells:
            out[self.corruptions.index(c.corruption), self.severities.index(c.severity)] = \
                getattr(getattr(c, method), k)
        return out

    def errors(self, method: str) -> dict:
        """Error rates (100 - top-1) of ``method`` per corruption and severity, per corruption
        and overall (:func:`~.corruption_error.error_rates`); for ModelNet-C, its
        DGCNN-normalised CE / RCE and mCE / RmCE (the clean error on the release's clean set,
        ``comparable`` only over its 7 corruptions x 5 levels; None for other benchmarks); for
        ModelNet40-C, the ratio of the mean error to DGCNN's (over the cells evaluated; None
        for other benchmarks)."""
        acc = {c: {s.severity: getattr(s, method).top1 for s in self.of(c)} for c in self.corruptions}
        out = error_rates(acc)
        clean = getattr(self.clean, method).top1
        per_corruption = {c: float(np.mean(list(row.values()))) for c, row in acc.items()}
        out["clean"] = 100.0 - clean
        out["dgcnn_normalised"] = None
        reference = DGCNN_REFERENCES.get(self.benchmark)
        if reference is not None:
            own = self.original is not None             # ModelNet-C's OA_clean: its clean.h5
            n = normalised_errors(getattr(self.original if own else self.clean, method).top1,
                                  per_corruption, reference)
            if n is not None:
                entry = robustness_entry(self.benchmark)
                every = (set(n["corruptions"]) == set(reference) - {"clean"}
                         and all(set(acc[c]) == set(entry.severities) for c in n["corruptions"]))
                n.update(clean_set=entry.clean_set if own else self.clean.label, comparable=every)
            out["dgcnn_normalised"] = n
        out["mean_vs_dgcnn"] = None
        if self.benchmark == "modelnet40c":
            full = len(self.cells) == 75
            out["mean_vs_dgcnn"] = {
                "dgcnn_mean_error": MODELNET40C_DGCNN_ERROR["corruption_mean"],
                "ratio": out["mean"] / MODELNET40C_DGCNN_ERROR["corruption_mean"],
                "over": "every cell" if full else f"{len(self.cells)} of the 75 cells (not comparable)"}
        return out

    def confusions(self) -> dict:
        """A confusion matrix per evaluated set and method (figures: clean TEST and the
        original only; 75 corrupted sets as CSV)."""
        out = {}
        for score, draw in [(self.clean, True), (self.original, True), *((c, False) for c in self.cells)]:
            for m in METHODS:
                out[f"{score.label}_{m}"] = (self.classnames, getattr(score, m).confusion, draw)
        return out

    def to_dict(self) -> dict:
        cfg = self.config
        return {
            "command": "benchmark",
            "benchmark": self.benchmark,
            **run_header(self),
            "data": [d.to_dict() for d in self.data],
            "tuning": {"protocol": self.tuning_protocol, "dataset": cfg.data.label,
                       "split": "val", "num_clouds": self.tuning_clouds, "seed": cfg.tune.seed,
                       "val_fraction": cfg.tune.val_fraction,
                       "grid": [cfg.tune.grid, cfg.tune.grid],
                       "searched_view_weights": cfg.tune.view_weights,
                       "tuning_accuracy": 100.0 * self.found.accuracy},
            "beta2": self.found.beta2,
            "beta3": self.found.beta3,
            "view_weights": list(self.found.view_weights),
            "clean": {"dataset": cfg.data.label, "split": "test", **self.clean.to_dict()},
            "original": None if self.original is None else self.original.to_dict(),
            "labels_vs_clean_test": self.labels_vs_clean,
            "corruptions": {c: {str(s.severity): s.to_dict() for s in self.of(c)}
                            for c in self.corruptions},
            "mean_per_corruption": {c: {m: _mean(self.of(c), m) for m in METHODS}
                                    for c in self.corruptions},
            "mean_per_severity": {str(v): {m: _mean([c for c in self.cells if c.severity == v], m)
                                           for m in METHODS} for v in self.severities},
            "overall": {m: _mean(self.cells, m) for m in METHODS},
            "error_rates": {m: _json_keys(self.errors(m)) for m in METHODS},
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }

    def _grid(self, method: str, title: str) -> List[str]:
        r = self.to_dict()
        sev = self.severities
        lines = [f"### {title} top-1 (%)", "",
                 "| corruption | " + " | ".join(f"s{s}" for s in sev) + " | mean |",
                 "|---|" + "---|" * (len(sev) + 1)]
        for c in self.corruptions:
            row = {s.severity: getattr(s, method).top1 for s in self.of(c)}
            lines.append(f"| {c} | " + " | ".join(f"{row[s]:.2f}" for s in sev)
                         + f" | {r['mean_per_corruption'][c][method]['top1']:.2f} |")
        lines.append("| **mean** | " + " | ".join(
            f"{r['mean_per_severity'][str(s)][method]['top1']:.2f}" for s in sev)
            + f" | **{r['overall'][method]['top1']:.2f}** |")
        return lines + [""]

    def _label_warning(self, clean: str) -> List[str]:
        check = self.labels_vs_clean
        if not check or check["agree"]:
            return []
        first = check["first"]
        more = " ..." if first["differing"] > len(first["first_rows"]) else ""
        return [f"**Warning:** the labels of {check['differing_sets']} of {check['sets_checked']} "
                f"{self.benchmark} sets differ from the clean {clean} TEST labels; first "
                f"{first['set']} ({first['file']}): {first['differing']} of "
                f"{count(first['clouds'], 'cloud')} (rows "
                f"{', '.join(map(str, first['first_rows']))}{more}). Its clouds may "
                f"not be {clean}'s TEST clouds in their order.", ""]


    def _error_grid(self, method: str, title: str) -> List[str]:
        """Error rates as ModelNet40-C's tables give them, and the DGCNN-relative numbers."""
        e, sev = self.errors(method), self.severities
        lines = [f"### {title} error rate (%) = 100 - top-1", "",
                 "| corruption | " + " | ".join(f"s{s}" for s in sev) + " | mean |",
                 "|---|" + "---|" * (len(sev) + 1)]
        for c in self.corruptions:
            row = e["cells"][c]
            lines.append(f"| {c} | " + " | ".join(f"{row[s]:.2f}" if s in row else "-" for s in sev)
                         + f" | {e['per_corruption'][c]:.2f} |")
        v = e["mean_vs_dgcnn"]
        lines += ["| **mean** | " + " |" * len(sev) + f" **{e['mean']:.2f}** |", "",
                  f"- Clean error rate {e['clean']:.2f}%; mean corruption error {e['mean']:.2f}%"
                  + (f" = {v['ratio']:.3f} x DGCNN's {v['dgcnn_mean_error']}% on ModelNet40-C "
                     f"(its repository's standard-training table; over {v['over']})." if v else ".")]
        n = e["dgcnn_normalised"]
        if n:
            lines.append(
                f"- mCE {n['mce']:.3f}, RmCE {n['rmce']:.3f} (ModelNet-C's errors normalised by "
                f"DGCNN's per corruption, over {', '.join(n['corruptions'])}; clean error on the "
                f"release's {n['clean_set']!r} set"
                + ("" if n["comparable"] else "; not every corruption x level evaluated: not "
                   "comparable with published mCE") + "); per corruption CE / RCE: "
                + ", ".join(f"{c} {n['ce'][c]:.3f} / {n['rce'][c]:.3f}" for c in n["corruptions"]))
        else:
            lines.append("- mCE / RmCE (ModelNet-C, normalised by DGCNN per corruption): not "
                         "computed: DGCNN's published per-corruption references are for "
                         f"ModelNet-C (ModelNet40 clouds) only; this benchmark is {self.benchmark}.")
        return lines + [""]

    def to_markdown(self) -> str:
        cfg, r = self.config, self.to_dict()
        acc = lambda a: f"{a.top1:.2f} / {a.mean_per_class:.2f} / {a.top3:.2f} / {a.top5:.2f}"  # noqa: E731
        lines = [
            f"# Benchmark: {run_title(self.benchmark, cfg.projector.name, cfg.backbone)}", "",
            f"{cfg.backbone}, projector {cfg.projector.name}, {count(len(self.views), 'view')}; "
            f"beta2 {self.found.beta2:.4g}, beta3 {self.found.beta3:.4g}, view weights "
            f"{', '.join(f'{w:g}' for w in self.found.view_weights)}.", "",
            "| set | clouds | PointCLIP top-1 / mAcc / top-3 / top-5 | CALIP top-1 / mAcc / top-3 / top-5 |",
            "|---|---|---|---|",
            f"| clean {cfg.data.label} TEST | {self.clean.n} | {acc(self.clean.pointclip)} | "
            f"{acc(self.clean.calip)} |",
            *([] if self.original is None else [
                f"| {self.benchmark} {self.original.label} | {self.original.n} | "
                f"{acc(self.original.pointclip)} | {acc(self.original.calip)} |"]),
            f"| {self.benchmark} mean of {len(self.cells)} corrupted sets | {self.cells[0].n} | "
            + " | ".join(" / ".join(f"{r['overall'][m][k]:.2f}" for k in TOPK) for m in METHODS)
            + " |", "",
            *self._label_warning(cfg.data.label),
            *self._grid("calip", "CALIP"),
            *self._grid("pointclip", "PointCLIP"),
            *self._error_grid("calip", "CALIP"),
            *self._error_grid("pointclip", "PointCLIP"),
            *statements_text(self.data),
            f"- Tuning protocol: {self.tuning_protocol}",
            f"- Limit: {_limit(cfg)}",
            f"- Prompt templates: {'; '.join(repr(t) for t in self.templates)}",
            "- Timings (s): " + ", ".join(f"{k} {v:.2f}" for k, v in r["timings"].items()),
            f"- Command: `{self.run.command_line}` ({self.run.date}, {self.run.device}, "
            f"{self.run.precision})",
        ]
        return "\n".join(lines) + "\n"


#: what a PointCLIP row was tuned on: nothing
POINTCLIP_PROTOCOL = "none: betas 0, equal view weights (PointCLIP), nothing tuned"


@dataclass
class DatasetScore:
    """One dataset of a table: PointCLIP and CALIP on its ``report_rows`` (indices into its
    test data), and how CALIP's betas were set (``rule``: val / test_slice / from)."""

    label: str
    name: str
    variant: Optional[str]
    root: str
    classnames: List[str]
    classes_sha256: str
    rule: str
    protocol: str
    test_clouds: int                       # clouds in the test data (reported or not)
    report_rows: np.ndarray
    tune_rows: Optional[np.ndarray]        # tuned on in this run (of TRAIN or of the test data)
    tuned_test_rows: Optional[np.ndarray]  # test rows the betas come from (this run or tune.from)
    source: Optional[dict]                 # tune.from: {"path", "sha256"}
    found: SearchResult
    pointclip: Accuracy
    calip: Accuracy
    features: Dict[str, dict]             # "tuning" / "reported" -> store path and encode stats
    seconds: float
    test_data: Optional[str] = None        # identity of the test data the rows index
    tuned_test_ids: Optional[List[str]] = None   # object ids of tuned_test_rows (LVIS uids)

    def rows(self) -> List[dict]:
        """The table's two rows (PointCLIP, CALIP)."""
        common = {"dataset": self.label, "clouds": len(self.report_rows),
                  "classes": len(self.classnames)}
        return [{**common, "method": "pointclip", **self.pointclip.topk(),
                 "protocol": POINTCLIP_PROTOCOL},
                {**common, "method": "calip", **self.calip.topk(), "protocol": self.protocol}]

    def to_dict(self) -> dict:
        tuned_here = self.rule != "from"
        return {
            "name": self.name, "variant": self.variant, "data_root": self.root,
            "split": "test", "test_clouds": self.test_clouds,
            "reported_clouds": len(self.report_rows),
            "num_classes": len(self.classnames), "classes_sha256": self.classes_sha256,
            "tuning": {"rule": self.rule, "protocol": self.protocol,
                       "num_clouds": len(self.tune_rows) if tuned_here else None,
                       # the test clouds the betas come from (none reported), for anyone to check
                       "test_rows": (None if self.tuned_test_rows is None
                                     else self.tuned_test_rows.tolist()),
                       # what those rows are, for a later tune.from to match: the object
                       # ids, and the identity of the test data they index
                       **({} if self.tuned_test_ids is None else
                          {"test_ids": list(self.tuned_test_ids)}),
                       "test_data": self.test_data,
                       "from": self.source,
                       "tuning_accuracy": 100.0 * self.found.accuracy if tuned_here else None},
            "beta2": self.found.beta2, "beta3": self.found.beta3,
            "view_weights": list(self.found.view_weights),
            "pointclip": self.pointclip.topk(), "calip": self.calip.topk(),
            "features": self.features, "seconds": round(self.seconds, 3),
        }


@dataclass
class TableResult:
    """A table benchmark (``datasets``); ``to_dict()`` is results.json, ``to_markdown()``
    results.md."""

    config: object                      # BenchmarkConfig
    run: RunInfo
    backbone_identity: str
    projector_settings: dict
    views: List[int]
    templates: List[str]
    datasets: List[DatasetScore]
    timings: Dict[str, float] = field(default_factory=dict)
    data: List[DataStatement] = field(default_factory=list)   # complete releases or not

    def confusions(self) -> dict:
        """A confusion matrix per dataset and method (figures up to 60 classes)."""
        return {f"{d.label}_{m}": (d.classnames, getattr(d, m).confusion, True)
                for d in self.datasets for m in METHODS}

    def to_dict(self) -> dict:
        cfg = self.config
        return {
            "command": "benchmark",
            "benchmark": cfg.name,
            **run_header(self),
            "data": [d.to_dict() for d in self.data],
            "tune": {"seed": cfg.tune.seed, "val_fraction": cfg.tune.val_fraction,
                     "grid": [cfg.tune.grid, cfg.tune.grid], "beta2_max": cfg.tune.beta2_max,
                     "beta3_max": cfg.tune.beta3_max,
                     "searched_view_weights": cfg.tune.view_weights},
            "columns": ["dataset", "method", "clouds", "classes", *TOPK, "protocol"],
            "rows": [row for d in self.datasets for row in d.rows()],
            "datasets": {d.label: d.to_dict() for d in self.datasets},
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }

    def to_markdown(self) -> str:
        cfg = self.config
        pct = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
        lines = [f"# Benchmark: {run_title(' / '.join(d.label for d in self.datasets), cfg.projector.name, cfg.backbone)}", "",
                 f"{cfg.backbone}, projector {cfg.projector.name}, "
                 f"{count(len(self.views), 'view')}; "
                 f"accuracies in percent.", "",
                 "| dataset | method | clouds | classes | top-1 | mAcc | top-3 | top-5 | protocol |",
                 "|---|---|---|---|---|---|---|---|---|"]
        for row in self.to_dict()["rows"]:
            lines.append(f"| {row['dataset']} | {display_name(row['method'])} | {row['clouds']} | "
                         f"{row['classes']} | {pct(row['top1'])} | {pct(row['macc'])} | "
                         f"{pct(row['top3'])} | {pct(row['top5'])} | {row['protocol']} |")
        lines.append("")
        for d in self.datasets:
            lines.append(f"- {d.label}: beta2 {d.found.beta2:.4g}, beta3 {d.found.beta3:.4g}, "
                         f"view weights {', '.join(f'{w:g}' for w in d.found.view_weights)}")
        lines += [
            *statements_text(self.data),
            f"- Limit: {_limit(cfg)}",
            f"- Prompt templates: {'; '.join(repr(t) for t in self.templates)}",
            "- Timings (s): " + ", ".join(f"{k} {v:.2f}" for k, v in self.timings.items()),
            f"- Command: `{self.run.command_line}` ({self.run.date}, {self.run.device}, "
            f"{self.run.precision})",
        ]
        return "\n".join(lines) + "\n"


def heatmap_figure(result: BenchmarkResult, methods=METHODS):
    """Corruption (rows) x severity (columns) top-1, one panel per method side by side (one
    colour scale, 0-100%), values written in the cells."""
    rows = len(result.corruptions)
    size = (520 * len(methods) + 110, 150 + 30 * rows)
    fig = plots._figure(size)
    fig.set_layout_engine("constrained")
    axes = fig.subplots(1, len(methods), squeeze=False)[0]
    image = None
    for ax, method in zip(axes, methods):
        values = result.table(method)
        image = ax.imshow(values, aspect="auto", cmap="viridis", vmin=0, vmax=100)
        ax.set_xticks(range(len(result.severities)), [str(s) for s in result.severities])
        ax.set_yticks(range(rows), result.corruptions, fontsize=9)
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                ax.text(j, i, f"{values[i, j]:.1f}", ha="center", va="center", fontsize=9,
                        color="white" if values[i, j] < 60 else "black")
        ax.set_xlabel("severity")
        clean = getattr(result.clean, method).top1
        ax.set_title(f"{display_name(method)} top-1 (%), clean {clean:.1f}", fontsize=11)
    fig.colorbar(image, ax=list(axes), label="top-1 accuracy (%)")
    fig.suptitle(result.benchmark, fontsize=11)
    return fig, size


def write_plots(result: BenchmarkResult, folder: Path) -> List[Path]:
    """``heatmap_calip.png``: CALIP's and PointCLIP's corruption x severity top-1 side by side,
    and ``severity.png`` (mean accuracy against severity, each method's clean accuracy as a
    dashed line in its colour) in ``folder``, in the command's figure format."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fig, size = heatmap_figure(result, ("calip", "pointclip"))
    heat = folder / "heatmap_calip.png"
    plots._save(fig, heat, size)
    r = result.to_dict()
    sev = result.severities
    colours = {"pointclip": "tab:blue", "calip": "tab:orange"}
    series, styles = {}, {}
    for m in METHODS:
        name = display_name(m)
        series[f"{name} (mean of corruptions)"] = [r["mean_per_severity"][str(s)][m]["top1"] for s in sev]
        styles[f"{name} (mean of corruptions)"] = {"color": colours[m]}
        series[f"{name} clean"] = [getattr(result.clean, m).top1] * len(sev)
        styles[f"{name} clean"] = {"linestyle": "--", "marker": None, "color": colours[m]}
    line = folder / "severity.png"
    plots.lines(line, sev, series, "severity", "top-1 accuracy (%)",
                f"{result.benchmark}: accuracy against severity", styles=styles)
    return [plots.figure_name(heat), plots.figure_name(line)]
