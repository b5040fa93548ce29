"""`pointcalip segment`: the protocol of docs/segmentation.md on ShapeNetPart, and one file.

Stages: load the splits -> encode the views (feature store) -> part texts of each prompt
candidate -> per candidate, point logits of the tuning split on a seeded subsample of points
and the search (per category or shared) -> each category keeps its best candidate ->
stream the test split: dense CLIP (betas 0, equal weights) and dense CALIP (tuned)
predictions for every point -> metrics, predictions.npz, pictures, results.json / .md.
The dense terms are read at the points (not as full 224 x 224 maps), and the test split's
terms are never all held at once: only the predicted part ids are kept.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..core.atomic import atomic_write
from ..core.identity import check_disjoint, data_identity
from ..core.paths import ensure_writable
from ..datasets.shapenetpart import (PART_COUNTS, PART_OFFSETS, SHAPENETPART_CATEGORIES,
                                     ShapeNetPart)
from ..core.progress import progress
from ..datasets.release import DataStatement, describe, statements_text
from ..report.results import RunInfo, backbone_label, run_name, run_title
from .config import SegmentConfig, check_part_templates, read_part_sentences
from .locations import LocationCache
from .metrics import SegmentationScores, segmentation_scores
from .points import PointLogits, point_logits, predict_local
from .search import COARSE, Group, SegParams, search_segmentation
from ..core.words import count

log = logging.getLogger(__name__)


def part_prompts(category: str, parts: Sequence[str], templates: Sequence[str]
                 ) -> List[List[str]]:
    """Per part, every template filled with the part and the category (``_`` -> space); or,
    when ``templates`` is a per-part sentence file, that file's sentences."""
    templates = check_part_templates(templates)
    if len(templates) == 1 and "{part}" not in templates[0]:
        sentences = read_part_sentences(templates[0])
        missing = [p for p in parts if p not in sentences.get(category, {})]
        if missing:
            raise ValueError(f"part sentence file {templates[0]} has no sentences for "
                             f"{category}.{missing[0]} (key {category!r} needs every part: "
                             f"{list(parts)})")
        return [list(sentences[category][p]) for p in parts]
    cat = category.replace("_", " ")
    return [[t.format(part=p.replace("_", " "), category=cat) for t in templates]
            for p in parts]


def part_text(backbone, category: str, parts: Sequence[str], templates: Sequence[str]
              ) -> torch.Tensor:
    """[P, C] unit rows: the part prompts encoded and ensembled like class texts."""
    return backbone.encode_prompts(part_prompts(category, parts, templates))


def shape_point_logits(spatial: torch.Tensor, points: torch.Tensor, categories: np.ndarray,
                       texts: Dict[int, torch.Tensor], xy: torch.Tensor, visible: torch.Tensor,
                       image_size: int, smooth: bool) -> Dict[int, tuple]:
    """One batch of shapes: spatial [b, V, HW, C], points [b, N, 3], categories [b], where the
    points land (``xy`` [b, V, N, 2] pixels in the ``image_size`` image, ``visible``
    [b, V, N]) -> {category: (positions in the batch, PointLogits)}."""
    out = {}
    for c in np.unique(categories):
        sel = torch.from_numpy(np.flatnonzero(categories == c))
        out[int(c)] = (sel.numpy(), point_logits(spatial[sel], texts[int(c)].to(spatial), xy[sel],
                                                 visible[sel], points[sel], image_size, smooth))
    return out


def _batches(features, dataset, rows: np.ndarray, batch_size: int, desc: str,
             views: Optional[Sequence[int]] = None):
    """(rows, spatial [b, V, HW, C] float32, points [b, N, 3]) over ``rows``; ``views``: only
    those of the stored views."""
    for s in progress(range(0, len(rows), batch_size), desc):
        chunk = rows[s:s + batch_size]
        _, spatial, _ = (features.store.read(chunk) if views is None
                         else features.store.read(chunk, views))
        yield chunk, torch.from_numpy(spatial).float(), dataset.points(chunk)


@dataclass
class KeptLocations:
    """Where the tuning points land, for every shape of the tuning split: ``keep`` [K] the
    seeded point indices, ``xy`` [M, V, K, 2] and ``visible`` [M, V, K] (rows = dataset
    positions), ``image_size`` the side of the images ``xy`` is in."""

    keep: np.ndarray
    xy: torch.Tensor
    visible: torch.Tensor
    image_size: int


def kept_locations(dataset: ShapeNetPart, locations: LocationCache, cfg: SegmentConfig
                   ) -> KeptLocations:
    """The tuning split's locations at ``tune.points`` seeded points (``tune.seed``), located
    (or read from ``locations``) once for every prompt candidate."""
    n = dataset.pid.shape[1]
    rng = np.random.default_rng(cfg.tune.seed)
    keep = np.sort(rng.choice(n, size=min(cfg.tune.points, n), replace=False))
    k = torch.as_tensor(keep)
    xy, visible = [], []
    rows = np.arange(len(dataset))
    for s in progress(range(0, len(rows), cfg.batch_size), "locate tune"):
        chunk = rows[s:s + cfg.batch_size]
        a, b = locations.locate(chunk, dataset.points(chunk))
        if cfg.views is not None:
            a, b = a[:, cfg.views], b[:, cfg.views]
        xy.append(a[:, :, k]), visible.append(b[:, :, k])    # index tensors copy
    return KeptLocations(keep, torch.cat(xy), torch.cat(visible),
                         locations.projector.image_size)


