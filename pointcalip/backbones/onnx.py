"""The onnxruntime engine's workings: an image tower's token function exported to an ONNX
graph, cached, checked against PyTorch and run by ONNX Runtime.

The tower's own token computation (``Tower.tokens``: model input [N, 3, S, S] ->
[N, 1 + HW, C], every token, not normalised) is exported once per checkpoint with torch's
TorchScript-based ONNX exporter (``dynamo=False``: one self-contained file in seconds, no
further dependency) with a dynamic batch axis, written atomically (a temporary file renamed
into place) to ``<POINTCALIP_HOME>/engines/`` (:func:`graph_path`), and run by an
``onnxruntime.InferenceSession`` with ``torch.get_num_threads()`` threads. Each time a graph is
opened it is checked against PyTorch on one image; a cached graph that cannot be read or
disagrees is moved aside (``.bad``) with a warning and exported again. Like every engine, it
gets a :class:`pointcalip.backbones.tower.Tower`, never a backbone. Importing this module
imports neither torch nor onnxruntime (engine checks read :func:`onnxruntime_missing` and
:data:`MAX_GRAPH_BYTES` while a config is checked); its functions import them.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import warnings
from pathlib import Path
from typing import Optional, Union

from pointcalip.core import paths

from .tower import Tower

log = logging.getLogger(__name__)

#: Part of cached graphs' names: bump it when the token function of any backbone computes
#: otherwise.
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


class GraphError(RuntimeError):
    """An image tower could not be exported to ONNX, or its graph does not compute its tokens."""


def graph_path(tower: Tower, cache_dir: Union[str, Path, None] = None) -> Path:
    """The cached graph of ``tower``: ``<cache_dir>/<name>-<hash of its key>-v<GRAPH_VERSION>-
    onnxruntime<version>-torch<version>.onnx`` (a new torch or onnxruntime exports again)."""
    import onnxruntime
    import torch

    digest = hashlib.sha256(tower.key.encode()).hexdigest()[:16]
    name = (f"{paths.slug(tower.name)}-{digest}-v{GRAPH_VERSION}-"
            f"onnxruntime{onnxruntime.__version__}-torch{paths.slug(torch.__version__)}.onnx")
    return Path(cache_dir if cache_dir is not None else engines_dir()).expanduser() / name


def _as_module(tower: Tower):
    """``tower.tokens`` as an ``nn.Module`` for the exporter (the model is registered so that
    its weights become the graph's named initialisers). In eval mode: the exporter puts the
    module back into the mode it found it in, and training mode would reach the frozen model's
    BatchNorms."""
    from torch import nn

    class Tokens(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = tower.weights
            self.tokens = tower.tokens
            self.eval()

        def forward(self, x):
            return self.tokens(x)

    return Tokens()


def export_graph(tower: Tower, path: Union[str, Path]) -> Path:
    """Export ``tower.tokens`` (input ``images`` [n, 3, S, S] -> ``tokens`` [n, 1 + HW, C],
    n dynamic) to the ONNX file ``path``, written to a temporary file in the same folder and
    renamed into place, so that ``path`` is either absent or complete. GraphError on failure."""
    import torch

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fastpath = torch.backends.mha.get_fastpath_enabled()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # nn.MultiheadAttention's fused inference kernel (open_clip's batch-first ViTs take it)
        # has no ONNX form; its plain form computes the same.
        torch.backends.mha.set_fastpath_enabled(False)
        with warnings.catch_warnings(), torch.no_grad():  # the exporter's deprecation and
            warnings.simplefilter("ignore")               # tracer warnings
            torch.onnx.export(_as_module(tower), (tower.probe(2, 0),), str(tmp),
                              dynamo=False, opset_version=17, input_names=["images"],
                              output_names=["tokens"],
                              dynamic_axes={"images": {0: "n"}, "tokens": {0: "n"}})
        os.replace(tmp, path)
    except Exception as err:  # noqa: BLE001 - the exporter raises many kinds
        raise GraphError(f"{tower.name}: exporting the image tower to ONNX failed "
                         f"({type(err).__name__}: {err})") from err
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        with contextlib.suppress(OSError):         # absent, or no folder to be in
            tmp.unlink()
    return path


class OnnxRuntimeTokens:
    """An ONNX Runtime session on an exported graph: model input [N, 3, S, S] float32 (CPU) ->
    tokens [N, 1 + HW, C] float32, as ``Tower.tokens``. ``threads``: intra-op threads."""

    def __init__(self, path: Union[str, Path], threads: int):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3                  # errors only
        self.path = Path(path)
        self.session = onnxruntime.InferenceSession(str(path), options,
                                                    providers=["CPUExecutionProvider"])

    def __call__(self, x: "torch.Tensor") -> "torch.Tensor":
        import torch

        images = x.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(self.session.run(None, {"images": images})[0])


def _open_checked(tower: Tower, path: Path) -> OnnxRuntimeTokens:
    """Open ``path`` and check it against PyTorch on one image (also a batch size other than
    the export's, so a batch axis fixed by mistake shows); GraphError if it disagrees."""
    import torch

    runner = OnnxRuntimeTokens(path, threads=torch.get_num_threads())
    with torch.no_grad():
        x = tower.probe(1, 1)
        want = tower.tokens(x).float()
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


def load_graph(tower: Tower, cache_dir: Union[str, Path, None] = None
               ) -> OnnxRuntimeTokens:
    """The checked ONNX Runtime session of ``tower``: the cached graph
    (:func:`graph_path`), exported first if there is none; a cached graph that cannot be
    opened or disagrees with PyTorch is moved to ``<graph>.bad`` with a warning and exported
    again. GraphError if the export fails or the fresh graph disagrees."""
    path = graph_path(tower, cache_dir)
    if path.is_file():
        try:
            return _open_checked(tower, path)
        except Exception as err:  # noqa: BLE001 - onnxruntime raises its own kinds for bad files
            bad = path.with_name(path.name + ".bad")
            try:
                os.replace(path, bad)
            except OSError as move_err:
                raise GraphError(f"{tower.name}: the cached ONNX graph {path} is unusable "
                                 f"({err}) and cannot be moved aside ({move_err})") from err
            log.warning("%s: the cached ONNX graph is unusable (%s: %s); moved it to %s and "
                        "exporting it again", tower.name, type(err).__name__, err, bad)
    log.info("%s: exporting the image tower to ONNX once, to %s", tower.name, path)
    export_graph(tower, path)
    try:
        return _open_checked(tower, path)
    except Exception as err:  # noqa: BLE001 - as above
        path.unlink(missing_ok=True)
        raise GraphError(f"{tower.name}: the exported ONNX graph is unusable "
                         f"({type(err).__name__}: {err})") from err
