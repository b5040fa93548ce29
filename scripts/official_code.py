"""Run the official PointCLIP and PointCLIP V2 projectors from checkouts of their repositories.

    from official_code import pointclip_views, pointclip_v2_projection
    zs = pointclip_views("~/src/PointCLIP")            # fewshot=True for the 10-view, 224 px one
    zs.maps(points), zs.images(points)                  # [B, 6, 128, 128], [B, 6, 3, 224, 224]
    v2 = pointclip_v2_projection("~/src/PointCLIP_V2")
    v2.maps(points), v2.images(points)                  # [B, 10, 110, 110], [B, 10, 3, 224, 224]

None of the official code is in this repository (CONVENTIONS.md: our own code, always): its
files are imported at run time, in memory, from the checkout the caller names, and only their
outputs are stored (scripts/make_goldens.py -> tests/data). The files used:

* PointCLIP, https://github.com/ZrrSkywalker/PointCLIP: `trainers/mv_utils_zs.py` and
  `trainers/mv_utils_fs.py` (`PCViews.get_img`: the native maps of the zero-shot and few-shot
  projectors) and the `mv_proj` methods of `trainers/zeroshot.py::PointCLIP_ZS` and
  `trainers/fewshot.py::PointCLIP_Model` (maps -> CLIP images).
* PointCLIP V2, https://github.com/yangyangyang127/PointCLIP_V2: `zeroshot_cls/trainers/
  mv_utils_zs.py` (`Realistic_Projection.get_img`) and the `real_proj` method of
  `zeroshot_cls/trainers/zeroshot.py::PointCLIPV2_ZS`.

`mv_proj` / `real_proj` are methods of trainer classes whose set-up loads CLIP; they only read
`self.get_img`, so they are called unbound on a small holder whose `get_img` is set as the
trainers' `build_model` sets it (`PCViews().get_img`, `Realistic_Projection().get_img`).

Patches, all in memory and undone afterwards; the checkout is never written to (no bytecode):

* `.cuda()` on tensors and modules -> `.to(device)` (a no-op on the CPU), while the official
  code is built and run: it calls `.cuda()` on its view matrices, on V2's `Grid2Image`, and on
  the maps in `mv_proj` / `real_proj`, which fails on a machine without CUDA.
* `torch_scatter`: V2's mv_utils_zs.py imports `scatter` from this CUDA-extension package (not
  a dependency of ours). The stand-in's `scatter(src, index, dim, out, reduce="max")` is
  torch's `out.scatter_reduce_(dim, index, src, "amax", include_self=True)`: torch_scatter
  also writes into `out` and keeps the values already there in the maximum.
* `dassl` (engine, metrics, utils, optim): the trainer modules import the Dassl training
  framework at module level and register their classes with `TRAINER_REGISTRY.register()`;
  the stubs give those names (the decorator returns the class unchanged, `TrainerX` is an empty
  base class), and the functions raise if ever called.
* `clip`: the trainer modules run `from clip import clip` for loading CLIP and tokenising,
  which projection never does; a stub keeps both the checkout's own CLIP package (and its
  dependencies) and any `clip` installed here out of the import.
* `trainers`: the official files import one another as `trainers.<name>` (PointCLIP's
  zeroshot.py also as `.fewshot`), so the checkout's `trainers/` folder is loaded as the
  package `trainers`. These five module names are set aside in `sys.modules` during the import
  and restored after it, so nothing leaks into (or out of) the caller's modules.
* `torch.backends.cudnn.benchmark`, which V2's `Grid2Image.__init__` sets to False, is restored.
* Warnings the old code raises on a recent torch / NumPy (`F.upsample` is deprecated, `np.repeat`
  of a torch tensor) are silenced while it runs.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.util
import io
import subprocess
import sys
import types
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, Sequence, Union

import numpy as np
import torch

PathLike = Union[str, Path]

POINTCLIP_URL = "https://github.com/ZrrSkywalker/PointCLIP"
POINTCLIP_V2_URL = "https://github.com/yangyangyang127/PointCLIP_V2"
#: files imported from each checkout, relative to the folder holding `trainers/`
POINTCLIP_FILES = ("trainers/__init__.py", "trainers/mv_utils_zs.py", "trainers/mv_utils_fs.py",
                   "trainers/zeroshot.py", "trainers/fewshot.py")
POINTCLIP_V2_FILES = ("trainers/__init__.py", "trainers/mv_utils_zs.py", "trainers/zeroshot.py",
                      "trainers/best_param.py")
POINTCLIP_V2_SUBDIR = "zeroshot_cls"  # V2 keeps the zero-shot code one folder down

_SET_ASIDE = ("trainers", "dassl", "clip", "torch_scatter")  # top-level module names we shadow


class OfficialCodeError(RuntimeError):
    """The official code could not be found, imported or run; the message says why, in one line."""


@dataclass(frozen=True)
class OfficialProjector:
    """One official projector, ready to run on `device`.

    maps: points [B, N, 3] -> native maps [B, V, R, R] (the official `get_img`, reshaped).
    images: points [B, N, 3] -> CLIP inputs [B, V, 3, 224, 224] (`mv_proj` / `real_proj`).
    """
    name: str
    num_views: int
    map_size: int
    device: str
    get_maps: Callable[[torch.Tensor], torch.Tensor]
    get_images: Callable[[torch.Tensor], torch.Tensor]

    def maps(self, points: torch.Tensor) -> torch.Tensor:
        return self._run(self.get_maps, points)

    def images(self, points: torch.Tensor) -> torch.Tensor:
        return self._run(self.get_images, points)

    __call__ = images

    def _run(self, fn: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor) -> torch.Tensor:
        points = torch.as_tensor(points, dtype=torch.float32, device=self.device)
        if points.dim() != 3 or points.shape[-1] != 3:
            raise OfficialCodeError(f"{self.name}: points must have shape [B, N, 3]; got {tuple(points.shape)}")
        b = points.shape[0]
        with torch.no_grad(), _cuda_means(self.device), _quiet():
            try:
                out = fn(points)
            except Exception as e:  # someone else's code failing: one line that says which
                raise OfficialCodeError(f"{self.name} failed on points {tuple(points.shape)}: "
                                        f"{type(e).__name__}: {e}".replace("\n", " ")) from None
        return out.reshape(b, self.num_views, *out.shape[1:])


# --- public entry points -------------------------------------------------------------------------

def pointclip_views(checkout: PathLike, fewshot: bool = False, device: str = "cpu") -> OfficialProjector:
    """PointCLIP's projector from a checkout of its repository: zero-shot (6 views, 128 px) or,
    with `fewshot=True`, few-shot (10 views, 224 px, no resize for CLIP)."""
    mods = _import_trainers(code_root(checkout, "pointclip"), ("mv_utils_zs", "mv_utils_fs", "zeroshot", "fewshot"))
    # (module with PCViews, trainer module, trainer class) of each variant
    utils, trainer, cls = ("mv_utils_fs", "fewshot", "PointCLIP_Model") if fewshot else \
        ("mv_utils_zs", "zeroshot", "PointCLIP_ZS")
    utils, mv_proj = mods[utils], _attr(mods[trainer], f"{cls}.mv_proj")
    name = f"PointCLIP {'few' if fewshot else 'zero'}-shot (official)"
    with _cuda_means(device):
        views = _call(name, _attr(utils, "PCViews"))
    holder = types.SimpleNamespace(get_img=views.get_img)
    return OfficialProjector(name, int(views.num_views), int(_attr(utils, "RESOLUTION")), device,
                             views.get_img, lambda pts: mv_proj(holder, pts))


def pointclip_v2_projection(checkout: PathLike, device: str = "cpu") -> OfficialProjector:
    """PointCLIP V2's realistic projector (10 views, 110 px maps) from a checkout of its
    repository (the repository root or its zeroshot_cls folder)."""
    mods = _import_trainers(code_root(checkout, "pointclip_v2"), ("mv_utils_zs", "zeroshot"))
    utils, name = mods["mv_utils_zs"], "PointCLIP V2 realistic (official)"
    real_proj = _attr(mods["zeroshot"], "PointCLIPV2_ZS.real_proj")
    cudnn_benchmark = torch.backends.cudnn.benchmark
    try:
        with _cuda_means(device), _quiet():
            proj = _call(name, _attr(utils, "Realistic_Projection"))
    finally:
        torch.backends.cudnn.benchmark = cudnn_benchmark
    holder = types.SimpleNamespace(get_img=proj.get_img)
    params = _attr(utils, "params")  # the 110 px map side: grid + 2 * pool padding - pool kernel + 1
    side = int(params["resolution"]) + 2 * int(params["maxpoolpadxy"]) - int(params["maxpoolxy"]) + 1
    return OfficialProjector(name, int(proj.num_views), side, device,
                             lambda pts: proj.get_img(pts)[:, 0], lambda pts: real_proj(holder, pts))


def code_root(checkout: PathLike, which: str) -> Path:
    """The folder holding `trainers/` in a checkout of `which` ("pointclip" or "pointclip_v2");
    raises OfficialCodeError naming the first missing file."""
    url, files = (POINTCLIP_URL, POINTCLIP_FILES) if which == "pointclip" else (POINTCLIP_V2_URL, POINTCLIP_V2_FILES)
    root = Path(checkout).expanduser()
    if not root.is_dir():
        raise OfficialCodeError(f"{which} checkout {root} is not a directory (clone {url} and pass its path)")
    bases = [root / POINTCLIP_V2_SUBDIR, root] if which == "pointclip_v2" else [root]
    base = next((b for b in bases if (b / files[1]).is_file()), bases[0])
    for f in files:
        if not (base / f).is_file():
            raise OfficialCodeError(f"{which} checkout {root} lacks {base / f} (expected a checkout of {url})")
    return base.resolve()


def describe_checkout(checkout: PathLike, which: str) -> Dict[str, str]:
    """Provenance of the official files: the git commit of the checkout ("unknown" when it is
    not a git work tree), "modified" when those files differ from that commit, and their SHA-256."""
    base = code_root(checkout, which)
    files = POINTCLIP_FILES if which == "pointclip" else POINTCLIP_V2_FILES
    info = {"commit": "unknown", "url": POINTCLIP_URL if which == "pointclip" else POINTCLIP_V2_URL}
    try:
        git = ["git", "-C", str(base)]
        info["commit"] = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True,
                                        check=True).stdout.strip()
        changed = subprocess.run(git + ["status", "--porcelain", "--", *files], capture_output=True, text=True,
                                 check=True).stdout.strip()
        if changed:
            info["commit"] += " (files modified)"
    except (OSError, subprocess.CalledProcessError):
        pass
    prefix = f"{POINTCLIP_V2_SUBDIR}/" if which == "pointclip_v2" else ""  # paths from the repository root
    info["sha256"] = " ".join(f"{prefix}{f}={hashlib.sha256((base / f).read_bytes()).hexdigest()}" for f in files)
    return info


# --- import machinery ----------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _import_trainers(base: Path, names: Sequence[str]) -> Dict[str, types.ModuleType]:
    """Import `trainers.<name>` for each name from base/trainers, with the stubs in place.
    Cached per checkout: the modules are kept by reference, not in sys.modules."""
    init = base / "trainers" / "__init__.py"
    with _set_aside(_stubs()), _quiet():
        try:
            spec = importlib.util.spec_from_file_location("trainers", init,
                                                          submodule_search_locations=[str(init.parent)])
            pkg = importlib.util.module_from_spec(spec)
            sys.modules["trainers"] = pkg
            spec.loader.exec_module(pkg)
            return {n: importlib.import_module(f"trainers.{n}") for n in names}
        except Exception as e:  # an import error in someone else's code: say which file, one line
            raise OfficialCodeError(f"importing the official code from {init.parent} failed: "
                                    f"{type(e).__name__}: {e}".replace("\n", " ")) from None


@contextlib.contextmanager
def _set_aside(stubs: Dict[str, types.ModuleType]) -> Iterator[None]:
    """sys.modules without our shadowed names (plus `stubs`) inside; as it was outside."""
    def shadowed(name: str) -> bool:
        return name.split(".")[0] in _SET_ASIDE
    saved = {k: m for k, m in sys.modules.items() if shadowed(k)}
    for k in saved:
        del sys.modules[k]
    sys.modules.update(stubs)
    write_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        yield
    finally:
        for k in [k for k in sys.modules if shadowed(k)]:
            del sys.modules[k]
        sys.modules.update(saved)
        sys.dont_write_bytecode = write_bytecode


def _stubs() -> Dict[str, types.ModuleType]:
    """Stand-ins for the packages the official modules import but projection never uses (see
    the module docstring for why each is there)."""
    def module(name: str, **attrs) -> types.ModuleType:
        m = types.ModuleType(name, f"stand-in from scripts/official_code.py for {name}")
        m.__dict__.update(attrs)
        return m

    def unavailable(what: str) -> Callable:
        def fail(*args, **kwargs):
            raise OfficialCodeError(f"{what} is a stub in scripts/official_code.py: only the projectors can run")
        return fail

    class Registry:
        def register(self, *args, **kwargs):
            return lambda cls: cls

    class TrainerX:
        """Empty base class for the official trainer classes, which are defined, never built."""

    mods = {
        "dassl.engine": module("dassl.engine", TRAINER_REGISTRY=Registry(), TrainerX=TrainerX),
        "dassl.metrics": module("dassl.metrics", compute_accuracy=unavailable("dassl.metrics.compute_accuracy")),
        "dassl.utils": module("dassl.utils", load_pretrained_weights=unavailable("dassl.utils.load_pretrained_weights"),
                              load_checkpoint=unavailable("dassl.utils.load_checkpoint")),
        "dassl.optim": module("dassl.optim", build_optimizer=unavailable("dassl.optim.build_optimizer"),
                              build_lr_scheduler=unavailable("dassl.optim.build_lr_scheduler")),
        "clip.clip": module("clip.clip"),
        "torch_scatter": module("torch_scatter", scatter=_scatter),
    }
    mods["dassl"] = module("dassl", **{k.split(".")[1]: v for k, v in mods.items() if k.startswith("dassl.")})
    mods["clip"] = module("clip", clip=mods["clip.clip"])
    return mods


def _scatter(src: torch.Tensor, index: torch.Tensor, dim: int = -1, out: torch.Tensor = None,
             dim_size=None, reduce: str = "sum") -> torch.Tensor:
    """torch_scatter.scatter as V2's points2grid calls it: reduce="max" into a given `out`,
    keeping out's own values in the maximum."""
    if reduce != "max" or out is None:
        raise OfficialCodeError(f"the torch_scatter stand-in only does reduce='max' into a given out; "
                                f"got reduce={reduce!r}, out={'given' if out is not None else None}")
    return out.scatter_reduce_(dim, index, src, reduce="amax", include_self=True)


