"""CONTRIBUTING.md's counts, tried as a new contributor would: in a copy of the package laid
out as installed (pointcalip/ with its datasets/, projection/ and configs/ inside), a scratch
dataset (its module, one catalog entry, its data YAML and a run config) and a scratch few-shot
method (its module and its YAML section) are added, and nothing else: the copy differs from
the repository in exactly those files, and `pointcalip zeroshot` and `pointcalip fewshot` run
them."""
import filecmp
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: the installed layout (setup.py's package_dir): repository folder -> folder in the copy
LAYOUT = {"pointcalip": "pointcalip", "datasets": "pointcalip/datasets",
          "projection": "pointcalip/projection", "configs": "pointcalip/configs"}

# CONTRIBUTING's "Add a dataset" example: ModelNet40 with normals, its module
DATASET_MODULE = '''
"""ModelNet40 with normals: the ModelNet h5 layout whose files also hold ``normal``."""
from pathlib import Path

from .base import H5CloudDataset, check_split
from .h5utils import open_h5
from .modelnet import read_shape_names, split_files


def validate_folder(folder):
    """Raise naming the file and key when a split's h5 file lacks ``normal``."""
    folder = Path(folder)
    for split in ("train", "test"):
        for path in split_files(folder, split):
            with open_h5(path, "") as h5:
                if "normal" not in h5:
                    raise ValueError(f"{path} has no key 'normal'")


class ModelNet40Normals(H5CloudDataset):
    def __init__(self, root, split="test", num_points=1024, sampling="first",
                 normalize=False, in_memory=True):
        check_split(split)
        root = Path(root)
        validate_folder(root)
        names = read_shape_names(root)
        super().__init__(name="modelnet40n", split=split, files=split_files(root, split),
                         classnames=names, source_classes=len(names), num_points=num_points,
                         sampling=sampling, normalize=normalize, in_memory=in_memory)
'''

CATALOG_ENTRY = '''
DATASETS.register("modelnet40n", "pointcalip.datasets.modelnet_normals:ModelNet40Normals",
                  classes=4, source=DatasetSource(name="modelnet40n", folder="modelnet40n",
                                                   archive="modelnet40n.zip",
                                                   urls=("https://example.invalid/m.zip",),
                                                   marker=("shape_names.txt",)),
                  validate="pointcalip.datasets.modelnet_normals:validate_folder")
'''

# CONTRIBUTING's "Add a few-shot method" example: nearest class mean
METHOD_MODULE = '''
"""Nearest class mean of the K-shot cloud descriptors (an example baseline)."""
from dataclasses import dataclass

from ...config import Section
from . import METHODS


@dataclass
class NCMConfig(Section):
    """Nearest class mean: no settings yet."""


@METHODS.register("ncm", section=NCMConfig, trains=False, augmented=False, order=5)
def run(prepared, k: int, seed: int):
    """-> the row of the nearest class mean at ``k`` shots drawn with ``seed``."""
    import torch
    from ..stages import Outcome

    shots = prepared.features.of_train(prepared.splits.shots(k, seed))
    flat = torch.nn.functional.normalize(shots.global_.float().flatten(1), dim=1)
    means = torch.stack([flat[shots.labels == c].mean(0) for c in range(int(shots.labels.max()) + 1)])

    def accuracy(x):
        guess = (x.global_.float().flatten(1) @ means.T).argmax(1)
        return 100.0 * float((guess == x.labels).float().mean())

    return Outcome(accuracy(prepared.test), accuracy(prepared.val), {}).row("ncm", k, seed)
'''


def _copy_installed_layout(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for src, dst in LAYOUT.items():
        shutil.copytree(REPO / src, dest / dst, ignore=ignore)


def _changed_files(copy: Path) -> set:
    """Files of the copy that are new or differ from the repository, as repository paths."""
    changed = set()
    for src, dst in LAYOUT.items():
        for path in (copy / dst).rglob("*"):
            if path.is_dir() or "__pycache__" in path.parts:
                continue
            rel = path.relative_to(copy / dst)
            if src == "pointcalip" and rel.parts[0] in ("datasets", "projection", "configs"):
                continue                                  # the other folders, seen on their own
            orig = REPO / src / rel
            if not orig.is_file() or not filecmp.cmp(orig, path, shallow=False):
                changed.add(f"{src}/{rel.as_posix()}")
    return changed


def test_a_new_dataset_and_a_new_method_touch_only_the_files_contributing_names(
        shape_families, tiny_checkpoints, tmp_path):
    copy = tmp_path / "site"
    _copy_installed_layout(copy)
    pkg = copy / "pointcalip"
    # the dataset: its module, one catalog entry, its data YAML, a run config including it
    (pkg / "datasets" / "modelnet_normals.py").write_text(DATASET_MODULE)
    with open(pkg / "datasets" / "catalog.py", "a") as f:
        f.write(CATALOG_ENTRY)
    (pkg / "configs" / "data" / "modelnet40n.yaml").write_text(
        "data:\n  name: modelnet40n\n  root: null\n  num_points: 1024\n")
    (pkg / "configs" / "modelnet40n.yaml").write_text(
        "include: [zeroshot_defaults.yaml, data/modelnet40n.yaml, model/pointclip_rn50.yaml]\n")
    # the method: its module, its entry in methods: and its section in the shipped YAML
    (pkg / "fewshot" / "methods" / "ncm.py").write_text(METHOD_MODULE)
    defaults = pkg / "configs" / "fewshot_defaults.yaml"
    text = defaults.read_text()
    assert "methods: [zeroshot, tip, tip_f, adapter, calip_fs]\n" in text
    defaults.write_text(text.replace("methods: [zeroshot, tip, tip_f, adapter, calip_fs]\n",
                                     "methods: [zeroshot, tip, tip_f, adapter, calip_fs, ncm]\n")
                        + "ncm: {}\n")

    assert _changed_files(copy) == {      # CONTRIBUTING: dataset 4 files, method 2
        "datasets/modelnet_normals.py", "datasets/catalog.py", "configs/data/modelnet40n.yaml",
        "configs/modelnet40n.yaml", "pointcalip/fewshot/methods/ncm.py",
        "configs/fewshot_defaults.yaml"}

    env = {**os.environ, "PYTHONPATH": str(copy)}

    def cli(*argv):
        return subprocess.run([sys.executable, "-m", "pointcalip", *argv], capture_output=True,
                              text=True, env=env, cwd=tmp_path)

    where = subprocess.run([sys.executable, "-c", "import pointcalip.datasets.modelnet_normals "
                            "as m, pointcalip.fewshot.methods.ncm as n; print(m.__file__, n.__file__)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path)
    assert where.returncode == 0 and where.stdout.count(str(copy)) == 2, where.stderr[-2000:]

    common = ["--set", f"data.root={shape_families}", "--set", f"backbone={tiny_checkpoints['vit']}",
              "--set", f"cache_dir={tmp_path / 'store'}"]
    done = cli("zeroshot", "--config", "modelnet40n", *common, "--set", "tune.grid=4",
               "--set", f"output_dir={tmp_path / 'zs'}")
    assert done.returncode == 0, done.stderr[-2000:]
    res = json.loads((tmp_path / "zs" / "results.json").read_text())
    assert res["config"]["data"]["name"] == "modelnet40n"
    assert (res["dataset"], res["num_test_clouds"]) == ("modelnet40n", 40)  # 4 families x 10

    done = cli("fewshot", "--config", "fewshot_defaults.yaml", "data/modelnet40n.yaml", *common,
               "--set", "tune.grid=4", "--shots", "4", "--seeds", "1",
               "--method", "zeroshot", "ncm", "--set", f"output_dir={tmp_path / 'fs'}")
    assert done.returncode == 0, done.stderr[-2000:]
    res = json.loads((tmp_path / "fs" / "results.json").read_text())
    assert res["config"]["methods"] == ["zeroshot", "ncm"] and res["config"]["ncm"] == {}
    ncm = [r for r in res["runs"] if r["method"] == "ncm"]
    zero = max(r["test_accuracy"] for r in res["runs"] if r["shots"] == 0)
    assert len(ncm) == 1 and (ncm[0]["shots"], ncm[0]["seed"]) == (4, 1)
    assert ncm[0]["test_accuracy"] >= zero + 20          # the shapes are learnt from 4 shots
    done = cli("download", "--help")
    assert done.returncode == 0 and "modelnet40n" in done.stdout
