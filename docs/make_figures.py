#!/usr/bin/env python
"""Regenerate the example figures of docs/ablations.md (section "Figures") and of the test-time
cache (README, docs/test-time-cache.md) into docs/figures/.

    .venv/bin/python docs/make_figures.py [--work /tmp/pointcalip_figures] [--only adapt]

Everything runs on the tests' toy data (tests/planted.py, tests/ablation_planted.py, the shape
families of tests/conftest.py) with tiny random CLIPs on the CPU: a few minutes, no download.
PNGs over 150 KB (the attention grid) are stored with a 160-colour palette.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
LIMIT = 150 * 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/pointcalip_figures"),
                    help="scratch folder (data, store, run outputs)")
    ap.add_argument("--only", choices=("all", "adapt"), default="all",
                    help="adapt: only the test-time cache's figures and table")
    args = ap.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    os.environ["POINTCALIP_HOME"] = str(work / "home")
    os.environ["POINTCALIP_ENGINE"] = "eager"

    import numpy as np
    from PIL import Image

    import ablation_planted as AP
    import planted as P
    import tiny_clip
    from pointcalip import load_clip
    from pointcalip.cli import main as cli
    from synthetic_data import shape_family_clouds, write_modelnet_clouds

    ck = {k: str(v) for k, v in tiny_clip.write_tiny_checkpoints(work / "clip").items()}
    planted = P.write_planted(work / "planted", load_clip(ck["vit"], device="cpu"))
    adapt_figures(work, ck, planted)
    if args.only == "adapt":
        return 0
    vp = AP.write_view_planted(work / "vp", planted)
    store = ["--set", f"backbone={ck['vit']}", "--set", f"cache_dir={work}/store"]
    assert cli(["ablate", "--config", "ablation_views", "ablation_terms", "ablation_projectors",
                "ablation_weights", "--set", f"data.root={vp.root}", *store,
                "--set", f"tune.grid={P.GRID}", "--set", f"tune.val_fraction={AP.VAL_FRACTION}",
                "--set", f"output_dir={work}/ablate",
                "--set", "projectors_study.projectors=[{name: pointclip, views: zeroshot}, "
                         "{name: realistic, views: [0, 1]}]"]) == 0
    rng = np.random.default_rng(0)

    def split(per):
        labels = rng.permutation(np.repeat(np.arange(4), per))
        return shape_family_clouds(labels, 1024, rng), labels

    families = write_modelnet_clouds(work / "families" / "families", ["blicket", "dax", "wug", "toma"],
                                     {"train": split(16), "test": split(10)})
    assert cli(["fewshot", "--config", "modelnet40_fewshot", "--set", f"data.root={families}", *store,
                "--set", f"output_dir={work}/fewshot", "--set", "tune.grid=10",
                "--set", "tune.val_fraction=0.25", "--shots", "1", "2", "4", "--seeds", "1", "2",
                "--set", "calip_fs.train.epochs=30", "--set", "calip_fs.train.lr=0.01",
                "--set", "calip_fs.train.batch_size=4", "--set", "adapter.train.epochs=30",
                "--set", "adapter.train.lr=0.05", "--set", "tip_f.train.epochs=20",
                "--set", "tip_f.train.lr=0.01", "--set", "tip.alpha_max=10",
                "--set", "tip.beta_max=50"]) == 0
    assert cli(["zeroshot", "--config", "modelnet40", "--set", f"data.root={planted.root}", *store,
                "--set", f"tune.grid={P.GRID}", "--set", f"output_dir={work}/zeroshot"]) == 0
    cloud = work / "cloud.npy"
    np.save(cloud, planted.points["test"][1].numpy())
    assert cli(["explain", str(cloud), "--classes", *P.CLASSES, "--backbone", ck["vit"],
                "-o", str(work / "explain.png")]) == 0
    montage = work / "render_views.png"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "render_views.py"), "--synthetic", "chair",
                    "--projector", "realistic", "-o", str(montage)], check=True)

    out = ROOT / "docs" / "figures"
    out.mkdir(parents=True, exist_ok=True)
    picks = {"views.png": work / "ablate/views/views.png",
             "importance.png": work / "ablate/views/importance.png",
             "projectors.png": work / "ablate/projectors/projectors.png",
             "weights.png": work / "ablate/weights/weights.png",
             "beta_surface.png": work / "ablate/terms/beta_surface.png",
             "accuracy_vs_shots.png": work / "fewshot/accuracy_vs_shots.png",
             "curves.png": next((work / "fewshot").rglob("calip_fs/4shot-seed1/curves.png")),
             "explain.png": work / "explain.png", "render_views.png": montage,
             "confusion.png": work / "zeroshot/confusion/test_calip.png"}
    for name, source in picks.items():
        target = out / name
        shutil.copyfile(source, target)
        if target.stat().st_size > LIMIT:
            Image.open(source).convert("RGB").quantize(colors=160, method=Image.Quantize.MEDIANCUT
                                                       ).save(target, optimize=True)
        print(f"{target.relative_to(ROOT)}: {target.stat().st_size // 1024} KB")
    return 0


ADAPT_CORRUPTIONS = ["gaussian", "background", "cutout", "lidar"]
#: the README's table: these sets, these rows
ADAPT_SETS = ["original", "gaussian_1", "gaussian_5", "background_5", "cutout_5", "lidar_5"]
ADAPT_ROWS = ["PointCLIP", "CALIP", "+ positive", "+ positive + negative", "+ local (full)"]


def adapt_figures(work: Path, ck: dict, planted) -> None:
    """`pointcalip adapt --config modelnet40c` on a planted release: the synthetic ModelNet40-C
    (tests/synthetic_modelnet40c.py: the release's point counts) of the planted TEST clouds,
    whose gaussian sets are a planted shift (tests/planted_shift.py; shifted share 0.1 x
    severity) at the betas the run tunes; 5 orders. -> docs/figures/adapt_gain.png,
    adapt_curves.png and the README's table (printed)."""
    import json

    import numpy as np

    import planted as P
    from planted_shift import anchors_and_shifts, shifted_set
    from pointcalip import load_clip
    from pointcalip.cli import main as cli
    from pointcalip.datasets.modelnet40c import data_file
    from pointcalip.model import PointCALIP
    from pointcalip.projection import PointCLIPProjector
    from synthetic_modelnet40c import write_modelnet40c

    labels, clouds = planted.labels["test"], planted.points["test"].numpy()
    c40 = write_modelnet40c(work / "c40", labels, base=clouds, noise=0.04,
                            corruptions=ADAPT_CORRUPTIONS)

    def adapt(out, *extra):
        assert cli(["adapt", "--config", "modelnet40c", "--set", f"data.root={planted.root}",
                    "--set", f"benchmark.root={c40}", "--set", f"backbone={ck['vit']}",
                    "--set", f"cache_dir={work}/store", "--set", f"output_dir={work}/{out}",
                    "--set", f"tune.grid={P.GRID}", "--set", "tune.val_fraction=0.8", *extra]) == 0
        return json.loads((work / out / "results.json").read_text())

    first = adapt("adapt_betas", "--set", "benchmark.corruptions=[gaussian]",
                  "--set", "benchmark.severities=[1]", "--orders", "1")
    cal = first["calip"]
    model = PointCALIP(load_clip(ck["vit"], device="cpu"), P.CLASSES, PointCLIPProjector(),
                       first["templates"], cal["beta2"], cal["beta3"], cal["view_weights"])
    anchors, shifted = anchors_and_shifts(model, labels, clouds)
    for severity in range(1, 6):
        shift, _ = shifted_set(anchors, shifted, labels, 0.1 * severity, seed=severity)
        np.save(c40 / data_file("gaussian", severity), shift)
    res = adapt("adapt", "--set", f"benchmark.corruptions=[{','.join(ADAPT_CORRUPTIONS)}]")
    sets = {s["name"]: s for s in res["sets"]}
    print("| set | points | " + " | ".join(ADAPT_ROWS) + " |")
    print("|---|---|" + "---|" * len(ADAPT_ROWS))
    for name in ADAPT_SETS:
        s = sets[name]
        print(f"| {name} | {s['points']} | " + " | ".join(
            f"{s['rows'][r]['mean']:.1f} ± {s['rows'][r]['std']:.1f}" for r in ADAPT_ROWS) + " |")
    ms = {r: np.mean([s["rows"][r]["cache_ms_per_cloud"] for s in res["sets"]])
          for r in ADAPT_ROWS[2:]}
    print("cache ms per cloud: " + ", ".join(f"{r} {v:.3f}" for r, v in ms.items()))
    out = ROOT / "docs" / "figures"
    for name in ("gain", "curves"):
        shutil.copyfile(work / "adapt" / f"{name}.png", out / f"adapt_{name}.png")
        print(f"docs/figures/adapt_{name}.png: {(out / f'adapt_{name}.png').stat().st_size // 1024} KB")


if __name__ == "__main__":
    sys.exit(main())