@contextlib.contextmanager
def _cuda_means(device: str) -> Iterator[None]:
    """`.cuda()` on tensors and modules means `.to(device)` inside (a no-op on the CPU)."""
    dev = torch.device(device)
    patches = [(torch.Tensor, lambda self, *a, **k: self.to(dev)),
               (torch.nn.Module, lambda self, *a, **k: self.to(dev))]
    saved = [(cls, cls.__dict__.get("cuda")) for cls, _ in patches]
    for cls, fn in patches:
        cls.cuda = fn
    try:
        yield
    finally:
        for cls, old in saved:
            if old is None:
                delattr(cls, "cuda")
            else:
                cls.cuda = old


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the deprecation warnings of the old code on a recent torch / NumPy."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", message=".*upsample.*deprecated.*")
        yield


def _attr(module: types.ModuleType, dotted: str):
    """module.<dotted>, or OfficialCodeError naming the file that lacks it."""
    obj = module
    try:
        for part in dotted.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise OfficialCodeError(f"{module.__file__} has no {dotted} (expected the official code; "
                                f"see scripts/official_code.py)") from None
    return obj


def _call(name: str, fn: Callable):
    try:
        return fn()
    except Exception as e:
        raise OfficialCodeError(f"building {name} failed: {type(e).__name__}: {e}".replace("\n", " ")) from None


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """float32 array on the CPU."""
    return t.detach().to("cpu", torch.float32).contiguous().numpy()


