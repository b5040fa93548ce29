"""What runs CLIP's image tower: PyTorch ("eager") or, on the CPU, ONNX Runtime.

Encoding the projected views is nearly all of a run's time. On the CPU, ONNX Runtime computes
the same tokens as PyTorch (unit tokens within ~2e-7) faster: ~1.25x for RN50 and ~1.05x for
ViT-B/32 over PyTorch in the same chunks of 8 images, on 2 cores (``python
scripts/bench_engine.py``). It is an optional dependency: ``pip install 'pointcalip[cpu-fast]'``
(onnxruntime, and onnx, which torch's exporter needs).

Engines (``load_clip(..., engine=)``, :meth:`ClipBackbone.set_engine`):

- ``auto`` (default): ``onnxruntime`` on the CPU when it is installed and the image tower fits
  in one ONNX file (< 2 GB of weights), else ``eager``; on a GPU always ``eager`` (float16).
  ``$POINTCALIP_ENGINE`` (``eager`` or ``onnxruntime``) replaces this choice on the CPU. A
  graph that cannot be exported or checked falls back to ``eager`` with a warning.
- ``eager``: the PyTorch model itself.
- ``onnxruntime``: always; an error if it is not installed or the device is not the CPU.

How: the backbone's own token computation, ``backbone._tokens`` (model input [N, 3, S, S] ->
[N, 1 + HW, C], every token, not normalised), is exported once per checkpoint with torch's
TorchScript-based ONNX exporter (``dynamo=False``: one self-contained file in seconds, no
further dependency) with a dynamic batch axis, written atomically (a temporary file renamed
into place) to ``<POINTCALIP_HOME>/engines/`` (:func:`graph_path`), and run by an
``onnxruntime.InferenceSession`` with ``torch.get_num_threads()`` threads. Each time a graph is
opened it is checked against PyTorch on one image; a cached graph that cannot be read or
disagrees is moved aside (``.bad``) with a warning and exported again.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Tuple, Union

import torch
from torch import nn

from pointcalip.core import paths

if TYPE_CHECKING:  # pragma: no cover
    from pointcalip.backbone import ClipBackbone

log = logging.getLogger(__name__)

ENGINES = ("auto", "eager", "onnxruntime")
INSTALL = "pip install 'pointcalip[cpu-fast]'"
#: Environment variable that replaces ``auto``'s choice on the CPU (``eager`` or ``onnxruntime``).
ENV = "POINTCALIP_ENGINE"
#: Part of cached graphs' names: bump it when ``_tokens`` of any backbone computes otherwise.
GRAPH_VERSION = 1
#: One ONNX file holds at most 2 GB (protobuf); larger image towers stay eager.
MAX_GRAPH_BYTES = 2 * 1024 ** 3 - 64 * 1024 ** 2
#: A graph is accepted when its tokens differ from PyTorch's by at most this times the
#: largest token value (float rounding is ~1e-7 of it; a wrong graph differs by ~1).
CHECK_TOLERANCE = 1e-4


def engines_dir() -> Path:
    """Where exported graphs are cached: ``<POINTCALIP_HOME>/engines``."""
    return paths.home_dir() / "engines"


def onnxruntime_missing() -> Optional[str]:
    """Why the onnxruntime engine cannot run here (a package that cannot be imported), or None."""
    for package in ("onnxruntime", "onnx"):
        try:
            __import__(package)
        except ImportError as err:
            return f"the {package} package, which cannot be imported ({err})"
    return None


def check_engine(engine: str, device: Union[str, torch.device, None] = None,
                 option: str = "engine") -> str:
    """``engine`` if it is one of ``ENGINES`` and can run on ``device`` (when given), else a
    ValueError naming ``option`` and saying how to fix it."""
    if not isinstance(engine, str) or engine not in ENGINES:
        raise ValueError(f"{option} is {engine!r}, which is not an engine: choose one of "
                         f"{', '.join(ENGINES)} (auto: ONNX Runtime on the CPU when installed, "
                         f"else PyTorch; eager: PyTorch)")
    if engine == "onnxruntime":
        if device is not None and torch.device(device).type != "cpu":
            raise ValueError(f"{option} is 'onnxruntime', which runs on the CPU only, but the "
                             f"device is {device}; use auto or eager (on a GPU PyTorch runs the "
                             f"model in float16)")
        missing = onnxruntime_missing()
        if missing:
            raise ValueError(f"{option} is 'onnxruntime', which needs {missing}; install it with "
                             f"{INSTALL}, or use auto or eager")
    return engine


def tower_bytes(backbone: "ClipBackbone") -> int:
    """Bytes of the image tower's weights and buffers (what an exported graph holds)."""
    tensors = list(backbone.model.visual.parameters()) + list(backbone.model.visual.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


def auto_choice(backbone: "ClipBackbone") -> Tuple[str, str]:
    """What ``auto`` picks for ``backbone`` -> (engine, why, in words for the log)."""
    on_cpu = torch.device(backbone.device).type == "cpu"
    return planned_engine("auto", backbone.device, tower_bytes(backbone) if on_cpu else None,
                          backbone.precision)


def planned_engine(engine: str, device: Union[str, torch.device, None],
                   tower_size: Optional[int] = None, precision: str = "float16"
                   ) -> Tuple[str, str]:
    """The engine ``load_clip(..., engine=engine)`` will run on ``device`` -> (engine, why),
    without loading a model (feature stores are found by it). ``tower_size``: bytes of the
    image tower's weights, when known (towers too large for one ONNX file stay eager)."""
    device = torch.device(device if device is not None else
                          ("cuda" if torch.cuda.is_available() else "cpu"))
    if engine != "auto":
        return check_engine(engine, device), "asked for"
    if device.type != "cpu":
        return "eager", f"on {device} PyTorch runs the model in {precision}"
    chosen = os.environ.get(ENV, "").strip()
    if chosen and chosen != "auto":
        return check_engine(chosen, device, option=f"${ENV}"), f"${ENV}={chosen}"
    missing = onnxruntime_missing()
    if missing:
        return "eager", f"the CPU engine needs {missing}; {INSTALL} encodes faster"
    if tower_size is not None and tower_size > MAX_GRAPH_BYTES:
        return "eager", (f"the image tower's {tower_size / 1024 ** 3:.1f} GB of weights do not "
                         f"fit in one ONNX file (2 GB)")
    import onnxruntime

    return "onnxruntime", f"CPU, onnxruntime {onnxruntime.__version__} installed"


def apply_engine(backbone: "ClipBackbone", engine: str = "auto",
                 cache_dir: Union[str, Path, None] = None) -> str:
    """Make ``backbone.encode_images`` run on ``engine`` (see the module doc) and log one line
    saying which and why. ``cache_dir``: where graphs are cached (default :func:`engines_dir`).
    Sets ``backbone.engine`` and returns it."""
    check_engine(engine, backbone.device)
    asked = engine
    if engine == "auto":
        engine, why = auto_choice(backbone)
    else:
        why = "asked for"
    backbone._engine_tokens, backbone.engine = None, "eager"
    if engine == "onnxruntime":
        try:
            backbone._engine_tokens = load_graph(backbone, cache_dir)
            backbone.engine = "onnxruntime"
        except GraphError as err:
            if asked != "auto":
                raise
            log.warning("%s; using PyTorch (set engine to eager to skip the export)", err)
            why = "the ONNX graph failed"
    log.info("%s: image tower runs on %s (%s)", backbone.name, backbone.engine, why)
    return backbone.engine


# --------------------------------------------------------------------------- onnxruntime

class GraphError(RuntimeError):
    """An image tower could not be exported to ONNX, or its graph does not compute its tokens."""


def graph_path(backbone: "ClipBackbone", cache_dir: Union[str, Path, None] = None) -> Path:
    """The cached graph of ``backbone``: ``<cache_dir>/<name>-<hash of identity>-v<GRAPH_VERSION>-
    onnxruntime<version>-torch<version>.onnx`` (a new torch or onnxruntime exports again)."""
    import onnxruntime

    key = f"{type(backbone).__name__}|{backbone.identity}|{backbone.input_resolution}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    name = (f"{paths.slug(backbone.name)}-{digest}-v{GRAPH_VERSION}-"
            f"onnxruntime{onnxruntime.__version__}-torch{paths.slug(torch.__version__)}.onnx")
    return Path(cache_dir if cache_dir is not None else engines_dir()).expanduser() / name


