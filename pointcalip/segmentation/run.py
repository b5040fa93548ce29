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

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..datasets.shapenetpart import (PART_COUNTS, PART_OFFSETS, SHAPENETPART_CATEGORIES,
                                     ShapeNetPart)
from ..core.progress import progress
from ..datasets.release import DataStatement, describe, statements_text
from ..report.results import RunInfo, backbone_label, run_name, run_title
from .config import SegmentConfig, check_part_templates, read_part_sentences
from .locations import LocationCache
from .metrics import SegmentationScores, segmentation_scores
from .points import PointLogits, point_logits, predict_local
from .search import Group, SegParams, search_segmentation

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


def _batches(features, dataset, rows: np.ndarray, batch_size: int, desc: str):
    """(rows, spatial [b, V, HW, C] float32, points [b, N, 3]) over ``rows``."""
    for s in progress(range(0, len(rows), batch_size), desc):
        chunk = rows[s:s + batch_size]
        _, spatial, _ = features.store.read(chunk)
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
        xy.append(a[:, :, k]), visible.append(b[:, :, k])    # index tensors copy
    return KeptLocations(keep, torch.cat(xy), torch.cat(visible),
                         locations.projector.image_size)


def gather_tuning(features, dataset: ShapeNetPart, texts, kept: KeptLocations,
                  cfg: SegmentConfig) -> Dict[int, Group]:
    """Per category, the tuning shapes' point logits on the kept points."""
    parts: Dict[int, List[tuple]] = {}
    keep = kept.keep
    rows = np.arange(len(dataset))
    for chunk, spatial, pts in _batches(features, dataset, rows, cfg.batch_size, "tune logits"):
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


def tune(groups: Dict[int, Group], cfg: SegmentConfig) -> Dict[int, SegParams]:
    """Per category (``tune.per_category``) or one shared search -> {category: params}."""
    if not cfg.tune.per_category:
        shared = search_segmentation(list(groups.values()), cfg.tune.view_weights)
        return {c: shared for c in groups}
    return {c: search_segmentation([g], cfg.tune.view_weights)
            for c, g in progress(sorted(groups.items()), "search per category")}


@dataclass
class PromptChoice:
    """Per category id: the chosen prompt candidate's index (``chosen``), its tuned
    parameters (``params``) and every candidate's tuned mIoU on the tuning shapes
    (``scores``, in candidate order)."""

    chosen: Dict[int, int] = field(default_factory=dict)
    params: Dict[int, SegParams] = field(default_factory=dict)
    scores: Dict[int, List[float]] = field(default_factory=dict)