# --- Tip-Adapter ---------------------------------------------------------------------------------

TIP_ADAPTER_URL = "https://github.com/gaopengcuhk/Tip-Adapter"
TIP_ADAPTER_FILES = ("main.py", "utils.py")


@dataclass
class TipAdapterRun:
    """What the official Tip-Adapter / Tip-Adapter-F did on given features (Tip's logit scale).

    tip_beta, tip_alpha: `search_hp` of the training-free cache on validation.
    losses [steps]: every training loss (`F.cross_entropy` calls of `run_tip_adapter_F`).
    first_grad, keys_before, keys_after_first [M, D]: the keys' gradient at the first step and
    the keys before and after it (AdamW's step, recorded by a subclass that only looks).
    best_keys [M, D]: the weights `run_tip_adapter_F` saved as its best epoch and reloaded.
    f_beta, f_alpha: its `search_hp` after training; epoch_accuracies: its per-epoch evaluations
    (on the set passed as its test set); test_accuracy: `run_tip_adapter` of the best keys on
    the test set at the searched (beta, alpha).
    """
    tip_beta: float
    tip_alpha: float
    losses: np.ndarray
    first_grad: np.ndarray
    keys_before: np.ndarray
    keys_after_first: np.ndarray
    best_keys: np.ndarray
    f_beta: float
    f_alpha: float
    epoch_accuracies: np.ndarray
    test_accuracy: float