class _Tokens(nn.Module):
    """``backbone._tokens`` as a module for the exporter (the model is registered so that its
    weights become the graph's named initialisers). In eval mode: the exporter puts the module
    back into the mode it found it in, and training mode would reach the frozen model's
    BatchNorms."""

    def __init__(self, backbone: "ClipBackbone"):
        super().__init__()
        self.model = backbone.model
        self.tokens = backbone._tokens
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tokens(x)


def _probe(backbone: "ClipBackbone", n: int, seed: int) -> torch.Tensor:
    """A seeded random model input [n, 3, S, S], as ``_model_input`` makes it."""
    g = torch.Generator().manual_seed(seed)
    s = backbone.input_resolution
    return backbone._model_input(torch.rand(n, 3, s, s, generator=g))


@torch.no_grad()
def export_graph(backbone: "ClipBackbone", path: Union[str, Path]) -> Path:
    """Export ``backbone._tokens`` (input ``images`` [n, 3, S, S] -> ``tokens`` [n, 1 + HW, C],
    n dynamic) to the ONNX file ``path``, written to a temporary file in the same folder and
    renamed into place, so that ``path`` is either absent or complete. GraphError on failure."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fastpath = torch.backends.mha.get_fastpath_enabled()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # nn.MultiheadAttention's fused inference kernel (open_clip's batch-first ViTs take it)
        # has no ONNX form; its plain form computes the same.
        torch.backends.mha.set_fastpath_enabled(False)
        with warnings.catch_warnings():   # the exporter's deprecation and tracer warnings
            warnings.simplefilter("ignore")
            torch.onnx.export(_Tokens(backbone), (_probe(backbone, 2, seed=0),), str(tmp),
                              dynamo=False, opset_version=17, input_names=["images"],
                              output_names=["tokens"],
                              dynamic_axes={"images": {0: "n"}, "tokens": {0: "n"}})
        os.replace(tmp, path)
    except Exception as err:  # noqa: BLE001 - the exporter raises many kinds
        raise GraphError(f"{backbone.name}: exporting the image tower to ONNX failed "
                         f"({type(err).__name__}: {err})") from err
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        with contextlib.suppress(OSError):         # absent, or no folder to be in
            tmp.unlink()
    return path


class OnnxRuntimeTokens:
    """An ONNX Runtime session on an exported graph: model input [N, 3, S, S] float32 (CPU) ->
    tokens [N, 1 + HW, C] float32, as ``backbone._tokens``. ``threads``: intra-op threads."""

    def __init__(self, path: Union[str, Path], threads: int):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3                  # errors only
        self.path = Path(path)
        self.session = onnxruntime.InferenceSession(str(path), options,
                                                    providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        images = x.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(self.session.run(None, {"images": images})[0])


@torch.no_grad()
def _open_checked(backbone: "ClipBackbone", path: Path) -> OnnxRuntimeTokens:
    """Open ``path`` and check it against PyTorch on one image (also a batch size other than
    the export's, so a batch axis fixed by mistake shows); GraphError if it disagrees."""
    runner = OnnxRuntimeTokens(path, threads=torch.get_num_threads())
    x = _probe(backbone, 1, seed=1)
    want = backbone._tokens(x).float()
    got = runner(x)
    if got.shape != want.shape:
        raise GraphError(f"{path} gives tokens of shape {tuple(got.shape)}, PyTorch "
                         f"{tuple(want.shape)}")
    diff = float((got - want).abs().max())
    scale = float(want.abs().max().clamp_min(1e-3))
    if not diff <= CHECK_TOLERANCE * scale:
        raise GraphError(f"{path} gives tokens that differ from PyTorch's by up to {diff:.3g} "
                         f"(largest token value {scale:.3g})")
    return runner


def load_graph(backbone: "ClipBackbone", cache_dir: Union[str, Path, None] = None
               ) -> OnnxRuntimeTokens:
    """The checked ONNX Runtime session of ``backbone``'s image tower: the cached graph
    (:func:`graph_path`), exported first if there is none; a cached graph that cannot be
    opened or disagrees with PyTorch is moved to ``<graph>.bad`` with a warning and exported
    again. GraphError if the export fails or the fresh graph disagrees."""
    path = graph_path(backbone, cache_dir)
    if path.is_file():
        try:
            return _open_checked(backbone, path)
        except Exception as err:  # noqa: BLE001 - onnxruntime raises its own kinds for bad files
            bad = path.with_name(path.name + ".bad")
            try:
                os.replace(path, bad)
            except OSError as move_err:
                raise GraphError(f"{backbone.name}: the cached ONNX graph {path} is unusable "
                                 f"({err}) and cannot be moved aside ({move_err})") from err
            log.warning("%s: the cached ONNX graph is unusable (%s: %s); moved it to %s and "
                        "exporting it again", backbone.name, type(err).__name__, err, bad)
    log.info("%s: exporting the image tower to ONNX once, to %s", backbone.name, path)
    export_graph(backbone, path)
    try:
        return _open_checked(backbone, path)
    except Exception as err:  # noqa: BLE001 - as above
        path.unlink(missing_ok=True)
        raise GraphError(f"{backbone.name}: the exported ONNX graph is unusable "
                         f"({type(err).__name__}: {err})") from err
