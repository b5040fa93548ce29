"""What runs CLIP's image tower: a registry of engines (:data:`ENGINES`), PyTorch ("eager") or,
on the CPU, ONNX Runtime.

Encoding the projected views is nearly all of a run's time. On the CPU, ONNX Runtime computes
the same tokens as PyTorch (unit tokens within ~2e-7) faster: ~1.25x for RN50 and ~1.05x for
ViT-B/32 over PyTorch in the same chunks of 8 images, on 2 cores (``python
scripts/bench_engine.py``). It is an optional dependency: ``pip install 'pointcalip[cpu-fast]'``
(onnxruntime, and onnx, which torch's exporter needs).

Engines (``load_clip(..., engine=)``, ``ClipBackbone.set_engine``, the ``engine`` config key):

- ``auto`` (default): ``onnxruntime`` on the CPU when it is installed and the image tower fits
  in one ONNX file (< 2 GB of weights), else ``eager``; on a GPU always ``eager`` (float16).
  ``$POINTCALIP_ENGINE`` (``eager`` or ``onnxruntime``) replaces this choice on the CPU. A
  graph that cannot be exported or checked falls back to ``eager`` with a warning.
- ``eager``: the PyTorch model itself.
- ``onnxruntime``: always; an error if it is not installed or the device is not the CPU
  (:mod:`pointcalip.backbones.onnx` says how graphs are exported, cached and checked).

An engine never sees a backbone: it gets a :class:`Tower` (the function computing the tokens,
the model holding their weights, a probe input, names) and returns a function computing the
same tokens, or None for the tower's own function. Every engine name, choice and check comes
from :data:`ENGINES`; :func:`check_engine` is the one place a name is checked. Listing and
checking engines imports neither torch nor onnxruntime (config checks call them): the engines'
targets import what they run on when they run.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Tuple, Union

from pointcalip.core.registry import Registry

from .onnx import MAX_GRAPH_BYTES, GraphError, load_graph, onnxruntime_missing
from .tower import Tokens, Tower

if TYPE_CHECKING:  # pragma: no cover
    import torch

log = logging.getLogger(__name__)

#: Environment variable that replaces ``auto``'s choice on the CPU (``eager`` or ``onnxruntime``).
ENV = "POINTCALIP_ENGINE"
INSTALL = "pip install 'pointcalip[cpu-fast]'"

def _eager(tower: Tower, cache_dir: Union[str, Path, None]) -> Optional[Tokens]:
    return None                                  # the tower's own tokens


def _device_type(device: Union[str, "torch.device"]) -> str:
    """``torch.device(device).type`` without importing torch: "cpu", "cuda", "mps", ..."""
    return getattr(device, "type", None) or str(device).partition(":")[0].strip()


#: The engines, in the order of their choices. The target of an engine that runs the tower is
#: ``prepare(tower, cache_dir) -> tokens function or None``; of one that ``chooses`` (auto),
#: ``choose(tower) -> (engine, why)``. Each declares ``summary`` (for errors and help),
#: ``cpu_only`` and ``missing()`` (why it cannot run here, or None).
ENGINES = Registry("engine")


def _others(engine: str) -> str:
    """The engines to suggest instead of ``engine``: those that run anywhere ("auto or eager")."""
    names = [e.name for e in ENGINES.entries() if e.name != engine and not e.cpu_only]
    return " or ".join(names)


def check_engine(engine: str, device: Union[str, torch.device, None] = None,
                 option: str = "engine") -> str:
    """``engine`` if it is a registered engine that can run on ``device`` (when given) with the
    packages installed here, else a ValueError naming ``option`` and saying how to fix it."""
    if not isinstance(engine, str) or engine not in ENGINES:
        meanings = "; ".join(f"{e.name}: {e.summary}" for e in ENGINES.entries())
        raise ValueError(f"{option} is {engine!r}, which is not an engine: choose one of "
                         f"{', '.join(ENGINES.names())} ({meanings})")
    entry = ENGINES[engine]
    if entry.cpu_only and device is not None and _device_type(device) != "cpu":
        raise ValueError(f"{option} is {engine!r}, which runs on the CPU only, but the "
                         f"device is {device}; use {_others(engine)} (on a GPU PyTorch runs the "
                         f"model in float16)")
    missing = entry.missing()
    if missing:
        raise ValueError(f"{option} is {engine!r}, which needs {missing}; install it with "
                         f"{INSTALL}, or use {_others(engine)}")
    return engine


def available_engines() -> List[str]:
    """The engines that can run on the CPU here (their packages installed), ``auto`` aside."""
    return [e.name for e in ENGINES.entries() if not e.chooses and not e.missing()]


def auto_choice(tower: Tower) -> Tuple[str, str]:
    """What ``auto`` picks for ``tower`` -> (engine, why, in words for the log)."""
    on_cpu = _device_type(tower.device) == "cpu"
    return planned_engine("auto", tower.device, tower.nbytes if on_cpu else None,
                          tower.precision)


def planned_engine(engine: str, device: Union[str, torch.device, None],
                   tower_size: Optional[int] = None, precision: str = "float16"
                   ) -> Tuple[str, str]:
    """The engine ``load_clip(..., engine=engine)`` will run on ``device`` -> (engine, why),
    without loading a model (feature stores are found by it). ``tower_size``: bytes of the
    image tower's weights, when known (towers too large for one ONNX file stay eager)."""
    from .devices import default_device     # imports torch (is CUDA here?)

    device = default_device(device)
    if not ENGINES[check_engine(engine, device)].chooses:
        return engine, "asked for"
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


ENGINES.register("auto", auto_choice, chooses=True, cpu_only=False, missing=lambda: None,
                 summary="ONNX Runtime on the CPU when installed, else PyTorch")
ENGINES.register("eager", _eager, chooses=False, cpu_only=False, missing=lambda: None,
                 summary="PyTorch")
ENGINES.register("onnxruntime", load_graph, chooses=False, cpu_only=True,
                 missing=onnxruntime_missing, summary="ONNX Runtime, CPU only")


def select_engine(tower: Tower, engine: str = "auto", cache_dir: Union[str, Path, None] = None
                  ) -> Tuple[str, Optional[Tokens]]:
    """The engine to run ``tower`` on (see the module doc), prepared -> (its name, the function
    computing the tokens, or None for ``tower.tokens`` itself), and one log line saying which
    and why. ``cache_dir``: where graphs are cached (default ``<POINTCALIP_HOME>/engines``)."""
    check_engine(engine, tower.device)
    asked = engine
    if ENGINES[engine].chooses:
        engine, why = ENGINES[engine].target(tower)
    else:
        why = "asked for"
    try:
        runner = ENGINES[engine].target(tower, cache_dir)
    except GraphError as err:
        if not ENGINES[asked].chooses:
            raise
        log.warning("%s; using PyTorch (set engine to eager to skip the export)", err)
        runner, engine, why = None, "eager", "the ONNX graph failed"
    log.info("%s: image tower runs on %s (%s)", tower.name, engine, why)
    return engine, runner