def tip_adapter_root(checkout: PathLike) -> Path:
    """The checkout of Tip-Adapter holding main.py and utils.py, or OfficialCodeError."""
    root = Path(checkout).expanduser()
    for f in TIP_ADAPTER_FILES:
        if not (root / f).is_file():
            raise OfficialCodeError(f"Tip-Adapter checkout {root} lacks {f} (clone {TIP_ADAPTER_URL} "
                                    f"and pass its path)")
    return root.resolve()


def describe_tip_adapter(checkout: PathLike) -> Dict[str, str]:
    """Provenance of Tip-Adapter's main.py and utils.py: commit, url, SHA-256."""
    root = tip_adapter_root(checkout)
    info = {"commit": "unknown", "url": TIP_ADAPTER_URL}
    try:
        git = ["git", "-C", str(root)]
        info["commit"] = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True,
                                        check=True).stdout.strip()
        if subprocess.run(git + ["status", "--porcelain", "--", *TIP_ADAPTER_FILES], capture_output=True,
                          text=True, check=True).stdout.strip():
            info["commit"] += " (files modified)"
    except (OSError, subprocess.CalledProcessError):
        pass
    info["sha256"] = " ".join(f"{f}={hashlib.sha256((root / f).read_bytes()).hexdigest()}"
                              for f in TIP_ADAPTER_FILES)
    return info


