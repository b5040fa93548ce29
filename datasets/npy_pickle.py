"""Read a ``.npy`` file holding one pickled dict of arrays without trusting it.

``np.load(path, allow_pickle=True)`` runs whatever the pickle names and builds whatever array
it declares. Here an unpickler names only numpy's array, dtype and scalar builders and
Python's plain containers (any other global is refused before it is imported), and no array
is built from the pickle's own calls: numpy's ``_reconstruct`` and the array's
``__setstate__`` are replaced by :class:`_Declared`, which records what the file declares
(shape, dtype, bytes) and checks it against :data:`MAX_OBJECT_BYTES` (for all the arrays of a
file together) and against the data the file actually holds, before one byte is allocated.
The arrays are built afterwards, each from the bytes the file holds. So a 188-byte file
declaring a (250,000,000 x 3) float64 array is refused at once (measured with
``scripts/bench_hostile.py``), and an object array whose state lists fewer items than its
shape declares (which crashes numpy's own ``__setstate__``) is a corrupt file, not a
segmentation fault.
"""
from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
from ..core.words import count

#: what one object file may declare, all arrays together; OpenShape's objects hold about
#: 0.3 MB (xyz and rgb 10,000 x 3 float32, a few feature vectors)
MAX_OBJECT_BYTES = 64 * 2**20

_SCALAR = np.float32(0).__reduce__()[0]
_CORES = ("numpy.core.multiarray", "numpy._core.multiarray")   # numpy 1 and numpy 2 names
#: every global a pickled object file may name (numpy's array, dtype and scalar builders)
ALLOWED_GLOBALS = frozenset({("numpy", "ndarray"), ("numpy", "dtype"),
                             *((core, name) for core in _CORES for name in ("_reconstruct", "scalar"))})


class _Refused(pickle.UnpicklingError):
    """A file that declares something it may not; the message is completed with the path."""


class _NdarrayName:
    """Stands for ``numpy.ndarray`` as the pickle names it: accepted as ``_reconstruct``'s
    first argument, never called."""

    def __new__(cls, *args, **kwargs):
        raise _Refused("calls numpy.ndarray directly (np.save never does); refused")


class _Declared:
    """An array as a pickle declares it, checked and built only after unpickling."""

    def __init__(self, budget: list) -> None:
        self.budget = budget
        self.array = None
        self.state = None

    def declare(self, shape, dtype) -> int:
        """Count ``shape`` x ``dtype`` against the file's budget; -> the element count."""
        if not isinstance(shape, tuple) or len(shape) > 32 or not all(
                isinstance(d, (int, np.integer)) and d >= 0 for d in shape):
            raise _Refused(f"declares an array of shape {shape!r}, not a tuple of sizes")
        if not isinstance(dtype, np.dtype):
            raise _Refused(f"declares an array of dtype {type(dtype).__name__}, not a numpy dtype")
        items = math.prod(int(d) for d in shape)
        nbytes = items * dtype.itemsize
        self.budget[0] += nbytes
        if self.budget[0] > MAX_OBJECT_BYTES:
            others = (f"; {self.budget[0] / 1e6:,.1f} MB with the file's other arrays"
                      if self.budget[0] != nbytes else "")
            raise _Refused(f"declares a {dtype} array of shape {tuple(int(d) for d in shape)} "
                           f"({nbytes / 1e6:,.1f} MB{others}), more than the {MAX_OBJECT_BYTES / 2**20:.0f} "
                           f"MiB an object file may declare (a real object holds well under 1 MB); "
                           f"refused before allocating it: the file is corrupt or hostile")
        return items

    def __setstate__(self, state) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise _Refused("holds an array whose state is not numpy's (version, shape, dtype, "
                           "fortran, data)")
        shape, dtype, fortran, data = state[-4:]
        items = self.declare(shape, dtype)
        nbytes = items * dtype.itemsize
        if dtype.hasobject:
            if not isinstance(data, list) or len(data) != items:
                raise _Refused(f"declares an object array of {count(items, 'item')} but holds "
                               f"{len(data) if isinstance(data, list) else type(data).__name__}")
        elif not isinstance(data, (bytes, bytearray)) or len(data) != nbytes:
            have = len(data) if isinstance(data, (bytes, bytearray)) else type(data).__name__
            raise _Refused(f"declares a {dtype} array of shape {shape} ({count(nbytes, 'byte')}) "
                           f"but holds {count(have, 'byte')} of data")
        self.state = (tuple(int(d) for d in shape), dtype, bool(fortran), data)

    def build(self) -> np.ndarray:
        if self.state is None:
            raise _Refused("holds an array without its data")
        shape, dtype, fortran, data = self.state
        order = "F" if fortran else "C"
        if dtype.hasobject:
            flat = np.empty(len(data), dtype=object)
            for i, item in enumerate(data):
                flat[i] = built(item)
            return flat.reshape(shape, order=order)
        return np.frombuffer(data, dtype=dtype).reshape(shape, order=order).copy(order="A")


