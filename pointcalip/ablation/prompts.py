"""Prompts study: single templates vs ensembles vs per-class prompt files.

Candidates (``prompts_study.candidates``) are template set names from configs/prompts.yaml,
inline template lists or per-class prompt files; with ``each_template`` every template of a
multi-template candidate is also tried alone. Sources that give the same sentences for
every class are evaluated once. The image features are read once; each source costs one
text encoding and one CALIP pass over the stored features. PointCLIP (betas 0, uniform
weights) and tuned CALIP are reported for each, the winner chosen by tuning accuracy.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Tuple, Union

from ..report import plots
from ..prompts import class_prompts, is_prompt_file, load_templates
from .context import AblationContext
from .tables import BETA_FORMAT, StudyResult, Table, accuracy_groups
from .tuning import test_accuracy, tune_then_test

Source = Union[str, List[str]]


def _label(spec: Source) -> Tuple[str, str]:
    """(label, kind) of a prompt source."""
    if is_prompt_file(spec):
        return Path(str(spec)).name, "per-class prompt file"
    templates = load_templates(spec)
    if isinstance(spec, str):
        kind = "ensemble" if len(templates) > 1 else "single template"
        return (spec if len(templates) > 1 else f"{spec}: {templates[0]!r}"), kind
    if len(templates) == 1:
        return repr(templates[0]), "single template"
    return f"inline list of {len(templates)}", "ensemble"


def sources(candidates: List[Source], each_template: bool) -> List[Tuple[str, str, Source]]:
    """(label, kind, spec) of every source to evaluate, in order."""
    out = []
    for spec in candidates:
        out.append((*_label(spec), spec))
        if each_template and not is_prompt_file(spec):
            templates = load_templates(spec)
            if len(templates) > 1:
                name = spec if isinstance(spec, str) else "inline list"
                out.extend((repr(t), f"single template (of {name})", [t]) for t in templates)
    return out


def run_prompts(ctx: AblationContext) -> StudyResult:
    cfg = ctx.cfg
    found = sources(cfg.prompts_study.candidates, cfg.prompts_study.each_template)
    unique: List[Tuple[str, str, Source]] = []
    seen = {}
    for label, kind, spec in found:               # same sentences for every class: once
        key = repr(class_prompts(ctx.classnames, spec))
        if key not in seen:
            seen[key] = label
            unique.append((label, kind, spec))
    pairs = ctx.logits_many([spec for _, _, spec in unique])
    table = Table(["prompts", "kind", "prompts_per_class", "pointclip_test", "beta2", "beta3",
                   "tune_top1", "test_top1", "pointclip_test_macc", "test_macc"],
                  formats={"beta2": BETA_FORMAT, "beta3": BETA_FORMAT})
    results = []
    for (label, kind, spec), pair in zip(unique, pairs):
        if cfg.views is not None:
            pair = pair.select(cfg.views)
        per_class = [len(p) for p in class_prompts(ctx.classnames, spec)]
        plain = test_accuracy(pair.test, 0.0, 0.0)
        t = tune_then_test(pair, cfg.tune)
        table.add(label, kind, sum(per_class) / len(per_class), plain.top1, t.found.beta2,
                  t.found.beta3, t.tune_top1, t.test.top1, plain.mean_per_class,
                  t.test.mean_per_class)
        results.append((label, t))
    best = max(range(len(results)), key=lambda i: results[i][1].tune_top1)
    notes = [f"{len(unique)} prompt sources ({len(found) - len(unique)} duplicates of another "
             f"source skipped); each is tuned on the tuning set and tested once.",
             f"Best by tuning accuracy: {results[best][0]} (CALIP test "
             f"{results[best][1].test.top1:.2f}%)."]
    labels = [label if len(label) <= 48 else label[:45] + "..." for label, _ in results]

    def draw(path: Path):
        return plots.bars(path, labels, accuracy_groups(table), "test top-1 and mAcc (%)",
                          f"Prompts: {ctx.caption(projector=False)}",
                          size=(900, 140 + 60 * len(labels)), horizontal=True, min_pad=1.0)

    return StudyResult(name="prompts", title="Prompts: single templates, ensembles, per-class "
                       "prompt files", table=table, figures={"prompts.png": draw}, notes=notes,
                       summary={"winner": results[best][0],
                                "sources": [{"prompts": label, "kind": kind,
                                             "spec": spec if isinstance(spec, str) else list(spec)}
                                            for label, kind, spec in unique]})