@functools.lru_cache(maxsize=None)
def _import_tip_adapter(root: Path) -> types.ModuleType:
    """Tip-Adapter's main.py (with its utils.py) as a module. Its imports of the checkout's
    `clip` and `datasets` packages (CLIP loading, image datasets) are stubs: only the functions
    that take features are called. `utils` is set aside like the other shadowed names."""
    stubs = {"clip": types.ModuleType("clip"), "datasets": types.ModuleType("datasets"),
             "datasets.utils": types.ModuleType("datasets.utils")}
    stubs["datasets"].build_dataset = stubs["datasets.utils"].build_data_loader = None
    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if k.split(".")[0] in ("utils", "datasets", "clip")}
    sys.modules.update(stubs)
    write_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        with _quiet():
            for name in ("utils", "main"):
                spec = importlib.util.spec_from_file_location(f"tip_adapter_{name}" if name == "main" else name,
                                                              root / f"{name}.py")
                mod = importlib.util.module_from_spec(spec)
                if name == "utils":
                    sys.modules["utils"] = mod
                spec.loader.exec_module(mod)
        return mod
    except Exception as e:
        raise OfficialCodeError(f"importing Tip-Adapter from {root} failed: {type(e).__name__}: {e}"
                                .replace("\n", " ")) from None
    finally:
        for k in [k for k in sys.modules if k.split(".")[0] in ("utils", "datasets", "clip")]:
            del sys.modules[k]
        sys.modules.update(saved)
        sys.dont_write_bytecode = write_bytecode


