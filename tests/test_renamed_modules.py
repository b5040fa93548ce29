"""Modules renamed so that no two names say the same thing (issue 26) keep their old import
paths, so code and notes written before the renames still run: an old path gives the very
module it became (pointcalip.core.lazy.renamed_modules), and no file is left at it."""
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

RENAMED = {
    "pointcalip.core.config": "pointcalip.core.config_loader",
    "pointcalip.fewshot.tip": "pointcalip.fewshot.tip_cache",
    "pointcalip.fewshot.adapter": "pointcalip.fewshot.inter_view_adapter",
    "pointcalip.fewshot.calip_fs": "pointcalip.fewshot.calip_fs_model",
    "pointcalip.fewshot.report": "pointcalip.fewshot.result",
    "pointcalip.benchmark.report": "pointcalip.benchmark.result",
    "pointcalip.ablation.report": "pointcalip.ablation.output_files",
}


@pytest.mark.parametrize("old", sorted(RENAMED))
def test_an_old_module_path_is_the_module_it_became(old):
    new = importlib.import_module(RENAMED[old])
    assert importlib.import_module(old) is new
    assert not (Path(new.__file__).parent / f"{old.rsplit('.', 1)[1]}.py").exists()


def test_old_from_imports_work_first_thing_in_a_fresh_process():
    code = ("from pointcalip.fewshot.tip import TipCache\n"
            "from pointcalip.fewshot.adapter import InterViewAdapter\n"
            "from pointcalip.fewshot.calip_fs import CALIPFS\n"
            "from pointcalip.core.config import ConfigError\n"
            "from pointcalip.fewshot.report import FewShotResult\n"
            "from pointcalip.benchmark.report import BenchmarkResult\n"
            "from pointcalip.ablation.report import write_study\n"
            "import pointcalip.fewshot.tip_cache as now\n"
            "assert TipCache is now.TipCache\n"
            "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr[-2000:]
