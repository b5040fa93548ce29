"""Golden outputs of TDA's own `run_test_tda` (kdiAAA/TDA) for tests/test_testtime_tda.py.

    git clone https://github.com/kdiAAA/TDA /tmp/tda
    python scripts/make_tda_goldens.py --tda /tmp/tda [--out tests/data]

TDA's code is never copied into this repository: its `utils.py` and `tda_runner.py` are read
from the checkout named by --tda, patched in memory and run on the CPU; only what they output
is stored (tests/data/tda_goldens.npz). Per case, a fixed stream of N small features is fed to
`run_test_tda` as its "images" (the index of a feature; `encode_image` of a stand-in CLIP
model returns that feature), with the class text matrix as its `clip_weights`, so TDA computes
its own base logits `100 f @ W`, entropies, cache updates and cache logits.

In-memory patches (the checkout is never written):

* `.cuda()` removed and `.half()` turned into `.double()` in the two files' source text: the
  one-hot / mask cache values are 0 or 1, exactly representable in either type; running in
  float64 makes the goldens exact to ~1e-12.
* `wandb`, `clip`, `datasets.*`, `torchvision.transforms`: stub modules (TDA imports them for
  logging, CLIP loading and image datasets, none of which a feature stream uses).
* `cls_acc` in the runner's namespace records every step's `final_logits` (TDA keeps them in
  no variable) and returns that step's top-1 (TDA's `cls_acc` turns a 1-element array into a
  float, which NumPy 2 refuses); `get_clip_logits` is wrapped to record the base logits TDA
  computed.

Stored per case c (c0_, c1_ ...): features [N, D], clip_weights [D, K], order (the stream, here
0..N-1), base [N, K] (TDA's clip_logits), final [N, K] (TDA's logits after every step),
accuracy (TDA's returned value), params (capacity, alpha, beta, neg_capacity, neg_alpha,
neg_beta, band lo/hi, mask lo/hi); meta_tda_commit, meta_tda_sha256, meta_command.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import shlex
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
TDA_URL = "https://github.com/kdiAAA/TDA"
TDA_FILES = ("utils.py", "tda_runner.py")
SHADOWED = ("utils", "tda_runner", "wandb", "clip", "datasets", "torchvision")

#: (name, N, K, D, seed, positive (capacity, alpha, beta), negative (capacity, alpha, beta,
#: band, mask)): case 0 is the spec's defaults, case 1 TDA's ImageNet config with a wider band
CASES = [
    ("defaults", 90, 10, 24, 0, (3, 4.0, 3.0), (2, 0.117, 1.0, (0.2, 0.5), (0.03, 1.0))),
    ("imagenet_wide_band", 70, 7, 16, 1, (2, 2.0, 5.0), (2, 0.5, 1.0, (0.1, 0.6), (0.03, 1.0))),
]


def _stubs() -> dict:
    mods = {name: types.ModuleType(name) for name in
            ("wandb", "clip", "datasets", "datasets.imagenet", "datasets.utils", "torchvision",
             "torchvision.transforms")}
    mods["wandb"].log = lambda *a, **k: None
    mods["datasets"].build_dataset = None
    mods["datasets.imagenet"].ImageNet = None
    mods["datasets.utils"].build_data_loader = None
    mods["datasets.utils"].AugMixAugmenter = None
    mods["torchvision"].transforms = mods["torchvision.transforms"]
    mods["torchvision.transforms"].InterpolationMode = types.SimpleNamespace(BICUBIC=3)
    return mods


def load_tda(root: Path) -> types.ModuleType:
    """TDA's tda_runner.py (with its utils.py) as modules built from patched source text."""
    for name in TDA_FILES:
        if not (root / name).is_file():
            sys.exit(f"error: --tda {root} lacks {name} (clone {TDA_URL})")
    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if k.split(".")[0] in SHADOWED}
    sys.modules.update(_stubs())
    try:
        mods = {}
        for name in ("utils", "tda_runner"):
            text = (root / f"{name}.py").read_text().replace(".cuda()", "").replace(".half()",
                                                                                     ".double()")
            mod = types.ModuleType(name)
            mod.__file__ = str(root / f"{name}.py")
            sys.modules[name] = mod
            exec(compile(text, mod.__file__, "exec"), mod.__dict__)   # noqa: S102 - their code, run
            mods[name] = mod
        return mods["tda_runner"]
    finally:
        for k in [k for k in sys.modules if k.split(".")[0] in SHADOWED]:
            del sys.modules[k]
        sys.modules.update(saved)


def describe(root: Path) -> dict:
    info = {"commit": "unknown"}
    try:
        info["commit"] = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], check=True,
                                        capture_output=True, text=True).stdout.strip()
        if subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", *TDA_FILES],
                          check=True, capture_output=True, text=True).stdout.strip():
            info["commit"] += " (files modified)"
    except (OSError, subprocess.CalledProcessError):
        pass
    info["sha256"] = " ".join(f"{f}={hashlib.sha256((root / f).read_bytes()).hexdigest()}"
                              for f in TDA_FILES)
    return info