def run_tip_adapter(checkout: PathLike, train_feats: torch.Tensor, train_labels: torch.Tensor,
                    val_feats: torch.Tensor, val_labels: torch.Tensor, test_feats: torch.Tensor,
                    test_labels: torch.Tensor, clip_weights: torch.Tensor, num_classes: int,
                    lr: float = 1e-3, epochs: int = 20, search_scale=(7.0, 3.0),
                    search_step=(200, 20)) -> TipAdapterRun:
    """Run the official `search_hp`, `run_tip_adapter_F` and `run_tip_adapter` on features.

    train_feats [M, D] (unit rows): the cache keys and the training batch (one batch, as the
    features are fixed: the official loader's shuffling only reorders it); val_feats,
    test_feats [N, D] (unit rows); clip_weights [D, K] (unit columns): the zero-shot logits are
    `100 feats @ clip_weights`. `run_tip_adapter_F` is given the VALIDATION set as its test set,
    so that it picks its best epoch on validation as we do (it picks on test as published);
    the test set is then evaluated by `run_tip_adapter` on the best keys.
    Training starts at the training-free search's (beta, alpha) (cfg init_beta, init_alpha).
    """
    import tempfile

    main = _import_tip_adapter(tip_adapter_root(checkout))
    f32 = lambda t: torch.as_tensor(t, dtype=torch.float32)  # noqa: E731
    train_feats, val_feats, test_feats, clip_weights = map(f32, (train_feats, val_feats, test_feats, clip_weights))
    train_labels, val_labels, test_labels = (torch.as_tensor(x, dtype=torch.long)
                                             for x in (train_labels, val_labels, test_labels))
    keys = train_feats.t().contiguous()                         # official layout [D, M]
    values = torch.nn.functional.one_hot(train_labels, num_classes).float()
    record: Dict[str, list] = {"losses": [], "acc": [], "search": [], "steps": []}

    functional = torch.nn.functional

    class Functional:                                           # main.F, recording cross_entropy
        def __getattr__(self, name):
            return getattr(functional, name)

        @staticmethod
        def cross_entropy(*a, **k):
            loss = functional.cross_entropy(*a, **k)
            record["losses"].append(float(loss))
            return loss

    real_adamw = torch.optim.AdamW

    class LookingAdamW(real_adamw):                             # the same optimiser; records step 1
        def step(self, *a, **k):
            p = self.param_groups[0]["params"][0]
            first = not record["steps"]
            if first:
                record["steps"].append((p.grad.detach().clone(), p.detach().clone()))
            out = super().step(*a, **k)
            if first:
                record["steps"].append(p.detach().clone())
            return out

    def fixed_cls_acc(*a, **k):
        # utils.cls_acc calls float() on a 1-element 1-d array, which NumPy 2 refuses: its
        # `.numpy()` call returns that element as a 0-d array while it runs
        real_numpy = torch.Tensor.numpy
        torch.Tensor.numpy = lambda self, *x, **y: real_numpy(self, *x, **y).reshape(
            () if self.numel() == 1 else self.shape)
        try:
            return real_cls_acc(*a, **k)
        finally:
            torch.Tensor.numpy = real_numpy

    def cls_acc(*a, **k):                                       # main's: recorded
        acc = fixed_cls_acc(*a, **k)
        record["acc"].append(acc)
        return acc

    def search_hp(*a, **k):
        found = real_search_hp(*a, **k)
        record["search"].append(found)
        return found

    real_cls_acc, real_search_hp = main.cls_acc, main.search_hp
    clip_model = types.SimpleNamespace(dtype=torch.float32, encode_image=lambda x: x.clone())
    with tempfile.TemporaryDirectory() as tmp, _cuda_means("cpu"), _quiet(), \
            contextlib.redirect_stdout(io.StringIO()):
        cfg = {"search_hp": True, "search_scale": list(search_scale), "search_step": list(search_step),
               "lr": lr, "train_epoch": epochs, "cache_dir": tmp, "shots": 0}
        saved = {name: getattr(main, name) for name in ("F", "cls_acc", "search_hp")}
        utils_globals = real_search_hp.__globals__                # utils.py's namespace
        main.F, main.cls_acc, main.search_hp = Functional(), cls_acc, search_hp
        utils_globals["cls_acc"] = fixed_cls_acc
        torch.optim.AdamW = LookingAdamW
        try:
            beta, alpha = real_search_hp(cfg, keys, values, val_feats, val_labels, clip_weights)
            record["search"].clear()
            cfg["init_beta"], cfg["init_alpha"] = beta, alpha
            record["acc"].clear()
            main.run_tip_adapter_F(cfg, keys, values, val_feats, val_labels, val_feats, val_labels,
                                   clip_weights, clip_model, [(train_feats, train_labels)])
            epoch_acc = list(record["acc"][1::2])              # train-batch accuracy, then eval
            best = torch.load(Path(tmp) / "best_F_0shots.pt", weights_only=True).detach().clone()
            f_beta, f_alpha = record["search"][-1]
            record["acc"].clear()
            main.run_tip_adapter(cfg, best.t().contiguous(), values, val_feats, val_labels, test_feats,
                                 test_labels, clip_weights)
            test_acc = record["acc"][-1]
        except OfficialCodeError:
            raise
        except Exception as e:
            raise OfficialCodeError(f"Tip-Adapter failed: {type(e).__name__}: {e}".replace("\n", " ")) from None
        finally:
            torch.optim.AdamW = real_adamw
            utils_globals["cls_acc"] = real_cls_acc
            for name, value in saved.items():
                setattr(main, name, value)
    (grad, before), after = record["steps"][0], record["steps"][1]
    return TipAdapterRun(float(beta), float(alpha), np.array(record["losses"][:epochs], dtype=np.float64),
                         to_numpy(grad), to_numpy(before), to_numpy(after), to_numpy(best),
                         float(f_beta), float(f_alpha), np.array(epoch_acc, dtype=np.float64), float(test_acc))