def gather_tuning(features, dataset: ShapeNetPart, texts, kept: KeptLocations,
                  cfg: SegmentConfig) -> Dict[int, Group]:
    """Per category, the tuning shapes' point logits on the kept points."""
    parts: Dict[int, List[tuple]] = {}
    keep = kept.keep
    rows = np.arange(len(dataset))
    for chunk, spatial, pts in _batches(features, dataset, rows, cfg.batch_size, "tune logits",
                                        cfg.views):
        at = torch.from_numpy(chunk)
        got = shape_point_logits(spatial, pts[:, torch.as_tensor(keep)],
                                 dataset.labels[chunk], texts, kept.xy[at], kept.visible[at],
                                 kept.image_size, cfg.smooth)
        for c, (sel, lg) in got.items():
            gt = torch.from_numpy(dataset.pid[chunk[sel]][:, keep] - PART_OFFSETS[c])
            parts.setdefault(c, []).append((lg, gt))
    groups = {}
    for c, items in parts.items():
        cat = lambda name: torch.cat([getattr(lg, name) for lg, _ in items])  # noqa: E731
        groups[c] = Group(PointLogits(cat("s0"), cat("s1"), cat("s2"), cat("visible"),
                                      cat("source")),
                          torch.cat([gt for _, gt in items]), PART_COUNTS[c])
    return groups


def tune(groups: Dict[int, Group], cfg: SegmentConfig, categories: Sequence[int] = ()
         ) -> Dict[int, SegParams]:
    """Per category (``tune.per_category``) or one shared search -> {category: params} for
    the categories of ``groups`` and ``categories`` (those reported). A reported category
    without tuning shapes gets the shared search's parameters (see :func:`tuning_sources`),
    never betas 0. ValueError when there is no tuning shape at all."""
    if not groups:
        raise ValueError("the tuning split holds no shape of the categories reported: nothing "
                         "to tune on; check data.categories or the VAL file list")
    wanted = sorted(set(groups) | {int(c) for c in categories})
    missing = [c for c in wanted if c not in groups]
    terms = cfg.tune.terms
    shared = (search_segmentation(list(groups.values()), cfg.tune.view_weights, terms=terms)
              if missing or not cfg.tune.per_category else None)
    if not cfg.tune.per_category:
        return {c: shared for c in wanted}
    out = {c: search_segmentation([g], cfg.tune.view_weights, terms=terms)
           for c, g in progress(sorted(groups.items()), "search per category")}
    out.update({c: shared for c in missing})
    return out


#: what the parameters of a category were tuned on (results.json ``per_category.<name>.tuned_on``)
TUNED_OWN, TUNED_SHARED, TUNED_FALLBACK = ("own", "shared", "shared: no tuning shapes")


def tuning_sources(tuned: Sequence[int], reported: Sequence[int], per_category: bool
                   ) -> Dict[int, str]:
    """Per reported category: ``own`` (its own tuning shapes, ``tune.per_category``),
    ``shared`` (one search over every category) or ``shared: no tuning shapes`` (it has
    reported shapes but no tuning shapes, so it falls back to the shared parameters)."""
    tuned = {int(c) for c in tuned}
    return {int(c): (TUNED_FALLBACK if int(c) not in tuned else
                     TUNED_OWN if per_category else TUNED_SHARED) for c in reported}


@dataclass
class PromptChoice:
    """Per category id: the chosen prompt candidate's index (``chosen``), its tuned
    parameters (``params``) and every candidate's tuned mIoU on the tuning shapes
    (``scores``, in candidate order)."""

    chosen: Dict[int, int] = field(default_factory=dict)
    params: Dict[int, SegParams] = field(default_factory=dict)
    scores: Dict[int, List[float]] = field(default_factory=dict)
    #: with ``tune.surface``: the first candidate's tuning-split instance mIoU over the coarse
    #: beta2 x beta3 grid at equal view weights (beta2 rows)
    surface: Optional[np.ndarray] = None
    tuned_on: Dict[int, str] = field(default_factory=dict)   # see :func:`tuning_sources`


