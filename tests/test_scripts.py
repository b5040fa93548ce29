"""The scripts in scripts/ meet the CLI's standard: checked options, one-line errors."""
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name):
    sys.path.insert(0, str(SCRIPTS))            # scripts import their neighbours
    try:
        spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(SCRIPTS))


@pytest.fixture(scope="module")
def render_views():
    return load_script("render_views")


def test_render_views_writes_one_tile_per_view(render_views, tmp_path, capsys):
    out = tmp_path / "sub" / "chair.png"
    assert render_views.main(["--synthetic", "chair", "--projector", "realistic", "-o", str(out)]) == 0
    image = Image.open(out)
    assert image.mode == "L" and image.size == (5 * 228 + 4, 2 * (224 + render_views.CAPTION + 4) + 4)  # 2 rows of 5
    assert "10 views of 1024 points" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--synthetic", "chair", "--num-points", "0"], "argument --num-points: must be a positive integer"),
    (["--synthetic", "chair", "--cols", "-2"], "argument --cols: must be a positive integer"),
    (["--dataset", "modelnet40", "--index", "-1"], "argument --index: must be a non-negative integer"),
])
def test_render_views_checks_options(render_views, argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        render_views.main(argv)
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_render_views_errors_are_one_line(render_views, tmp_path, capsys):
    transposed = tmp_path / "t.npy"
    np.save(transposed, np.zeros((3, 500)))
    blocker = tmp_path / "file"
    blocker.write_text("")
    cases = [([str(transposed)], "t.npy: an array of shape (3, 500)"),
             ([str(tmp_path / "none.ply")], "no such file"),
             (["--synthetic", "box", "--views", "ring:x"], "--views 'ring:x': write ring:N"),
             (["--synthetic", "box", "--views", "0,9"], "view index 9"),
             (["--synthetic", "box", "-o", str(blocker / "x.png")], f"cannot write {blocker / 'x.png'}"),
             (["--dataset", "modelnet40", "--root", str(tmp_path / "none")], "does not exist")]
    for argv, message in cases:
        assert render_views.main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("render_views.py: error: ") and message in err and err.count("\n") == 1


@pytest.mark.parametrize("script, argv, message", [
    ("bench_search", ["--clouds", "0"], "argument --clouds: must be a positive integer"),
    ("bench_projection", ["--device", "gpu"], "argument --device: must be a device"),
    ("bench_zeroshot", ["--clouds", "-1"], "argument --clouds: must be a positive integer"),
])
def test_benchmarks_check_their_options(script, argv, message, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", [f"{script}.py", *argv])
    with pytest.raises(SystemExit) as info:
        load_script(script).main()
    assert info.value.code == 2 and message in capsys.readouterr().err