# --- PointCLIP's adapter recipe (Dassl3D's scheduler, the few-shot trainer's loss) ------------------

ADAPTER_RECIPE_FILES = ("Dassl3D/dassl/optim/lr_scheduler.py", "trainers/fewshot.py",
                        "configs/trainers/PointCLIP_FS/rn50.yaml")


def _function_from(path: Path, name: str, namespace: dict) -> Callable:
    """Run one top-level function definition of an official file (its own text, unchanged) in
    ``namespace`` and return it: the file's other imports (Dassl, CLIP) are not needed for it."""
    import ast

    tree = ast.parse(path.read_text(), str(path))
    node = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name), None)
    if node is None:
        raise OfficialCodeError(f"{path} defines no function {name}")
    exec(compile(ast.Module(body=[node], type_ignores=[]), str(path), "exec"), namespace)
    return namespace[name]


def pointclip_adapter_recipe(checkout: PathLike, logits: torch.Tensor, labels: torch.Tensor) -> Dict[str, np.ndarray]:
    """What PointCLIP's few-shot adapter trains with, from its checkout: the learning rate of
    every epoch (Dassl3D's build_lr_scheduler with the OPTIM settings of
    configs/trainers/PointCLIP_FS/rn50.yaml, stepped once per epoch as the trainer does) and
    its `smooth_loss` on ``logits`` [B, K] / ``labels`` [B]."""
    import yaml

    root = Path(checkout).expanduser()
    for f in ADAPTER_RECIPE_FILES:
        if not (root / f).is_file():
            raise OfficialCodeError(f"pointclip checkout {root} lacks {root / f} (expected a checkout of {POINTCLIP_URL})")
    class OldSignature(torch.optim.lr_scheduler.LRScheduler):
        """torch's scheduler base as Dassl3D calls it (a positional `verbose`, since removed)."""

        def __init__(self, optimizer, last_epoch=-1, verbose=False):
            super().__init__(optimizer, last_epoch)

    spec = importlib.util.spec_from_file_location("dassl_lr_scheduler", root / ADAPTER_RECIPE_FILES[0])
    scheduler_module = importlib.util.module_from_spec(spec)
    current = torch.optim.lr_scheduler._LRScheduler
    torch.optim.lr_scheduler._LRScheduler = OldSignature
    try:
        spec.loader.exec_module(scheduler_module)
    finally:
        torch.optim.lr_scheduler._LRScheduler = current
    optim = yaml.safe_load((root / ADAPTER_RECIPE_FILES[2]).read_text())["OPTIM"]
    cfg = types.SimpleNamespace(LR_SCHEDULER=optim["LR_SCHEDULER"], STEPSIZE=(-1,), GAMMA=0.1,
                                MAX_EPOCH=int(optim["MAX_EPOCH"]), WARMUP_EPOCH=int(optim["WARMUP_EPOCH"]),
                                WARMUP_RECOUNT=True, WARMUP_TYPE=optim["WARMUP_TYPE"],
                                WARMUP_CONS_LR=float(optim["WARMUP_CONS_LR"]), WARMUP_MIN_LR=1e-5)
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=float(optim["LR"]), momentum=0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = scheduler_module.build_lr_scheduler(opt, cfg)
        lrs = []
        for _ in range(cfg.MAX_EPOCH):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()                       # the trainer's update_lr() after an epoch's last batch
    smooth_loss = _function_from(root / ADAPTER_RECIPE_FILES[1], "smooth_loss",
                                 {"torch": torch, "F": torch.nn.functional})
    return {"adapter_lr_per_epoch": np.array(lrs, dtype=np.float64),
            "adapter_base_lr": np.array(float(optim["LR"])),
            "smooth_logits": to_numpy(logits), "smooth_labels": to_numpy(labels),
            "smooth_loss": np.array(float(smooth_loss(logits, labels)))}
