"""`pointcalip ablate --config shapenetpart`: the segmentation studies end to end with the tiny
ViT on a planted ShapeNetPart folder (tests/ablation_planted.py: VAL and TEST part labels are
the tiny model's own dense CALIP parts at known betas, equal view weights, one template, the
PointCLIP projector's views 0-3). So dense CALIP's terms must recover the labels where dense
CLIP does not, the planted template and projector must win, and every reported number must be
the one the `segment` run of that point wrote.
"""
import csv
import json
import shlex

import pytest

import ablation_planted as AP
from pointcalip.cli import main
from messages import error_block


@pytest.fixture(scope="module")
def seg_planted(tmp_path_factory, tiny_vit):
    base = tmp_path_factory.mktemp("seg_ablation")
    root = AP.write_seg_planted(base, tiny_vit)
    assert AP.seg_clip_agreement(root, tiny_vit) < 0.5      # dense CLIP alone misses the labels
    return root, base


def settings(root, base, vit):
    return [f"backbone={vit}", f"data.root={root}", f"data.num_points={AP.SEG_POINTS}",
            f"data.categories={AP.SEG_CATEGORIES}", "projector.name=pointclip",
            "projector.views=[0,1,2,3]", "engine=eager", "device=cpu", f"cache_dir={base / 'cache'}",
            f"tune.points={AP.SEG_POINTS}", "tune.per_category=false",
            f"templates=['{AP.SEG_TEMPLATE}']", "batch_size=8"]


def ablate(root, base, vit, out, *sets):
    argv = ["ablate", "--config", "shapenetpart"]
    for s in [*settings(root, base, vit), f"output_dir={out}", *sets]:
        argv += ["--set", s]
    assert main(argv) == 0
    return json.loads((out / "results.json").read_text())