def stream(n: int, k: int, d: int, seed: int):
    """Features [n, D] float64 (unit rows) whose confidence varies (so the entropy band and
    replacements are all exercised), text [D, K] (unit columns), labels [n]."""
    g = torch.Generator().manual_seed(seed)
    text = torch.nn.functional.normalize(torch.randn(d, k, generator=g, dtype=torch.float64), dim=0)
    labels = torch.randint(0, k, (n,), generator=g)
    strength = torch.rand(n, 1, generator=g, dtype=torch.float64) * 0.5
    noise = torch.randn(n, d, generator=g, dtype=torch.float64)
    feats = strength * text.t()[labels] + 0.15 * noise / d ** 0.5 + 0.02 * torch.randn(
        n, d, generator=g, dtype=torch.float64)
    return torch.nn.functional.normalize(feats, dim=1), text, labels


def run_case(runner: types.ModuleType, case) -> dict:
    name, n, k, d, seed, pos, neg = case
    feats, text, labels = stream(n, k, d, seed)
    finals, bases = [], []
    real_logits = runner.get_clip_logits

    def record_acc(output, target, topk=1):
        finals.append(output.detach().clone())    # TDA's own cls_acc fails on NumPy 2
        return 100.0 * float((output.argmax(1) == target).double().mean())

    def record_logits(images, clip_model, clip_weights):
        out = real_logits(images, clip_model, clip_weights)
        bases.append(out[1].detach().clone())
        return out

    class Model:   # stands in for CLIP: the "image" is the index of a feature
        def encode_image(self, images):
            return feats[int(images.reshape(-1)[0])].unsqueeze(0).clone()

    runner.cls_acc, runner.get_clip_logits = record_acc, record_logits
    runner.tqdm = lambda x, **kw: x
    pos_cfg = {"enabled": True, "shot_capacity": pos[0], "alpha": pos[1], "beta": pos[2]}
    neg_cfg = {"enabled": True, "shot_capacity": neg[0], "alpha": neg[1], "beta": neg[2],
               "entropy_threshold": {"lower": neg[3][0], "upper": neg[3][1]},
               "mask_threshold": {"lower": neg[4][0], "upper": neg[4][1]}}
    loader = [(torch.tensor([[i]]), labels[i:i + 1]) for i in range(n)]
    acc = runner.run_test_tda(pos_cfg, neg_cfg, loader, Model(), text)
    base, final = torch.cat(bases).numpy(), torch.cat(finals).numpy()
    h = -(torch.from_numpy(base).softmax(1) * torch.from_numpy(base).log_softmax(1)).sum(1)
    gate = h.numpy() / np.log2(k)
    in_band = int(((gate > neg[3][0]) & (gate < neg[3][1])).sum())
    print(f"{name}: N={n} K={k} D={d}, TDA accuracy {acc:.2f}, {in_band} clouds in the "
          f"negative band, max |cache term| {np.abs(final - base).max():.3f}")
    if in_band < 3:
        sys.exit(f"error: case {name} puts only {in_band} clouds in the negative band")
    params = np.array([pos[0], pos[1], pos[2], neg[0], neg[1], neg[2], *neg[3], *neg[4]])
    return {"name": np.array(name), "features": feats.numpy(), "clip_weights": text.numpy(),
            "labels": labels.numpy(), "order": np.arange(n), "base": base, "final": final,
            "accuracy": np.array(acc), "params": params}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tda", required=True, metavar="DIR", help=f"a checkout of {TDA_URL}")
    ap.add_argument("--out", default=str(REPO / "tests" / "data"), metavar="DIR")
    args = ap.parse_args(argv)
    root = Path(args.tda).expanduser().resolve()
    if REPO in root.parents or root == REPO:
        sys.exit("error: --tda must be a checkout outside this repository (e.g. /tmp/tda)")
    torch.set_grad_enabled(False)
    arrays = {}
    for i, case in enumerate(CASES):
        runner = load_tda(root)                  # a fresh module per case: no state carried
        for key, value in run_case(runner, case).items():
            arrays[f"c{i}_{key}"] = value
    info = describe(root)
    arrays.update({"meta_tda_url": np.array(TDA_URL), "meta_tda_commit": np.array(info["commit"]),
                   "meta_tda_sha256": np.array(info["sha256"]),
                   "meta_torch": np.array(torch.__version__),
                   "meta_command": np.array("python scripts/make_tda_goldens.py " +
                                            " ".join(map(shlex.quote, sys.argv[1:])))})
    out = Path(args.out) / "tda_goldens.npz"
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".npz.tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(out)
    print(f"wrote {out} ({out.stat().st_size / 1e3:.1f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
