"""Start-up and the first run (issue 19): the command line answers --version, --help and
mistyped words without importing torch, suggests what a typo meant, takes templates on the
command line, and checks everything a run needs before it creates an output folder."""
import json
import subprocess
import sys
import urllib.error

import clip.clip
import pytest

import pointcalip.zeroshot
from pointcalip.cli import build_parser, main
from pointcalip.commands import COMMANDS
from messages import error_block

PROBE = """
import sys
from pointcalip.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
print("TORCH" if "torch" in sys.modules else "NO TORCH", code, file=sys.stderr)
"""


def start(*argv: str) -> tuple[str, int]:
    """Run the command line in a fresh interpreter -> (stderr, exit code); stderr's last line
    says whether torch was imported."""
    run = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True,
                         timeout=120)
    return run.stderr, run.returncode


@pytest.mark.parametrize("argv", [["--version"], ["--help"],
                                  *[[name, "--help"] for name in COMMANDS.names()]],
                         ids=lambda argv: " ".join(argv))
def test_version_and_every_help_import_no_torch(argv):
    err, _ = start(*argv)
    assert err.strip().splitlines()[-1] == "NO TORCH 0"


@pytest.mark.parametrize("argv, says", [
    (["zeroshot", "--config", "modelnet04"], "did you mean modelnet40 or modelnet10"),
    (["zeroshot", "--config", "modelnet40", "--sett", "x"], "did you mean --set?"),
    (["zeroshot", "--sett", "x"], "did you mean --set?"),       # before "--config is required"
    (["zeroshoot", "--config", "modelnet40"], "did you mean 'zeroshot'"),
    (["--verison"], "did you mean --version"),
    (["classify", "a.ply", "--classes", "a", "b", "--top-kk", "3"], "did you mean --top-k?"),
])
def test_typos_get_a_suggestion_without_torch(argv, says):
    err, code = start(*argv)
    *said, probe = err.strip().splitlines()
    assert probe == "NO TORCH 2" and says in error_block("\n".join(said))


def test_a_misspelt_config_key_is_reported_without_torch():
    err, code = start("zeroshot", "--config", "modelnet40", "--set", "tune.splitt=val")
    *said, probe = err.strip().splitlines()
    assert "tune.splitt is unknown (did you mean 'split'?" in error_block("\n".join(said))
    assert probe == "NO TORCH 2"


def test_abbreviated_options_still_work(capsys):
    assert main(["zeroshot", "--conf", "modelnet40", "--set", "batch_size=-1"]) == 2
    assert "config key batch_size must be a positive integer" in capsys.readouterr().err


def test_subcommands_come_from_the_registry_in_declared_order():
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    expected = [e.name for e in sorted(COMMANDS.entries(), key=lambda e: e.order)]
    assert list(action.choices) == expected
    assert expected[:4] == ["zeroshot", "fewshot", "ablate", "extract"]
    assert {"classify", "explain", "download"} <= set(expected)


def test_extract_splits_are_the_plans():
    from pointcalip.commands.extract import SPLITS
    from pointcalip.plan import SPLITS as PLAN_SPLITS

    assert SPLITS == PLAN_SPLITS


def test_every_option_says_what_it_does():
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    silent = [f"{name} {a.option_strings[-1]}" for name, p in action.choices.items()
              for a in p._actions if a.option_strings and not a.help]
    assert silent == []


@pytest.mark.parametrize("given, templates", [
    (["a photo of {}"], ["a photo of {}"]),                                # the example
    (["a photo of a {}.", "a depth map of a {}."], ["a photo of a {}.", "a depth map of a {}."]),
    (["pointclip"], "pointclip"),                                          # a set name
])
def test_templates_on_the_command_line(given, templates):
    from pointcalip.commands.model_options import model_settings

    args = build_parser().parse_args(["classify", "x.ply", "--classes", "a", "b",
                                      "--templates", *given])
    assert args.templates == templates and model_settings(args)["templates"] == templates


def test_a_template_without_braces_is_refused_naming_the_option(capsys):
    with pytest.raises(SystemExit) as info:
        main(["classify", "x.ply", "--classes", "a", "b", "--templates", "a photo of {}", "chair"])
    err = error_block(capsys.readouterr().err)
    assert info.value.code == 2 and "argument --templates: 'chair' has no {}" in err


def _offline(url, root):
    raise urllib.error.URLError("no network in tests")