def tune_prompts(features, dataset: ShapeNetPart,
                 candidate_texts: Sequence[Dict[int, torch.Tensor]], locations: LocationCache,
                 cfg: SegmentConfig, timings: Dict[str, float],
                 categories: Sequence[int] = ()) -> PromptChoice:
    """Per prompt candidate (its part texts {category: [P, C]}): the tuning point logits
    (:func:`gather_tuning`) and the search (:func:`tune`); each category keeps the candidate
    whose tuned parameters score best on the tuning shapes (with ``tune.per_category: false``
    the shared score, so one candidate for all); ties keep the earlier candidate. The points
    are located once for all candidates (:func:`kept_locations`). ``categories``: those
    reported, which get parameters even without tuning shapes (:func:`tune`). Adds the time spent to
    ``timings['tune_locate_s']``, ``timings['tune_logits_s']`` and ``timings['search_s']``."""
    choice = PromptChoice()
    t0 = time.perf_counter()
    kept = kept_locations(dataset, locations, cfg)
    timings["tune_locate_s"] = time.perf_counter() - t0
    for k, texts in enumerate(candidate_texts):
        t0 = time.perf_counter()
        groups = gather_tuning(features, dataset, texts, kept, cfg)
        if cfg.tune.surface and k == 0:
            from .search import beta_surface
            choice.surface = beta_surface(list(groups.values()))
        t1 = time.perf_counter()
        params = tune(groups, cfg, categories)
        choice.tuned_on = tuning_sources(groups, params, cfg.tune.per_category)
        del groups
        timings["tune_logits_s"] = timings.get("tune_logits_s", 0.0) + t1 - t0
        timings["search_s"] = timings.get("search_s", 0.0) + time.perf_counter() - t1
        for c, p in params.items():
            choice.scores.setdefault(c, []).append(p.miou)
            if c not in choice.params or p.miou > choice.params[c].miou + 1e-12:
                choice.chosen[c], choice.params[c] = k, p
    return choice


def view_part_maps(spatial: torch.Tensor, text: torch.Tensor, params: Optional[SegParams],
                   image_size: int, smooth: bool = True) -> torch.Tensor:
    """One shape's views: spatial [V, HW, C], text [P, C] -> [V, S, S] the part each pixel of
    the upsampled dense CALIP logits (at ``params``' betas; None: dense CLIP) chooses."""
    from ..dense_calip import dense_calip_logits, dense_logits, smooth_grid, tokens_to_grid
    from ..dense_calip import upsample_grid

    b2, b3 = (params.beta2, params.beta3) if params is not None else (0.0, 0.0)
    grid = tokens_to_grid(dense_logits(*dense_calip_logits(spatial, text), b2, b3))
    grid = smooth_grid(grid) if smooth else grid
    return upsample_grid(grid, image_size).argmax(dim=1)


@dataclass
class Predictions:
    index: np.ndarray        # [M] dataset index (row in the whole split)
    clip: np.ndarray         # [M, N] global part ids, dense CLIP (betas 0, equal weights)
    calip: np.ndarray        # [M, N] global part ids, dense CALIP (tuned)
    unseen_share: float      # points visible in no view (labelled by their nearest visible)


def predict_split(features, dataset: ShapeNetPart, texts, locations: LocationCache,
                  cfg: SegmentConfig, params: Dict[int, SegParams]) -> Predictions:
    """Stream the split: every point's part under dense CLIP and under the tuned CALIP
    (where the points land: read from, or located into, ``locations``)."""
    m, n = dataset.pid.shape
    clip = np.zeros((m, n), np.int64)
    calip = np.zeros((m, n), np.int64)
    unseen = 0.0
    rows = np.arange(m)
    for chunk, spatial, pts in _batches(features, dataset, rows, cfg.batch_size, "segment",
                                        cfg.views):
        xy, visible = locations.locate(chunk, pts)
        if cfg.views is not None:
            xy, visible = xy[:, cfg.views], visible[:, cfg.views]
        got = shape_point_logits(spatial, pts, dataset.labels[chunk], texts, xy, visible,
                                 locations.projector.image_size, cfg.smooth)
        for c, (sel, lg) in got.items():
            p = params.get(c) or SegParams(view_weights=[1.0] * lg.s0.shape[1])
            clip[chunk[sel]] = predict_local(lg).numpy() + PART_OFFSETS[c]
            calip[chunk[sel]] = predict_local(lg, p.beta2, p.beta3, p.view_weights).numpy() \
                + PART_OFFSETS[c]
            unseen += lg.unseen_share * len(sel)
    return Predictions(dataset.index.copy(), clip, calip, unseen / max(m, 1))


