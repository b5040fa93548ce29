"""The installed layout: subpackages only under `pointcalip`, and a working console entry."""
import subprocess
import sys
from pathlib import Path

CHECK = """
import importlib.util, sys
sys.path = [p for p in sys.path if p not in ('', '.')]
import pointcalip.projection, pointcalip.datasets
assert pointcalip.projection.PointCLIPProjector and pointcalip.datasets.ModelNet40
for name in ('datasets', 'projection'):  # another project's package of that name is fine
    spec = importlib.util.find_spec(name)
    print(spec.origin if spec else None)
"""

REPO = Path(__file__).resolve().parents[1]


def test_no_top_level_datasets_or_projection(tmp_path):
    out = subprocess.run([sys.executable, "-c", CHECK], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for origin in out.stdout.split():
        assert origin == "None" or not origin.startswith(str(REPO)), origin


def test_console_entry_point_help(tmp_path):
    exe = Path(sys.executable).with_name("pointcalip")
    out = subprocess.run([str(exe), "--help"], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for command in ("zeroshot", "classify", "download"):
        assert command in out.stdout