def test_a_failed_start_lists_everything_missing_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(clip.clip, "_download", _offline)
    out, store = tmp_path / "runs" / "first", tmp_path / "store"
    code = main(["zeroshot", "--config", "modelnet40", "--set", f"data.root={tmp_path / 'nodata'}",
                 "--set", "backbone=RN50", "--set", f"output_dir={out}",
                 "--set", f"cache_dir={store}"])
    lines = capsys.readouterr().err.rstrip("\n").splitlines()
    err = error_block("\n".join(lines))
    assert code == 2 and lines[0].endswith("error: cannot start: 2 inputs missing, nothing was written:")
    assert lines[1].startswith("  (1) dataset modelnet40")
    assert [line[:28] for line in lines if line.startswith("  (")] == ["  (1) dataset modelnet40 (re",
                                                                      "  (2) CLIP RN50 weights: Cou"]
    assert "(1) dataset modelnet40" in err and str(tmp_path / "nodata") in err
    assert "(2) CLIP RN50 weights" in err and "RN50.pt" in err and "put it at" in err
    assert not (tmp_path / "runs").exists() and not store.exists()


def test_a_run_that_fails_after_starting_leaves_no_empty_output_folder(
        tmp_path, monkeypatch, capsys, small_modelnet, tiny_checkpoints):
    def broken(*args, **kwargs):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(pointcalip.zeroshot, "load_clip", broken)
    out = tmp_path / "runs" / "first"
    code = main(["zeroshot", "--config", "modelnet40", "--set", f"data.root={small_modelnet}",
                 "--set", f"backbone={tiny_checkpoints['vit']}", "--set", f"output_dir={out}",
                 "--set", f"cache_dir={tmp_path / 'store'}"])
    assert code == 2 and "simulated" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
    kept = tmp_path / "kept"                      # a folder that was there before is kept
    kept.mkdir()
    assert main(["zeroshot", "--config", "modelnet40", "--set", f"data.root={small_modelnet}",
                 "--set", f"backbone={tiny_checkpoints['vit']}", "--set", f"output_dir={kept}",
                 "--set", f"cache_dir={tmp_path / 'store'}"]) == 2
    assert kept.is_dir()


def test_ablate_backbones_asks_only_for_the_weights_it_will_load(tmp_path, monkeypatch,
                                                                 small_modelnet, tiny_checkpoints):
    """Issue 27 section 5: the backbones study reads each listed backbone's features from the
    store and lists the missing ones with the command that encodes them; so the start-up
    check asks for the weights of a listed backbone only when its features are all stored
    (the study then loads it for its text encoder)."""
    import numpy as np

    from pointcalip.ablation.backbones import study_rows
    from pointcalip.ablation.config import AblationConfig
    from pointcalip.backbones import checkpoint_identity, precision_on
    from pointcalip.backbones.engines import planned_engine
    from pointcalip.commands.needs import check_needs, run_backbones
    from pointcalip.config import load_config
    from pointcalip.pipeline import load_splits
    from pointcalip.store import FeatureStore

    monkeypatch.setattr(clip.clip, "_download", _offline)
    vit = str(tiny_checkpoints["vit"])
    cfg = load_config(AblationConfig, ["ablation_backbones"], [
        f"data.root={small_modelnet}", f"backbone={vit}", f"cache_dir={tmp_path / 'store'}",
        "data.num_points=64", f"backbones_study.backbones=[{vit}, ViT-L/14]", "device=cpu"])
    assert run_backbones(cfg) == [vit]
    check_needs(cfg)                  # ViT-L/14 is neither installed nor stored: not asked for

    class Stored:                     # what the store keys ViT-L/14's features on
        name, identity = "ViT-L/14", checkpoint_identity("ViT-L/14")
        precision, engine = precision_on("cpu"), planned_engine(cfg.engine, "cpu")[0]
        num_tokens, embed_dim = 1, 4

    projector = cfg.projector.build()
    v = projector.num_views
    for dataset, rows in study_rows(load_splits(cfg)).values():
        store = FeatureStore(cfg.cache_dir).open(dataset, projector, Stored)
        n = len(rows)
        store.write(rows, np.ones((n, v, 4)), np.ones((n, v, 1, 4)), np.ones((n, v)))
    assert run_backbones(cfg) == [vit, "ViT-L/14"]
    with pytest.raises(FileNotFoundError, match=r"(?s)1 input missing.*\(1\) CLIP ViT-L/14 "
                                                r"weights"):
        check_needs(cfg)