@dataclass
class SegmentResult:
    """Everything one `segment` run measured; ``to_dict()`` is results.json."""

    config: SegmentConfig
    run: RunInfo
    num_test_shapes: int
    backbone_identity: str
    projector_settings: dict
    templates: Union[str, List[str]]    # a template list or a per-part sentence file
    prompt_candidates: list          # [templates, *tune.prompts]
    prompts: PromptChoice            # which candidate each category took
    tuning_split: str
    tuning_shapes: int
    params: Dict[str, SegParams]
    clip: SegmentationScores
    calip: SegmentationScores
    unseen_share: float
    #: per split: point clouds located (rendered) and read from the location cache, its folder
    locations: Dict[str, dict] = field(default_factory=dict)
    size_notes: List[str] = field(default_factory=list)
    timings: Dict[str, float] = field(default_factory=dict)
    data: List[DataStatement] = field(default_factory=list)    # complete release or not
    #: the same protocol on the rotated splits (``rotation.mode`` so3 / up)
    rotated: Optional["ProtocolRun"] = None
    #: each category's part names, in its local part order (the confusion matrices' labels)
    part_names: Dict[str, List[str]] = field(default_factory=dict)

    def confusions(self) -> dict:
        """Per category of TEST, the part confusion matrix of dense CALIP and of dense CLIP
        (point counts over its shapes, row = true part, column = predicted; the cells of the
        IoU) -> ``{name: (parts, [P, P], draw, title, "part")}``, e.g. ``test_calip_chair``;
        the rotated protocol's as CSV only (``test_rotated_calip_chair``)."""
        out = {}
        passes = [("", self.clip, self.calip, True)]
        if self.rotated is not None:
            passes.append(("rotated_", self.rotated.clip, self.rotated.calip, False))
        for prefix, clip, calip, draw in passes:
            for method, words, scores in (("calip", "dense CALIP", calip), ("clip", "dense CLIP", clip)):
                for name, c in scores.categories.items():
                    if c.confusion is None or name not in self.part_names:
                        continue
                    rotated = f", rotated ({self.config.rotation.mode})" if prefix else ""
                    out[f"test_{prefix}{method}_{name}"] = (
                        self.part_names[name], c.confusion, draw,
                        f"{name}, {words}{rotated}: TEST point confusion "
                        f"({count(c.shapes, 'shape')}, {count(int(c.confusion.sum()), 'point')})",
                        "part")
        return out

    @property
    def protocol(self) -> str:
        if self.tuning_split == "test":
            return ("test: betas and view weights tuned on the TEST split itself (PointCLIP "
                    "V2's published protocol; optimistic)")
        fallback = sorted(SHAPENETPART_CATEGORIES[c] for c, how in self.prompts.tuned_on.items()
                          if how == TUNED_FALLBACK)
        return (f"val: tuned on the official VAL split ({count(self.tuning_shapes, 'shape')}, "
                f"{self.config.tune.points} seeded points each); reported on TEST"
                + (f"; {', '.join(fallback)} had no VAL shapes and took the betas tuned on all "
                   f"categories together (tuned_on: {TUNED_FALLBACK!r})" if fallback else ""))

    def to_dict(self) -> dict:
        cfg = self.config
        return {
            "command": "segment",
            "config_name": cfg.name,
            "config": cfg.to_dict(),
            "run": self.run.to_dict(),
            "rerun": self.run.command_line,
            "dataset": "shapenetpart",
            "split": "test",
            "num_test_shapes": self.num_test_shapes,
            "num_points": cfg.data.num_points,
            "backbone": cfg.backbone,
            "backbone_identity": self.backbone_identity,
            "projector": self.projector_settings,
            "templates": self.templates,
            "miou": {"instance": 100 * self.calip.instance, "class": 100 * self.calip.class_},
            "dense_clip": {"instance": 100 * self.clip.instance, "class": 100 * self.clip.class_,
                           "accuracy": 100 * self.clip.accuracy},
            "dense_calip": {"instance": 100 * self.calip.instance,
                            "class": 100 * self.calip.class_,
                            "accuracy": 100 * self.calip.accuracy},
            "per_category": {
                name: {"shapes": s.shapes, "clip_miou": 100 * self.clip.categories[name].miou,
                       "calip_miou": 100 * s.miou,
                       "clip_accuracy": 100 * self.clip.categories[name].accuracy,
                       "calip_accuracy": 100 * s.accuracy,
                       "tuned_on": self.tuned_on(name)}
                for name, s in self.calip.categories.items()},
            "tuning": {"split": self.tuning_split, "protocol": self.protocol,
                       "shapes": self.tuning_shapes, "per_category": cfg.tune.per_category,
                       "searched_view_weights": cfg.tune.view_weights,
                       "points_per_shape": cfg.tune.points, "seed": cfg.tune.seed,
                       "params": {k: v.to_dict() for k, v in self.params.items()},
                       "terms": list(cfg.tune.terms),
                       **({"surface": {"beta2": list(COARSE), "beta3": list(COARSE),
                                       "tune_instance_miou": (100 * self.prompts.surface
                                                              ).tolist()}}
                          if self.prompts.surface is not None else {}),
                       "prompts": self.prompt_record()},
            "unseen_point_share": self.unseen_share,
            "locations": self.locations,
            "size_notes": list(self.size_notes),
            "data": [d.to_dict() for d in self.data],
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            **({"rotated": self.rotated_record()} if self.rotated is not None else {}),
        }

    def rotated_record(self) -> dict:
        """``rotated``: the rotated protocol's scores, tuned parameters and rotations."""
        r, rot = self.rotated, self.config.rotation
        names = SHAPENETPART_CATEGORIES
        return {
            "rotation": {"mode": rot.mode, "seed": rot.seed, "up_axis": rot.up_axis,
                         "rule": "shape i of split s turned by R(mode, seed, s, file index "
                                 "i) (pointcalip.segmentation.rotation.shape_rotation), the "
                                 "same for every method and both splits; TEST's matrices "
                                 "in predictions.npz `rotation`",
                         "splits": ["test"] + ([] if self.tuning_split == "test"
                                               else [self.tuning_split])},
            "miou": {"instance": 100 * r.calip.instance, "class": 100 * r.calip.class_},
            "dense_clip": {"instance": 100 * r.clip.instance, "class": 100 * r.clip.class_,
                           "accuracy": 100 * r.clip.accuracy},
            "dense_calip": {"instance": 100 * r.calip.instance, "class": 100 * r.calip.class_,
                            "accuracy": 100 * r.calip.accuracy},
            "per_category": {
                name: {"shapes": c.shapes, "clip_miou": 100 * r.clip.categories[name].miou,
                       "calip_miou": 100 * c.miou}
                for name, c in r.calip.categories.items()},
            "tuning": {"split": self.tuning_split,
                       "protocol": f"{self.tuning_split} rotated the same way",
                       "params": {names[c]: p.to_dict() for c, p in r.params.items()},
                       "chosen_prompts": {names[c]: k for c, k in sorted(r.prompts.chosen.items())}},
            "unseen_point_share": r.preds.unseen_share,
            "locations": r.locations,
        }

    def tuned_on(self, name: str) -> Optional[str]:
        """What category ``name``'s parameters were tuned on (:func:`tuning_sources`)."""
        return self.prompts.tuned_on.get(SHAPENETPART_CATEGORIES.index(name))

    def prompt_record(self) -> dict:
        """``tuning.prompts``: the candidates and, per category, the one it took and every
        candidate's tuned mIoU on the tuning split."""
        names = SHAPENETPART_CATEGORIES
        return {"split": self.tuning_split, "candidates": self.prompt_candidates,
                "categories": {names[c]: {"chosen": k,
                                          "templates": self.prompt_candidates[k],
                                          "tune_miou": self.prompts.scores[c]}
                               for c, k in sorted(self.prompts.chosen.items())}}

    def to_markdown(self) -> str:
        cfg, r = self.config, self.to_dict()
        lines = [
            f"# Part segmentation: {run_title('shapenetpart', cfg.projector.name, cfg.backbone)}",
            "",
            "| dataset | backbone | projector | dense CLIP inst. / class mIoU | "
            "dense CALIP inst. / class mIoU |",
            "|---|---|---|---|---|",
            f"| ShapeNetPart ({self.num_test_shapes} test shapes) | {cfg.backbone} | "
            f"{cfg.projector.name} | {r['dense_clip']['instance']:.2f} / "
            f"{r['dense_clip']['class']:.2f} | {r['miou']['instance']:.2f} / "
            f"{r['miou']['class']:.2f} |",
            *([f"| rotated ({cfg.rotation.mode}, seed {cfg.rotation.seed}) | {cfg.backbone} | "
               f"{cfg.projector.name} | {r['rotated']['dense_clip']['instance']:.2f} / "
               f"{r['rotated']['dense_clip']['class']:.2f} | "
               f"{r['rotated']['miou']['instance']:.2f} / {r['rotated']['miou']['class']:.2f} |"]
              if "rotated" in r else []),
            "",
            f"- Tuning protocol: {self.protocol}",
            *([f"- Rotated protocol ({cfg.rotation.mode}): every TEST and tuning shape turned "
               f"by its seeded random rotation (seed {cfg.rotation.seed}; the same for every "
               f"method), tuned on the rotated {self.tuning_split.upper()} shapes; per "
               f"category: the `rotated` columns"] if "rotated" in r else []),
            f"- Points visible in no view (labelled by their nearest visible point): "
            f"{100 * self.unseen_share:.2f}%",
            f"- Part templates: {self.templates!r}",
            *([f"- Prompt search on {self.tuning_split.upper()}: candidate 0 is `templates`, "
               f"then `tune.prompts`: " + "; ".join(
                   f"{k}: {c!r}" for k, c in enumerate(self.prompt_candidates)) +
               " (per category: the `prompt` column; dense CLIP uses the same texts)"]
              if len(self.prompt_candidates) > 1 else []),
            *[f"- Point locations ({split}): {count(c['located'], 'shape')} located ("
              f"{c.get('with_images', 0)} in the render that encoded them), {c['read']} read "
              f"from the cache {c['folder']}" for split, c in self.locations.items()],
            *(statements_text(self.data) or [f"- Note: {n}" for n in self.size_notes]),
            "- Timings (s): " + ", ".join(f"{k} {v:.2f}" for k, v in r["timings"].items()),
            f"- Command: `{self.run.command_line}` ({self.run.date}, {self.run.device})",
            "- Part confusion matrices (TEST points, true part x predicted part, per category "
            "and method): confusion/ (CSV and figure)",
            "",
            "| category | shapes | CLIP mIoU | CALIP mIoU | CALIP acc. | beta2 | beta3 | "
            "view weights | prompt | tuned on |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        chosen = r["tuning"]["prompts"]["categories"]
        for name, c in r["per_category"].items():
            p = self.params.get(name)
            w = ", ".join(f"{x:g}" for x in p.view_weights) if p else "-"
            lines.append(f"| {name} | {c['shapes']} | {c['clip_miou']:.2f} | "
                         f"{c['calip_miou']:.2f} | {c['calip_accuracy']:.2f} | "
                         f"{p.beta2 if p else 0:.3g} | {p.beta3 if p else 0:.3g} | {w} | "
                         f"{chosen[name]['chosen'] if name in chosen else 0} | "
                         f"{self.tuned_on(name) or '-'} |")
        if "rotated" in r:
            lines += ["", f"Rotated ({cfg.rotation.mode}, seed {cfg.rotation.seed}):", "",
                      "| category | shapes | upright CALIP mIoU | rotated CLIP mIoU | "
                      "rotated CALIP mIoU | rotated beta2 | rotated beta3 |",
                      "|---|---|---|---|---|---|---|"]
            for name, c in r["rotated"]["per_category"].items():
                p = r["rotated"]["tuning"]["params"].get(name, {})
                lines.append(f"| {name} | {c['shapes']} | "
                             f"{r['per_category'][name]['calip_miou']:.2f} | "
                             f"{c['clip_miou']:.2f} | {c['calip_miou']:.2f} | "
                             f"{p.get('beta2', 0):.3g} | {p.get('beta3', 0):.3g} |")
        return "\n".join(lines) + "\n"


def data_root(cfg: SegmentConfig) -> Path:
    from ..core.paths import data_dir
    from ..datasets import dataset_folder, ensure_dataset

    if cfg.data.root:
        return Path(cfg.data.root).expanduser()
    if cfg.download:
        return ensure_dataset("shapenetpart", root=data_dir())
    return dataset_folder("shapenetpart", root=data_dir())


def segment_data_key(cfg: SegmentConfig, splits: Optional[Tuple[ShapeNetPart, ShapeNetPart]] = None
                     ) -> Optional[str]:
    """What the data of a `segment` run is, wherever it lives: the data identity
    (:func:`~pointcalip.core.identity.data_identity`: every byte of every file) of its TEST
    and tuning splits (``splits`` as :func:`load_segment_splits` gives them, loaded when
    None). None when they cannot be read yet (the run itself says why)."""
    if splits is None:
        try:
            _, *splits = load_segment_splits(cfg)
        except (OSError, ValueError, KeyError):
            return None
    test, tuning = splits
    return data_identity({"test": test, "tuning": tuning})


def default_output_dir(cfg: SegmentConfig,
                       splits: Optional[Tuple[ShapeNetPart, ShapeNetPart]] = None) -> Path:
    """``outputs/shapenetpart-<projector>-<backbone>-tune_<split>-<hash>``: the hash of the
    settings and of what the data is (:func:`segment_data_key`), not where it is; ``pictures``
    (which changes no number) is left out, so runs that differ only in it share a folder."""
    settings = {k: v for k, v in cfg.to_dict().items() if k != "pictures"}
    return Path("outputs") / run_name(settings, "shapenetpart", cfg.projector.name,
                                      backbone_label(cfg.backbone), f"tune_{cfg.tune.split}",
                                      data=segment_data_key(cfg, splits))


def output_dir(cfg: SegmentConfig,
               splits: Optional[Tuple[ShapeNetPart, ShapeNetPart]] = None) -> Path:
    return Path(cfg.output_dir).expanduser() if cfg.output_dir else default_output_dir(cfg, splits)


def load_segment_splits(cfg: SegmentConfig) -> Tuple[Path, ShapeNetPart, ShapeNetPart]:
    """(data folder, TEST split, tuning split) as `segment` reads them: the tuning split is
    the official VAL split, or TEST itself with ``tune.split: test``."""
    root = data_root(cfg)
    kwargs = dict(num_points=cfg.data.num_points, categories=cfg.data.categories,
                  parts=cfg.data.parts)
    test = ShapeNetPart(root, "test", **kwargs)
    tuning = test if cfg.tune.split == "test" else ShapeNetPart(root, "val", **kwargs)
    if tuning is not test:
        check_disjoint(tuning.settings["files"], test.settings["files"], "VAL", "TEST", root)
    return root, test, tuning


def feature_datasets(cfg: SegmentConfig, splits: Sequence[str]) -> list:
    """(label, dataset, rows) a segment run reads among ``splits`` (the task's ``datasets``,
    :mod:`pointcalip.plan`): TEST and the official VAL split (its tuning split; nothing more
    with ``tune.split: test``); ``train`` adds nothing (segment reads no TRAIN)."""
    _, test, tuning = load_segment_splits(cfg)
    out = ([("test", test, None)] if "test" in splits else []) + (
        [("val", tuning, None)] if "val" in splits and tuning is not test else [])
    if cfg.rotation.mode != "none":           # the rotated protocol's shapes too
        rtest, rtuning = rotated_splits(cfg, test, tuning)
        out += [(f"{label} rotated", rtest if ds is test else rtuning, rows)
                for label, ds, rows in list(out)]
    return out


def location_cache(cache_root, dataset: ShapeNetPart, projector, cfg: SegmentConfig
                   ) -> LocationCache:
    """The location cache of ``dataset`` under ``projector`` (for `pointcalip extract`: the
    clouds it encodes are located in the render that makes their images)."""
    return LocationCache(cache_root, dataset, projector, cfg.visible_tolerance)


def fill_locations(cache_root, dataset: ShapeNetPart, projector, cfg: SegmentConfig,
                   shard=None) -> int:
    """Locate every shape of ``dataset`` the location cache under ``cache_root`` lacks, in
    batches of ``cfg.batch_size`` (``shard``: this rank's share of them, for `pointcalip
    extract` under torchrun); -> shapes located now. Shapes encoded in this run were
    located with their images; this renders only those whose features were stored before."""
    locations = LocationCache(cache_root, dataset, projector, cfg.visible_tolerance)
    rows = locations.missing(np.arange(len(dataset)))
    chunks = [rows[s:s + cfg.batch_size] for s in range(0, len(rows), cfg.batch_size)]
    for chunk in progress(chunks if shard is None else shard.take(chunks), f"locate {dataset.split}"):
        locations.locate(chunk, dataset.points(chunk))
    return locations.located


@dataclass
class ProtocolRun:
    """One pass of the protocol (upright, or every shape rotated): the tuning and TEST
    scores, predictions and where the point locations came from."""

    prompts: PromptChoice
    params: Dict[int, SegParams]
    texts: Dict[int, torch.Tensor]
    preds: Predictions
    clip: SegmentationScores
    calip: SegmentationScores
    locations: Dict[str, dict]
    features: dict


def run_protocol(cfg: SegmentConfig, store, projector, backbone, test, tuning,
                 candidate_texts, cats, timings: Dict[str, float], prefix: str = ""
                 ) -> ProtocolRun:
    """Encode (locating the encoded clouds in the same render), tune on ``tuning``, predict
    ``test``; ``timings`` keys get ``prefix``."""
    from ..extract import extract

    # the clouds encoded now are located in the same render (kept in the location cache)
    locations = {"test": LocationCache(store.root, test, projector, cfg.visible_tolerance)}
    if tuning is not test:
        locations["val"] = LocationCache(store.root, tuning, projector, cfg.visible_tolerance)
    t0 = time.perf_counter()
    feats = {"test": extract(store.open(test, projector, backbone), test, None, projector,
                             backbone, cfg.batch_size, desc=f"encode {prefix}test",
                             locations=locations["test"])}
    if tuning is not test:
        feats["val"] = extract(store.open(tuning, projector, backbone), tuning, None, projector,
                               backbone, cfg.batch_size, desc=f"encode {prefix}val",
                               locations=locations["val"])
    timings[f"{prefix}encode_s"] = time.perf_counter() - t0

    tuning_split = "val" if tuning is not test else "test"
    tuned: Dict[str, float] = {}
    prompts = tune_prompts(feats[tuning_split], tuning, candidate_texts,
                           locations[tuning_split], cfg, tuned, np.unique(test.labels))
    timings.update({prefix + k: v for k, v in tuned.items()})
    for c, how in sorted(prompts.tuned_on.items()):
        if how == TUNED_FALLBACK:
            log.warning("category %s has %s shapes but no %s shapes: it takes the betas and "
                        "view weights tuned on all categories together (recorded as "
                        "tuned_on %r)", SHAPENETPART_CATEGORIES[c], "TEST",
                        tuning_split.upper(), TUNED_FALLBACK)
    params = prompts.params
    texts = {c: candidate_texts[prompts.chosen.get(c, 0)][c] for c in cats}

    t0 = time.perf_counter()
    preds = predict_split(feats["test"], test, texts, locations["test"], cfg, params)
    timings[f"{prefix}test_s"] = time.perf_counter() - t0
    names = SHAPENETPART_CATEGORIES
    clip = segmentation_scores(preds.clip, test.pid, test.labels, names, PART_OFFSETS,
                               PART_COUNTS)
    calip = segmentation_scores(preds.calip, test.pid, test.labels, names, PART_OFFSETS,
                                PART_COUNTS)
    return ProtocolRun(prompts, params, texts, preds, clip, calip,
                       {split: {"located": c.located, "with_images": c.with_images,
                                "read": c.read, "folder": str(c.path)}
                        for split, c in locations.items()}, feats)


def rotated_splits(cfg: SegmentConfig, test, tuning):
    """(TEST, tuning split) turned by the seeded rotations of ``cfg.rotation``."""
    from .rotation import RotatedSplit

    r = cfg.rotation
    rtest = RotatedSplit(test, r.mode, r.seed, r.up_axis)
    return rtest, rtest if tuning is test else RotatedSplit(tuning, r.mode, r.seed, r.up_axis)


def run_segment(cfg: SegmentConfig, backbone=None, argv: Optional[Sequence[str]] = None,
                out: Optional[Path] = None) -> SegmentResult:
    """Every stage for ``cfg``; writes predictions.npz (and pictures) into ``out``. With
    ``rotation.mode`` so3 / up, the whole protocol runs again on the rotated splits."""
    from ..backbones import load_clip
    from ..pipeline import open_store

    t_start = time.perf_counter()
    timings: Dict[str, float] = {}
    store = open_store(cfg.cache_dir)
    root, test, tuning = load_segment_splits(cfg)
    if cfg.tune.split == "test":
        log.warning("tuning on the TEST split (tune.split=test): PointCLIP V2's protocol; "
                    "mIoU is optimistic")
    out = Path(out) if out is not None else output_dir(cfg, (test, tuning))
    ensure_writable(out, "--set output_dir=DIR")              # before CLIP runs
    projector = cfg.projector.build()
    if backbone is None:
        backbone = load_clip(cfg.backbone, device=cfg.device, engine=cfg.engine)

    t0 = time.perf_counter()
    cats = sorted(set(np.unique(test.labels)) | set(np.unique(tuning.labels)))
    candidates = [cfg.templates, *cfg.tune.prompts]
    candidate_texts = [{int(c): part_text(backbone, SHAPENETPART_CATEGORIES[c],
                                          test.parts[SHAPENETPART_CATEGORIES[c]], t).cpu()
                        for c in cats} for t in candidates]
    timings["text_s"] = time.perf_counter() - t0

    upright = run_protocol(cfg, store, projector, backbone, test, tuning, candidate_texts,
                           cats, timings)
    rotated, rtest = None, None
    if cfg.rotation.mode != "none":
        rtest, rtuning = rotated_splits(cfg, test, tuning)
        rotated = run_protocol(cfg, store, projector, backbone, rtest, rtuning,
                               candidate_texts, cats, timings, prefix="rotated_")
    params, texts, preds = upright.params, upright.texts, upright.preds
    out.mkdir(parents=True, exist_ok=True)
    extra = {} if rotated is None else {
        "pred_rotated": rotated.preds.calip, "pred_dense_clip_rotated": rotated.preds.clip,
        "rotation": rtest.rotations}
    with atomic_write(out / "predictions.npz") as f:       # a failed rerun keeps the old one
        np.savez_compressed(f, index=preds.index, pred=preds.calip,
                            pred_dense_clip=preds.clip, category=test.labels, **extra)
    if cfg.pictures:
        from .pictures import draw_shapes, draw_view_maps
        draw_shapes(out, test, preds.calip, cfg.pictures)
        c = int(test.labels[0])
        _, spatial, _ = upright.features["test"].store.read([0], cfg.views)
        maps = view_part_maps(torch.from_numpy(spatial[0]).float(), texts[c], params.get(c),
                              projector.image_size, cfg.smooth)
        images = projector(test.points([0]))[0, :, 0].numpy()
        if cfg.views is not None:
            images = images[cfg.views]
        name = SHAPENETPART_CATEGORIES[c]
        from ..report.plots import view_name

        view_set = projector.view_set
        tilts = view_set.tilts or (0.0,) * len(view_set.angles)
        draw_view_maps(out / "pictures" / "views_test0.png", images, maps.numpy(),
                       test.parts[name], f"{name}, test shape {test.index[0]}: part per pixel",
                       [view_name(k, a, t, sep="\n") for k, (a, t) in
                        enumerate(zip(view_set.angles, tilts))])
    timings["total_s"] = time.perf_counter() - t_start
    names = SHAPENETPART_CATEGORIES
    return SegmentResult(
        config=cfg, run=RunInfo.collect(backbone.device, backbone.precision, root, argv),
        num_test_shapes=len(test), backbone_identity=backbone.identity,
        projector_settings=projector.settings, templates=cfg.templates,
        prompt_candidates=candidates, prompts=upright.prompts,
        tuning_split=cfg.tune.split, tuning_shapes=len(tuning),
        params={names[c]: p for c, p in params.items()}, clip=upright.clip,
        calip=upright.calip, unseen_share=preds.unseen_share, locations=upright.locations,
        size_notes=[n for n in {test.size_note, tuning.size_note} if n],
        timings=timings, rotated=rotated,
        part_names={names[c]: list(test.parts[names[c]]) for c in cats},
        data=[describe("shapenetpart", {"test": test, **({"val": tuning} if tuning is not test else {})})])


# ------------------------------------------------------------------------------ one file
@dataclass
class FileSegmentation:
    points: np.ndarray       # [N, 3] the cloud as segmented (centred, unit sphere)
    labels: np.ndarray       # [N] local part index into ``parts``
    parts: List[str]
    unseen_share: float


def segment_cloud(points: torch.Tensor, category: str, parts: Sequence[str], backbone,
                  projector, templates: Sequence[str], beta2: float = 0.0, beta3: float = 0.0,
                  view_weights: Optional[Sequence[float]] = None, smooth: bool = True,
                  visible_tolerance: Optional[float] = None) -> FileSegmentation:
    """points [N, 3] -> each point's part among ``parts`` (dense CALIP; betas 0 = dense
    CLIP), with the nearest-visible fallback."""
    if len(parts) < 2:
        raise ValueError(f"--parts needs two or more part names to choose between; got "
                         f"{list(parts)}")
    pts = points.float().unsqueeze(0)
    with torch.no_grad():
        images, loc = projector.images_and_locations(pts, visible_tolerance)   # one render
        _, spatial = backbone.encode_images(images.to(backbone.device).flatten(0, 1))
        text = part_text(backbone, category, parts, templates)
        lg = point_logits(spatial.cpu().unsqueeze(0), text.cpu(), loc.xy, loc.visible, pts,
                          projector.image_size, smooth)
        labels = predict_local(lg, beta2, beta3, view_weights)[0].numpy()
    return FileSegmentation(points.numpy(), labels, list(parts), lg.unseen_share)