def tune_prompts(features, dataset: ShapeNetPart,
                 candidate_texts: Sequence[Dict[int, torch.Tensor]], locations: LocationCache,
                 cfg: SegmentConfig, timings: Dict[str, float]) -> PromptChoice:
    """Per prompt candidate (its part texts {category: [P, C]}): the tuning point logits
    (:func:`gather_tuning`) and the search (:func:`tune`); each category keeps the candidate
    whose tuned parameters score best on the tuning shapes (with ``tune.per_category: false``
    the shared score, so one candidate for all); ties keep the earlier candidate. The points
    are located once for all candidates (:func:`kept_locations`). Adds the time spent to
    ``timings['tune_locate_s']``, ``timings['tune_logits_s']`` and ``timings['search_s']``."""
    choice = PromptChoice()
    t0 = time.perf_counter()
    kept = kept_locations(dataset, locations, cfg)
    timings["tune_locate_s"] = time.perf_counter() - t0
    for k, texts in enumerate(candidate_texts):
        t0 = time.perf_counter()
        groups = gather_tuning(features, dataset, texts, kept, cfg)
        t1 = time.perf_counter()
        params = tune(groups, cfg)
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
    for chunk, spatial, pts in _batches(features, dataset, rows, cfg.batch_size, "segment"):
        xy, visible = locations.locate(chunk, pts)
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

    @property
    def protocol(self) -> str:
        if self.tuning_split == "test":
            return ("test: betas and view weights tuned on the TEST split itself (PointCLIP "
                    "V2's published protocol; optimistic)")
        return (f"val: tuned on the official VAL split ({self.tuning_shapes} shapes, "
                f"{self.config.tune.points} seeded points each); reported on TEST")

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
                       "calip_accuracy": 100 * s.accuracy}
                for name, s in self.calip.categories.items()},
            "tuning": {"split": self.tuning_split, "protocol": self.protocol,
                       "shapes": self.tuning_shapes, "per_category": cfg.tune.per_category,
                       "searched_view_weights": cfg.tune.view_weights,
                       "points_per_shape": cfg.tune.points, "seed": cfg.tune.seed,
                       "params": {k: v.to_dict() for k, v in self.params.items()},
                       "prompts": self.prompt_record()},
            "unseen_point_share": self.unseen_share,
            "locations": self.locations,
            "size_notes": list(self.size_notes),
            "data": [d.to_dict() for d in self.data],
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }

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
            "",
            f"- Tuning protocol: {self.protocol}",
            f"- Points visible in no view (labelled by their nearest visible point): "
            f"{100 * self.unseen_share:.2f}%",
            f"- Part templates: {self.templates!r}",
            *([f"- Prompt search on {self.tuning_split.upper()}: candidate 0 is `templates`, "
               f"then `tune.prompts`: " + "; ".join(
                   f"{k}: {c!r}" for k, c in enumerate(self.prompt_candidates)) +
               " (per category: the `prompt` column; dense CLIP uses the same texts)"]
              if len(self.prompt_candidates) > 1 else []),
            *[f"- Point locations ({split}): {c['located']} shapes located, {c['read']} read "
              f"from the cache {c['folder']}" for split, c in self.locations.items()],
            *(statements_text(self.data) or [f"- Note: {n}" for n in self.size_notes]),
            "- Timings (s): " + ", ".join(f"{k} {v:.2f}" for k, v in r["timings"].items()),
            f"- Command: `{self.run.command_line}` ({self.run.date}, {self.run.device})",
            "",
            "| category | shapes | CLIP mIoU | CALIP mIoU | CALIP acc. | beta2 | beta3 | "
            "view weights | prompt |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        chosen = r["tuning"]["prompts"]["categories"]
        for name, c in r["per_category"].items():
            p = self.params.get(name)
            w = ", ".join(f"{x:g}" for x in p.view_weights) if p else "-"
            lines.append(f"| {name} | {c['shapes']} | {c['clip_miou']:.2f} | "
                         f"{c['calip_miou']:.2f} | {c['calip_accuracy']:.2f} | "
                         f"{p.beta2 if p else 0:.3g} | {p.beta3 if p else 0:.3g} | {w} | "
                         f"{chosen[name]['chosen'] if name in chosen else 0} |")
        return "\n".join(lines) + "\n"


def data_root(cfg: SegmentConfig) -> Path:
    from ..core.paths import data_dir
    from ..datasets import dataset_folder, ensure_dataset

    if cfg.data.root:
        return Path(cfg.data.root).expanduser()
    if cfg.download:
        return ensure_dataset("shapenetpart", root=data_dir())
    return dataset_folder("shapenetpart", root=data_dir())


def default_output_dir(cfg: SegmentConfig, root: Optional[Path] = None) -> Path:
    data = None
    if root is not None:
        files = sorted(str(p.name) + str(p.stat().st_size) for p in Path(root).glob("*.h5"))
        data = hashlib.sha256(json.dumps(files).encode()).hexdigest()[:16] if files else None
    settings = {k: v for k, v in cfg.to_dict().items() if k != "pictures"}   # changes no number
    return Path("outputs") / run_name(settings, "shapenetpart", cfg.projector.name,
                                      backbone_label(cfg.backbone), f"tune_{cfg.tune.split}",
                                      data=data)


def output_dir(cfg: SegmentConfig, root: Optional[Path] = None) -> Path:
    return Path(cfg.output_dir).expanduser() if cfg.output_dir else default_output_dir(cfg, root)


def load_segment_splits(cfg: SegmentConfig) -> Tuple[Path, ShapeNetPart, ShapeNetPart]:
    """(data folder, TEST split, tuning split) as `segment` reads them: the tuning split is
    the official VAL split, or TEST itself with ``tune.split: test``."""
    root = data_root(cfg)
    kwargs = dict(num_points=cfg.data.num_points, categories=cfg.data.categories,
                  parts=cfg.data.parts)
    test = ShapeNetPart(root, "test", **kwargs)
    tuning = test if cfg.tune.split == "test" else ShapeNetPart(root, "val", **kwargs)
    return root, test, tuning


def fill_locations(cache_root, dataset: ShapeNetPart, projector, cfg: SegmentConfig,
                   shard=None) -> int:
    """Locate every shape of ``dataset`` the location cache under ``cache_root`` lacks, in
    batches of ``cfg.batch_size`` (``shard``: this rank's share of them, for `pointcalip
    extract` under torchrun); -> shapes located now."""
    locations = LocationCache(cache_root, dataset, projector, cfg.visible_tolerance)
    rows = np.arange(len(dataset))
    chunks = [rows[s:s + cfg.batch_size] for s in range(0, len(rows), cfg.batch_size)]
    for chunk in progress(chunks if shard is None else shard.take(chunks), f"locate {dataset.split}"):
        locations.locate(chunk, dataset.points(chunk))
    return locations.located


