"""The command line's own behaviour: flags anywhere, --version, one-line errors, Ctrl-C,
writable folders checked before any work."""
import subprocess
import sys

import pytest

import pointcalip
import pointcalip.zeroshot
from pointcalip.cli import main
from pointcalip.extract import Interrupted
from messages import error_block


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.strip() == f"pointcalip {pointcalip.__version__}"


def test_verbose_before_or_after_the_subcommand(capsys, tmp_path):
    bad = ["--config", "modelnet40", "--set", "batch_size=-1"]
    assert main(["zeroshot", *bad]) == 2
    err = error_block(capsys.readouterr().err)
    assert err.startswith("pointcalip zeroshot: error: config key batch_size must be a positive integer")
    assert err.endswith("(run with -v for the traceback)")
    for argv in (["-v", "zeroshot", *bad], ["zeroshot", *bad, "-v"], ["zeroshot", "--verbose", *bad]):
        with pytest.raises(ValueError, match="batch_size"):     # -v: the traceback instead
            main(argv)


def test_ctrl_c_prints_one_line(monkeypatch, capsys, small_modelnet, tiny_checkpoints):
    def interrupted(*args, **kwargs):
        raise Interrupted("interrupted while encoding modelnet40 test: 16 of 48 clouds encoded in "
                          "this run are kept in /store; run the same command again to resume")

    monkeypatch.setattr(pointcalip.zeroshot, "run_zeroshot", interrupted)
    code = main(["zeroshot", "--config", "modelnet40", "--set", f"data.root={small_modelnet}",
                 "--set", f"backbone={tiny_checkpoints['vit']}"])
    err = capsys.readouterr().err
    assert code == 130 and "run the same command again to resume" in " ".join(err.split())
    assert err.startswith("pointcalip zeroshot: interrupted while encoding") and "Traceback" not in err
    monkeypatch.setattr(pointcalip.zeroshot, "run_zeroshot", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    assert main(["zeroshot", "--config", "modelnet40", "--set", f"data.root={small_modelnet}",
                 "--set", f"backbone={tiny_checkpoints['vit']}"]) == 130
    assert capsys.readouterr().err == "pointcalip zeroshot: interrupted; nothing half-written was kept\n"


@pytest.mark.parametrize("key", ["output_dir", "cache_dir"])
def test_unwritable_folders_stop_the_run_before_encoding(key, tmp_path, capsys, small_modelnet, tiny_checkpoints):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    store = tmp_path / "store"
    folders = {"output_dir": tmp_path / "out", "cache_dir": store, key: blocker / "sub"}
    code = main(["zeroshot", "--config", "modelnet40", "--set", f"data.root={small_modelnet}",
                 "--set", f"backbone={tiny_checkpoints['vit']}",
                 *[f"--set={k}={v}" for k, v in folders.items()]])
    err = error_block(capsys.readouterr().err)
    assert code == 2 and f"cannot write in {blocker / 'sub'}" in err and f"--set {key}=DIR" in err
    assert not store.exists() or not any(store.iterdir())       # nothing was encoded


def test_python_dash_m_is_the_same_program():
    out = subprocess.run([sys.executable, "-m", "pointcalip", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"pointcalip {pointcalip.__version__}"


def test_help_lists_every_command(capsys):
    assert main([]) == 0
    printed = capsys.readouterr().out
    for command in ("zeroshot", "classify", "download"):
        assert command in printed


def test_logs_are_clean_when_not_a_terminal(planted, tiny_checkpoints, tmp_path):
    """Through a pipe (a log file): no progress-bar lines, no colour codes, each warning once."""
    run = subprocess.run(
        [sys.executable, "-m", "pointcalip", "zeroshot", "--config", "modelnet40",
         "--set", f"data.root={planted.root}", "--set", f"backbone={tiny_checkpoints['vit']}",
         "--set", f"cache_dir={tmp_path / 'store'}", "--set", f"output_dir={tmp_path / 'out'}",
         "--set", "tune.grid=4"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    lines = run.stderr.splitlines()
    assert "\r" not in run.stderr and "\x1b[" not in run.stderr
    warned = [line for line in lines if line.startswith("WARNING")]
    assert any("does not hold the 40 published ModelNet40 classes" in w for w in warned)  # train and test
    assert len(warned) == len(set(warned))
    assert all(line.startswith(("INFO", "WARNING")) for line in lines), lines


def test_a_long_error_is_wrapped_with_the_list_below_its_first_line():
    from pointcalip.cli import HINT, WIDTH, error_text
    from pointcalip.core.words import listed

    path = "/data/" + "x" * 120 + ".h5"
    message = (f"cannot start: 2 inputs missing, nothing was written:"
               + listed([f"dataset modelnet40 (read from /data): {'word ' * 40}end",
                         f"CLIP RN50 weights: put {path} there"], numbered=True))
    text = error_text("pointcalip zeroshot: error:", message, HINT)
    lines = text.splitlines()
    assert lines[0] == "pointcalip zeroshot: error: cannot start: 2 inputs missing, nothing was written:"
    assert lines[1].startswith("  (1) dataset modelnet40 (read from /data): word")
    assert all(line.startswith("      ") for line in lines[2:4])      # hanging indent of the item
    assert lines[-1] == HINT and f"      {path}" in lines
    assert max(len(line) for line in lines if path not in line) <= WIDTH
    assert " ".join(line.strip() for line in lines) == \
        " ".join(f"pointcalip zeroshot: error: {message} {HINT}".split())
    short = error_text("pointcalip zeroshot: error:", "config key x is bad", HINT)
    assert short == f"pointcalip zeroshot: error: config key x is bad {HINT}"
    # a path too long for a line stays beside the head: the first line says where
    first = error_text("pointcalip download: error:", f"{path}: truncated", HINT).splitlines()[0]
    assert first == f"pointcalip download: error: {path}:"


def test_the_preflight_lists_each_missing_input_on_its_own_line(tmp_path, capsys, tiny_checkpoints):
    assert main(["zeroshot", "--config", "modelnet40", "--set", f"data.root={tmp_path / 'none'}",
                 "--set", "download=false", "--set", f"backbone={tiny_checkpoints['vit']}"]) == 2
    err = capsys.readouterr().err
    lines = err.rstrip("\n").splitlines()
    start = next(i for i, line in enumerate(lines) if ": error: " in line)
    assert lines[start] == "pointcalip zeroshot: error: cannot start: 1 input missing, nothing was written:"
    assert lines[start + 1].startswith("  (1) dataset modelnet40 (read from")
    assert lines[-1] == "(run with -v for the traceback)"