def rows(folder):
    with open(folder / "table.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def every(seg_planted, tiny_checkpoints, tmp_path_factory):
    root, base = seg_planted
    out = tmp_path_factory.mktemp("every") / "out"
    other = "the {part} of a {category}, seen from afar."
    res = ablate(root, base, tiny_checkpoints["vit"], out,
                 "studies=[terms,prompts,projectors,backbones]",
                 f"prompts_study.candidates=[['{AP.SEG_TEMPLATE}', '{other}']]",
                 "projectors_study.projectors=[{name: pointclip, views: [0,1,2,3]}, "
                 "{name: realistic, views: [0,1]}]",
                 f"backbones_study.backbones=[{tiny_checkpoints['vit']}, {tiny_checkpoints['resnet']}]")
    return out, res


def test_terms_study_dense_calip_recovers_the_planted_parts_and_dense_clip_does_not(every):
    out, res = every
    table = {r["variant"]: r for r in rows(out / "terms")}
    assert list(table) == ["dense CLIP (S0)", "+ S1 (beta2)", "+ S2 (beta3)",
                           "+ S1 + S2 (dense CALIP)", "+ view weights"]
    clip, calip = table["dense CLIP (S0)"], table["+ S1 + S2 (dense CALIP)"]
    assert float(calip["instance_miou"]) >= 97.0 and float(calip["tune_miou"]) >= 97.0
    # planted at beta2 1.0, beta3 0.5: each term alone falls short of both, and is searched
    # alone (the other beta 0)
    for name, term, zero in (("+ S1 (beta2)", "s1", "beta3"), ("+ S2 (beta3)", "s2", "beta2")):
        alone = json.loads((out / "runs" / table[name]["run"] / "results.json").read_text())
        assert alone["tuning"]["terms"] == [term]
        assert all(p[zero] == 0.0 for p in alone["tuning"]["params"].values())
        assert float(table[name]["tune_miou"]) < float(calip["tune_miou"]) - 1.0
    # the beta2 x beta3 surface on VAL: its best cell is the planted betas' neighbourhood
    surface = list(csv.DictReader((out / "terms" / "surface.csv").read_text().splitlines()))
    best = max(surface, key=lambda r: float(r["tune_instance_miou"]))
    assert len(surface) == 81 and float(best["tune_instance_miou"]) >= 97.0
    assert (out / "terms" / "beta_surface.png").stat().st_size > 1000
    assert float(clip["instance_miou"]) < float(calip["instance_miou"]) - 20.0
    assert float(clip["class_miou"]) < float(calip["class_miou"]) - 20.0
    assert {r["tuned_on"] for r in rows(out / "terms")} == {"val"}
    # every number is the one its `segment` run wrote
    run = json.loads((out / "runs" / calip["run"] / "results.json").read_text())
    assert float(calip["instance_miou"]) == pytest.approx(run["miou"]["instance"], abs=1e-3)
    assert float(clip["instance_miou"]) == pytest.approx(run["dense_clip"]["instance"], abs=1e-3)
    assert run["config"]["tune"]["view_weights"] is False
    assert (out / "runs" / calip["run"] / "predictions.npz").is_file()
    words = shlex.split(run["rerun"])
    assert words[:4] == ["pointcalip", "segment", "--config", "shapenetpart"]
    assert "tune.view_weights=false" in words
    assert (out / "terms" / "terms.png").stat().st_size > 1000
    assert "| chair |" in (out / "terms" / "table.md").read_text()       # per-category table
    assert res["task"] == "segmentation" and res["tuning"]["split"] == "val"


def test_prompts_study_finds_the_planted_template(every):
    out, res = every
    table = {r["prompts"]: r for r in rows(out / "prompts")}
    planted = repr(AP.SEG_TEMPLATE)
    assert list(table) == ["2 templates", planted, repr("the {part} of a {category}, seen from afar.")]
    assert res["studies"]["prompts"]["winner"] == planted
    assert float(table[planted]["instance_miou"]) == max(float(r["instance_miou"]) for r in table.values())
    # the planted template alone is the terms study's full run: one run, not two
    terms = {r["variant"]: r for r in rows(out / "terms")}
    assert table[planted]["run"] == terms["+ view weights"]["run"]


def test_projectors_study_same_data_and_backbone(every):
    out, res = every
    table = rows(out / "projectors")
    assert [r["projector"] for r in table] == ["pointclip (4 views: [0, 1, 2, 3])",
                                               "realistic (2 views: [0, 1])"]
    assert float(table[0]["instance_miou"]) > float(table[1]["instance_miou"])
    assert res["studies"]["projectors"]["winner"] == "pointclip (4 views: [0, 1, 2, 3])"


def test_backbones_study_lists_the_missing_one_with_the_segment_command(every, tiny_checkpoints):
    out, res = every
    vit, resnet = str(tiny_checkpoints["vit"]), str(tiny_checkpoints["resnet"])
    table = {r["backbone"]: r for r in rows(out / "backbones")}
    assert table[vit]["status"] == "in store" and float(table[vit]["instance_miou"]) >= 97.0
    assert table[resnet]["status"] == "missing: 18 test shapes, 18 val shapes"
    command = res["studies"]["backbones"]["missing"][resnet]["command"]
    words = shlex.split(command)
    assert words[:4] == ["pointcalip", "segment", "--config", "shapenetpart"]
    assert f"backbone={resnet}" in words
    assert f"`{command}`" in (out / "backbones" / "report.md").read_text()


def test_views_study_all_views_win_and_subsets_read_the_full_store(seg_planted, tiny_checkpoints,
                                                                    tmp_path):
    """Subsets read their views from the store of all the views (no store of their own), and
    give what a projector of only those views gives."""
    root, base = seg_planted
    before = sorted(p.parent for p in (base / "cache").rglob("*.json"))
    res = ablate(root, base, tiny_checkpoints["vit"], tmp_path / "out", "studies=[views]",
                 "tune.view_weights=false")
    stores = {p.parent for p in (base / "cache").rglob("*.json")} - set(before)
    assert not any("views" in str(p) for p in stores), stores
    sub = ablate(root, base, tiny_checkpoints["vit"], tmp_path / "sub", "studies=[projectors]",
                 "tune.view_weights=false",
                 "projectors_study.projectors=[{name: pointclip, views: [1, 2, 3]}]")
    pair = [r for r in res["runs"] if "views=[1,2,3]" in r["rerun"].replace(" ", "")]
    assert pair, [r["rerun"] for r in res["runs"]]
    assert pair[0]["miou"] == sub["runs"][0]["miou"]
    table = rows(tmp_path / "out" / "views")
    assert [r["first_k_views"] for r in table] == ["[0]", "[0, 1]", "[0, 1, 2]", "[0, 1, 2, 3]"]
    every = float(table[-1]["instance_miou"])
    assert every >= 97.0                                  # the labels' own views
    importance = res["studies"]["views"]["table"]
    assert len(importance) == 4
    alone = [r["instance_alone"] for r in res["studies"]["views"]["importance"]]
    assert max(alone) < every - 5.0
    assert all(r["instance_drop"] > 0 for r in res["studies"]["views"]["importance"])
    assert len({r["folder"] for r in res["runs"]}) == len(res["runs"]) == 10     # each subset once
    assert (tmp_path / "out" / "views" / "views.png").stat().st_size > 1000
    assert (tmp_path / "out" / "views" / "importance.png").stat().st_size > 1000


def test_classification_only_studies_are_refused_naming_study_and_task(capsys):
    assert main(["ablate", "--config", "shapenetpart", "--set", "studies=[terms, weights]"]) == 2
    err = error_block(capsys.readouterr().err)
    assert "studies lists 'weights', a study that does not apply to part segmentation" in err
    assert "Segmentation studies: views, terms, prompts, projectors, backbones" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("override, message", [
    ("prompts_study.candidates=[['a photo of a {}.']]",
     r"prompts_study\.candidates\[0\] is not usable: every part template needs '\{part\}'"),
    ("prompts_study.candidates=[]", r"prompts_study\.candidates must list at least one"),
    ("views_study.order=[0, 10]", r"views_study\.order holds \[10\], outside the projector's 10 views"),
    ("projectors_study.projectors=[{name: sparse}]", r"projectors_study\.projectors\[0\]\.name must be one of"),
    ("projector.views={ring: 4}", r"projector\.views is \{'ring': 4\}: the segmentation views study"),
])
def test_bad_segmentation_ablation_settings_name_their_key(override, message):
    from pointcalip.ablation.config import load_ablation_config
    from pointcalip.config import ConfigError

    with pytest.raises(ConfigError, match=message):
        load_ablation_config(["shapenetpart"], ["studies=[views, prompts]", override])


def test_segmentation_studies_are_registry_entries_with_sections_and_runners():
    import dataclasses
    import typing

    from pointcalip.ablation.config import (STUDIES, SegAblationConfig, load_ablation_config,
                                            segmentation_studies)
    from pointcalip.ablation.run import SEG_RUNNERS
    from pointcalip.config import config_class, load_config

    hints = typing.get_type_hints(SegAblationConfig)
    fields = {f.name for f in dataclasses.fields(SegAblationConfig)}
    assert segmentation_studies() == ["views", "terms", "prompts", "projectors", "backbones"]
    for entry in STUDIES.entries():
        if entry.segmentation is None:
            assert entry.not_for_segmentation and entry.section not in fields
            continue
        assert SEG_RUNNERS[entry.name].__name__ == f"run_seg_{entry.name}"
        if entry.seg_config is None:
            assert entry.section not in fields
        else:
            assert hints[entry.section] is entry.seg_config
    cfg = load_ablation_config(["shapenetpart"])
    assert isinstance(cfg, SegAblationConfig) and cfg.studies == ["terms"]
    segment = load_config(config_class("segment"), ["shapenetpart"])
    assert cfg.segment().to_dict() == {**segment.to_dict(), "name": "segment"}
    assert type(load_ablation_config(["ablation_views"])).__name__ == "AblationConfig"


def test_bench_prints_each_studys_runs_and_encodings_from_the_studies_plans():
    """V2's 10 views: first k (10), each alone (9 more), all but one (9 more) = 28 runs;
    new view images 1 + ... + 9 (first k below 10) + 9 (the other singles) + 9 x 9 = 135."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parent.parent / "scripts" / "bench_ablate.py"
    out = subprocess.run([sys.executable, str(script), "--segmentation"], capture_output=True,
                         text=True, check=True).stdout
    assert "| views | 28 | 135 |" in out and "| terms | 2 | 0 |" in out
    assert "| projectors | 2 | 6 |" in out          # PointCLIP's 6 views beside realistic


def test_view_subsets_follow_the_order_given():
    from pointcalip.ablation.segment import view_subsets

    plan = view_subsets(4, [2, 0])
    assert plan["first"] == [(2,), (0, 2)]
    assert plan["alone"] == [(0,), (1,), (2,), (3,)]
    assert plan["without"] == [(1, 2, 3), (0, 2, 3), (0, 1, 3), (0, 1, 2)]
    assert view_subsets(1, [0]) == {"first": [(0,)], "alone": [(0,)], "without": []}