def run_segment(cfg: SegmentConfig, backbone=None, argv: Optional[Sequence[str]] = None,
                out: Optional[Path] = None) -> SegmentResult:
    """Every stage for ``cfg``; writes predictions.npz (and pictures) into ``out``."""
    from ..backbones import load_clip
    from ..extract import extract
    from ..pipeline import open_store

    t_start = time.perf_counter()
    timings: Dict[str, float] = {}
    store = open_store(cfg.cache_dir)
    root, test, tuning = load_segment_splits(cfg)
    if cfg.tune.split == "test":
        log.warning("tuning on the TEST split (tune.split=test): PointCLIP V2's protocol; "
                    "mIoU is optimistic")
    out = Path(out) if out is not None else output_dir(cfg, root)
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

    t0 = time.perf_counter()
    feats = {"test": extract(store.open(test, projector, backbone), test, None, projector,
                             backbone, cfg.batch_size, desc="encode test")}
    if tuning is not test:
        feats["val"] = extract(store.open(tuning, projector, backbone), tuning, None, projector,
                               backbone, cfg.batch_size, desc="encode val")
    timings["encode_s"] = time.perf_counter() - t0

    locations = {"test": LocationCache(store.root, test, projector, cfg.visible_tolerance)}
    if tuning is not test:
        locations["val"] = LocationCache(store.root, tuning, projector, cfg.visible_tolerance)
    tuning_split = "val" if tuning is not test else "test"
    prompts = tune_prompts(feats[tuning_split], tuning, candidate_texts,
                           locations[tuning_split], cfg, timings)
    params = prompts.params
    texts = {c: candidate_texts[prompts.chosen.get(c, 0)][c] for c in cats}

    t0 = time.perf_counter()
    preds = predict_split(feats["test"], test, texts, locations["test"], cfg, params)
    timings["test_s"] = time.perf_counter() - t0
    names = SHAPENETPART_CATEGORIES
    clip = segmentation_scores(preds.clip, test.pid, test.labels, names, PART_OFFSETS,
                               PART_COUNTS)
    calip = segmentation_scores(preds.calip, test.pid, test.labels, names, PART_OFFSETS,
                                PART_COUNTS)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "predictions.npz", index=preds.index, pred=preds.calip,
                        pred_dense_clip=preds.clip, category=test.labels)
    if cfg.pictures:
        from .pictures import draw_shapes, draw_view_maps
        draw_shapes(out, test, preds.calip, cfg.pictures)
        c = int(test.labels[0])
        _, spatial, _ = feats["test"].store.read([0])
        maps = view_part_maps(torch.from_numpy(spatial[0]).float(), texts[c], params.get(c),
                              projector.image_size, cfg.smooth)
        images = projector(test.points([0]))[0, :, 0].numpy()
        name = SHAPENETPART_CATEGORIES[c]
        from ..report.plots import view_name

        view_set = projector.view_set
        tilts = view_set.tilts or (0.0,) * len(view_set.angles)
        draw_view_maps(out / "pictures" / "views_test0.png", images, maps.numpy(),
                       test.parts[name], f"{name}, test shape {test.index[0]}: part per pixel",
                       [view_name(k, a, t, sep="\n") for k, (a, t) in
                        enumerate(zip(view_set.angles, tilts))])
    timings["total_s"] = time.perf_counter() - t_start
    return SegmentResult(
        config=cfg, run=RunInfo.collect(backbone.device, backbone.precision, root, argv),
        num_test_shapes=len(test), backbone_identity=backbone.identity,
        projector_settings=projector.settings, templates=cfg.templates,
        prompt_candidates=candidates, prompts=prompts,
        tuning_split=cfg.tune.split, tuning_shapes=len(tuning),
        params={names[c]: p for c, p in params.items()}, clip=clip, calip=calip,
        unseen_share=preds.unseen_share,
        locations={split: {"located": c.located, "read": c.read, "folder": str(c.path)}
                   for split, c in locations.items()},
        size_notes=[n for n in {test.size_note, tuning.size_note} if n],
        timings=timings,
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
        images = projector(pts.to(backbone.device))                      # [1, V, 3, S, S]
        _, spatial = backbone.encode_images(images.flatten(0, 1))
        text = part_text(backbone, category, parts, templates)
        loc = projector.locate(pts, visible_tolerance=visible_tolerance)
        lg = point_logits(spatial.cpu().unsqueeze(0), text.cpu(), loc.xy, loc.visible, pts,
                          projector.image_size, smooth)
        labels = predict_local(lg, beta2, beta3, view_weights)[0].numpy()
    return FileSegmentation(points.numpy(), labels, list(parts), lg.unseen_share)