def built(value):
    """``value`` with every :class:`_Declared` array in it (in dicts, lists, tuples and
    object arrays) built."""
    if isinstance(value, _Declared):
        return value.build()
    if isinstance(value, dict):
        return {built(k): built(v) for k, v in value.items()}
    if isinstance(value, list):
        return [built(v) for v in value]
    if isinstance(value, tuple):
        return tuple(built(v) for v in value)
    return value


class _ArrayUnpickler(pickle.Unpickler):
    """Names numpy's array, dtype and scalar builders only (numpy 2 writes ``numpy._core``,
    numpy 1 ``numpy.core``); any other global is refused before it is imported or called."""

    def __init__(self, fh, path: Path) -> None:
        super().__init__(fh)
        self.path = path
        self.budget = [0]
        self.allowed = {("numpy", "ndarray"): _NdarrayName, ("numpy", "dtype"): np.dtype}
        for core in _CORES:
            self.allowed[(core, "_reconstruct")] = self._reconstruct
            self.allowed[(core, "scalar")] = self._scalar

    def _reconstruct(self, subtype, shape, dtype) -> _Declared:
        if subtype is not _NdarrayName:
            raise _Refused(f"asks _reconstruct for a {subtype!r}, not numpy.ndarray; refused")
        declared = _Declared(self.budget)
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            raise _Refused(f"declares an array of dtype {dtype!r}, not a numpy dtype") from None
        declared.declare(shape, dtype)       # np.save declares (0,) here, the shape in the state
        return declared

    def _scalar(self, dtype, *data):
        if not isinstance(dtype, np.dtype) or dtype.itemsize > 64:
            raise _Refused(f"declares a scalar of dtype {dtype!r}; refused")
        return _SCALAR(dtype, *data)

    def find_class(self, module: str, name: str):
        found = self.allowed.get((module, name)) if (module, name) in ALLOWED_GLOBALS else None
        if found is None:
            raise _Refused(f"asks to build {module}.{name}; refused: only numpy arrays and plain "
                           f"Python data are read from object files")
        return found


def load_npy_dict(path: Path) -> dict:
    """A ``.npy`` file holding one pickled dict (``np.save(path, {...})``) -> that dict, read
    as the module doc says. ValueError naming the file for anything else: a refused global
    (nothing of the file is executed), arrays declaring more than :data:`MAX_OBJECT_BYTES`, a
    plain numeric array instead of a dict, a truncated or corrupt file."""
    path = Path(path)
    with open(path, "rb") as fh:
        try:
            version = np.lib.format.read_magic(fh)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read_header is None:
                raise ValueError(f".npy format version {version} (expected 1.0 or 2.0)")
            shape, _, dtype = read_header(fh)
        except (ValueError, OSError, EOFError) as err:
            raise ValueError(f"{path} is not a readable .npy file ({err}); re-extract it") from None
        if dtype != np.dtype(object) or shape != ():
            raise ValueError(f"{path} holds a {dtype} array of shape {shape}, not a pickled dict "
                             f"(OpenShape's per-object files hold {{'xyz': ..., 'rgb': ...}})")
        try:
            obj = built(_ArrayUnpickler(fh, path).load())
        except _Refused as err:
            raise ValueError(f"{path} {err}") from None
        except Exception as err:      # a damaged pickle fails in many ways (EOF, Overflow, numpy's own)
            raise ValueError(f"{path} is truncated or corrupt ({type(err).__name__}: {err}); "
                             f"re-extract it") from None
    value = obj.item() if isinstance(obj, np.ndarray) and obj.shape == () else obj
    if not isinstance(value, dict):
        raise ValueError(f"{path} holds a pickled {type(value).__name__}, not a dict")
    return value
