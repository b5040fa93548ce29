"""The results of `pointcalip adapt`: results.json / results.md (a table per benchmark:
corruption x severity, mean +- std of top-1 per row), ``gain.png`` (the full cache's gain over
zero-shot CALIP, corruption x severity) and ``curves.png`` (running accuracy per order)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ..report import plots
from ..report.results import RunInfo
from ..search import SearchResult
from ..testtime.stream import StreamSummary
from .config import AdaptConfig, CacheConfig
from ..core.words import count

#: the rows, in table order: (name, base, cache rule or None for zero-shot)
ROWS = (("PointCLIP", "pointclip", None), ("CALIP", "calip", None),
        ("+ positive", "calip", "positive"), ("+ positive + negative", "calip", "negative"),
        ("+ local (full)", "calip", "full"), ("PointCLIP + cache (full)", "pointclip", "full"))
@dataclass
class SetResult:
    name: str
    clouds: int
    corruption: Optional[str]
    severity: Optional[int]
    rows: Dict[str, StreamSummary]
    curves: Dict[str, List[List[float]]] = field(default_factory=dict)   # row -> per order
    curve_at: List[int] = field(default_factory=list)                     # cloud counts
    points: int = 0                          # points per cloud fed (every stored point)


FULL, ZERO = "+ local (full)", "CALIP"
SCALE_NOTE = ("cache alphas are on Tip's scale (100 cos of the descriptor); added to our "
              "base logits times ||w||_2 (sqrt(V) for equal view weights); entropies on base / "
              "||w||_2")


@dataclass
class AdaptResult:
    config: AdaptConfig
    run: RunInfo
    backbone_identity: str
    projector_settings: dict
    views: List[int]
    templates: List[str]
    found: SearchResult
    cache: CacheConfig
    cache_grid: Optional[list]
    tuning_clouds: int
    sets: List[SetResult]
    total_s: float
    classnames: List[str] = field(default_factory=list)

    def confusions(self) -> dict:
        """Per set, the confusion matrices of PointCLIP, CALIP and the full cache, cloud
        counts summed over the stream orders (zero-shot rows: the same in every order) ->
        ``{name: (classnames, [K, K], draw, title)}``; figures for the first set only."""
        out = {}
        for i, s in enumerate(self.sets):
            for label in ("PointCLIP", ZERO, FULL):
                row = s.rows.get(label)
                if row is None or row.confusion is None or not self.classnames:
                    continue
                orders = len(row.accuracies)
                key = {"PointCLIP": "pointclip", ZERO: "calip", FULL: "cache_full"}[label]
                out[f"{s.name}_{key}"] = (
                    self.classnames, row.confusion, i == 0,
                    f"{s.name}, {label}: confusion (counts summed over {orders} "
                    f"order{'s' if orders != 1 else ''})")
        return out

    @property
    def online(self) -> bool:
        return not self.cache.prefill

    @property
    def protocol(self) -> str:
        p = ("online: caches start empty, each cloud updates then is scored in stream order"
             if self.online else "NOT ONLINE: Point-Cache's pre-fill (caches filled from the "
                                 "test clouds before the evaluated pass), for reproduction only")
        if self.cache.score_first:
            p += "; each cloud scored before it updates the caches"
        return p

    @property
    def hyper(self) -> str:
        if self.cache_grid is None:
            return "fixed: the spec's defaults (Point-Cache's), chosen in advance"
        return (f"val: alpha and beta chosen by streaming the clean validation subset of "
                f"TRAIN ({count(self.tuning_clouds, 'cloud')}, "
                f"{count(self.config.orders, 'order')}) over "
                f"{len(self.cache_grid)} grid points; never on test labels")

    def to_dict(self) -> dict:
        cfg = self.config
        return {
            "command": "adapt", "config_name": cfg.name, "config": cfg.to_dict(),
            "run": self.run.to_dict(), "backbone": cfg.backbone,
            "backbone_identity": self.backbone_identity, "projector": self.projector_settings,
            "views": self.views, "templates": self.templates,
            "benchmark": None if cfg.benchmark is None else cfg.benchmark.name,
            "online": self.online, "protocol": self.protocol,
            "calip": {**self.found.to_dict(), "tuned_on": f"clean validation of TRAIN "
                                                          f"({count(self.tuning_clouds, 'cloud')})"},
            "cache": {**self.cache.to_dict(), "hyper_parameters": self.hyper,
                      "grid": self.cache_grid, "scale_convention": SCALE_NOTE},
            "orders": cfg.orders, "order_seed": cfg.order_seed,
            "rows": [label for label, _, _ in ROWS],
            "sets": [{"name": s.name, "clouds": s.clouds, "points": s.points,
                      "corruption": s.corruption,
                      "severity": s.severity,
                      "rows": {k: v.to_dict() for k, v in s.rows.items()},
                      "curves": {"clouds_seen": s.curve_at, "running_top1": s.curves}}
                     for s in self.sets],
            "total_s": round(self.total_s, 3)}

    def grid(self, row: str) -> tuple:
        """(corruptions, severities, values [C, S] mean top-1 of ``row``)."""
        cells = [s for s in self.sets if s.corruption is not None]
        corruptions = list(dict.fromkeys(s.corruption for s in cells))
        severities = sorted({s.severity for s in cells})
        values = np.full((len(corruptions), len(severities)), np.nan)
        for s in cells:
            values[corruptions.index(s.corruption), severities.index(s.severity)] = s.rows[row].mean
        return corruptions, severities, values

    def to_markdown(self) -> str:
        cfg = self.config
        title = cfg.benchmark.name if cfg.benchmark is not None else cfg.data.label
        lines = [f"# pointcalip adapt: {title}" + ("" if self.online else " (NOT ONLINE)"), "",
                 f"- protocol: {self.protocol}",
                 f"- cache hyper-parameters: {self.hyper}; alpha {self.cache.alpha:g}, beta "
                 f"{self.cache.beta:g}, k {self.cache.capacity}, negative k "
                 f"{self.cache.neg_capacity}, alpha_n {self.cache.neg_alpha:g}, m "
                 f"{self.cache.centres}",
                 f"- CALIP betas {self.found.beta2:.4g}, {self.found.beta3:.4g} (tuned on clean "
                 f"validation of TRAIN, {count(self.tuning_clouds, 'cloud')})",
                 f"- {cfg.orders} seeded stream orders per set (seed {cfg.order_seed}), the same "
                 f"for every row; mean +- std (ddof 1) of top-1 (%); zero-shot rows are "
                 f"order-free", f"- {SCALE_NOTE}", ""]
        head = "| set | clouds | points | " + " | ".join(label for label, _, _ in ROWS) + " |"
        lines += ["## Every set", "", head, "|" + "---|" * (len(ROWS) + 3)]
        for s in self.sets:
            lines.append(f"| {s.name} | {s.clouds} | {s.points} | " + " | ".join(
                f"{s.rows[label].mean:.2f} ± {s.rows[label].std:.2f}" for label, _, _ in ROWS)
                + " |")
        if all(s.rows[label].macc is not None for s in self.sets for label, _, _ in ROWS):
            lines += ["", "Mean class accuracy (mAcc, %), the mean over the orders:", "",
                      "| set | " + " | ".join(label for label, _, _ in ROWS) + " |",
                      "|" + "---|" * (len(ROWS) + 1)]
            lines += [f"| {s.name} | " + " | ".join(f"{s.rows[label].macc:.2f}" for label, _, _ in ROWS)
                      + " |" for s in self.sets]
            lines += ["", "Confusion matrices (PointCLIP, CALIP, the full cache; counts summed "
                      "over the orders): confusion/ (CSV; figures for the first set)."]
        ms = {label: np.mean([s.rows[label].seconds_per_cloud for s in self.sets]) * 1e3
              for label, _, rule in ROWS if rule}
        lines += ["", "Cache time per cloud (ms; the full method includes k-means): "
                  + ", ".join(f"{k} {v:.3f}" for k, v in ms.items()), ""]
        corruptions, severities, full = self.grid(FULL)
        if corruptions:
            _, _, zero = self.grid(ZERO)
            lines += [f"## {title}: full cache top-1 (gain over zero-shot CALIP), corruption "
                      f"x severity", "", "| corruption | " + " | ".join(
                          str(s) for s in severities) + " | mean |",
                      "|---|" + "---|" * (len(severities) + 1)]
            for i, c in enumerate(corruptions):
                cells = [f"{full[i, j]:.2f} ({full[i, j] - zero[i, j]:+.2f})"
                         for j in range(len(severities))]
                lines.append(f"| {c} | " + " | ".join(cells) +
                             f" | {np.nanmean(full[i]):.2f} ({np.nanmean(full[i] - zero[i]):+.2f}) |")
            lines.append("")
        return "\n".join(lines) + "\n"


def write_plots(result: AdaptResult, folder: Path) -> List[Path]:
    """``curves.png`` (running top-1 of the full cache, each order, on the first set, with
    zero-shot CALIP dashed) and, for a benchmark, ``gain.png`` (full minus zero-shot CALIP,
    corruption x severity, values in the cells)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    first = result.sets[0]
    series = {f"order {i + 1}": c for i, c in enumerate(first.curves[FULL])}
    series[f"zero-shot CALIP ({first.rows[ZERO].mean:.1f})"] = [first.rows[ZERO].mean] * len(first.curve_at)
    note = "" if result.online else " (NOT ONLINE: pre-filled)"
    size = (720, 420)
    fig = plots.lines_figure(first.curve_at, series, "clouds seen", "running top-1 (%)",
                             f"{first.name}: running accuracy of the full cache{note}", size,
                             styles={k: {"marker": None} for k in series})
    fig.axes[0].set_xticks(np.linspace(first.curve_at[0], first.curve_at[-1], 6).round())
    plots._save(fig, folder / "curves.png", size)
    out.append(folder / "curves.png")
    corruptions, severities, full = result.grid(FULL)
    if corruptions:
        _, _, zero = result.grid(ZERO)
        gain = full - zero
        size = (560, 140 + 28 * len(corruptions))
        fig = plots._figure(size)
        fig.set_layout_engine("constrained")
        ax = fig.add_subplot()
        bound = max(1.0, float(np.nanmax(np.abs(gain))))
        image = ax.imshow(gain, aspect="auto", cmap="RdBu", vmin=-bound, vmax=bound)
        ax.set_xticks(range(len(severities)), [str(s) for s in severities])
        ax.set_yticks(range(len(corruptions)), corruptions, fontsize=8)
        for i in range(gain.shape[0]):
            for j in range(gain.shape[1]):
                ax.text(j, i, f"{gain[i, j]:+.1f}", ha="center", va="center", fontsize=7)
        ax.set_xlabel("severity")
        ax.set_title(f"{result.config.benchmark.name}: full cache minus zero-shot CALIP "
                     f"(top-1 points){note}", fontsize=10)
        fig.colorbar(image, ax=ax, label="gain (points)")
        plots._save(fig, folder / "gain.png", size)
        out.append(folder / "gain.png")
    return out
