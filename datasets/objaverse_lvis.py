"""Objaverse-LVIS as OpenShape evaluates it: 1,156 LVIS categories, test split only.

The published layout (OpenShape's data on Hugging Face, ``OpenShape/openshape-training-data``:
``meta_data.zip`` and the ``Objaverse/000-xxx.tar.gz`` archives, extracted side by side)::

    objaverse_lvis/                                   (the installed folder)
      meta_data/split/lvis.json                       [{"uid", "category", "data_path"}, ...]
      objaverse-processed/merged_for_training_final/Objaverse/<group>/<uid>.npy

Facts taken from OpenShape's code (github.com/Colin97/OpenShape_code, read, not copied):

* ``src/data.py`` (class ``ObjaverseLVIS``): the split is ``json.load`` of ``lvis.json``, a
  list of entries with ``data_path``, ``category`` and ``uid``; the label of an entry is the
  index of its category in ``sorted(np.unique(categories))`` (code-point order: upper case
  first, e.g. ``"Bible"`` before ``"aerosol_can"``). ``src/extract_lvis_feat.py`` orders the
  text features the same way (``sorted`` keys of Objaverse's LVIS annotations) and encodes the
  raw category name (``"bow_(weapon)"``) with CLIP.
* Each object is ``np.load(data_path, allow_pickle=True).item()``: a pickled dict holding
  ``xyz`` float [10000, 3] and ``rgb`` [10000, 3] in [0, 1], plus (README "Training Data")
  ``dataset``, ``group``, ``id``, image/text features (arrays), texts and captions (strings).
* ``src/configs/train.yaml`` (section ``objaverse_lvis``): ``num_points: 10000``,
  ``y_up: True``, ``normalize: True``. ``src/data.py`` then takes ``random.sample`` of
  ``num_points`` of the ``n`` stored points (with 10000 of 10000: every point, in a random
  order), swaps columns y and z when ``y_up`` (``xyz[:, [1, 2]] = xyz[:, [2, 1]]``, a mirror,
  not a rotation), and normalises (``src/utils/data.py`` ``normalize_pc``: subtract the mean,
  divide by the largest norm, i.e. centre + unit sphere).
* The README's checkpoint table gives the gravity axis of the released models as z, which
  ``y_up: True`` produces from the stored clouds: the stored clouds are y-up (Objaverse's glTF
  meshes are y-up), like the ModelNet40 h5 clouds.

Here: ``up_axis="y"`` (default) serves the clouds as stored, y up, the orientation the shipped
projectors expect (``projection/views.py``: the side views circle y, the ModelNet40 up axis);
``up_axis="z"`` swaps y and z exactly as OpenShape does. ``num_points=10000`` with
``sampling="first"`` serves every stored point (the order does not matter to a projection);
``normalize=True`` is OpenShape's centre + unit sphere, after sampling, as there.

Objects are read with :func:`~.npy_pickle.load_npy_dict`, never with
``np.load(allow_pickle=True)``: an unpickler that can build numpy arrays, dtypes and scalars and
Python's plain containers, and refuses every other global (a file that would call
``os.system`` is refused unread); the arrays a file declares are bounded before any is
allocated (:data:`~.npy_pickle.MAX_OBJECT_BYTES`, 64 MiB per object file).

Class names: the categories mapped to what CLIP reads by ``configs/data/objaverse_lvis_names.yaml``
(``names``: category -> name) and, for the categories it does not list, the rule of
:func:`prompt_name`. There is no TRAIN split: the benchmark tunes on a seeded class-stratified
slice of these clouds or takes its settings from another run.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from ..core.identity import files_identity
from ..core.paths import confined
from ..prompts import check_classnames, configs_root, read_yaml
from . import h5utils
from .base import CloudSet
from .npy_pickle import MAX_OBJECT_BYTES, load_npy_dict  # noqa: F401 (re-exported)
from ..core.words import count

log = logging.getLogger(__name__)

FOLDER = "objaverse_lvis"
SPLIT_FILE = "meta_data/split/lvis.json"
OBJECTS = "objaverse-processed"          # data paths are read from this folder name on
ENTRY_KEYS = ("uid", "category", "data_path")
UP_AXES = ("y", "z")
STORED_POINTS = 10000                    # points per object in OpenShape's files
NAMES_FILE = "data/objaverse_lvis_names.yaml"
_HINT = ("get OpenShape's meta_data.zip and Objaverse/*.tar.gz (huggingface.co/datasets/OpenShape/"
         "openshape-training-data), extract them into one folder and run "
         "`pointcalip download objaverse_lvis --from FOLDER`")

def read_xyz(path: Path, uid: str) -> np.ndarray:
    """The ``xyz`` of one object file: float32 ``[P, 3]``, finite; ValueError naming the file and
    the uid when it is missing, of another shape or type, or holds NaN/inf."""
    where = f"Objaverse-LVIS object {uid} ({path})"
    if not Path(path).is_file():
        raise FileNotFoundError(f"{where} is missing; {_HINT}")
    try:
        data = load_npy_dict(path)
    except ValueError as err:                              # the message names the file
        raise ValueError(f"Objaverse-LVIS object {uid}: {err}") from None
    xyz = data.get("xyz")
    if xyz is None:
        raise ValueError(f"{where} has no 'xyz' key (keys: {sorted(map(str, data))[:8]})")
    if not isinstance(xyz, np.ndarray) or xyz.ndim != 2 or xyz.shape[1] != 3 or not len(xyz) \
            or not (np.issubdtype(xyz.dtype, np.floating) or np.issubdtype(xyz.dtype, np.integer)):
        what = f"{xyz.dtype} array of shape {xyz.shape}" if isinstance(xyz, np.ndarray) \
            else type(xyz).__name__
        raise ValueError(f"{where} 'xyz' is a {what}; expected numbers [points, 3]")
    with np.errstate(over="ignore"):
        xyz = xyz.astype(np.float32)           # float64 beyond 3.4e38 becomes inf: checked too
    if not np.isfinite(xyz).all():
        bad = int(np.flatnonzero(~np.isfinite(xyz).all(axis=1))[0])
        raise ValueError(f"{where} 'xyz' point {bad} is NaN/inf (as float32); the file is "
                         f"corrupt: re-extract it")
    return xyz


# ----------------------------------------------------------------------------- the split
def find_root(root) -> Path:
    """The installed folder: ``root`` itself (holding ``meta_data/split/lvis.json``) or
    ``root/objaverse_lvis``."""
    root = Path(root).expanduser()
    if not (root / SPLIT_FILE).is_file() and (root / FOLDER / SPLIT_FILE).is_file():
        root = root / FOLDER
    if not (root / SPLIT_FILE).is_file():
        raise FileNotFoundError(f"Objaverse-LVIS split {root / SPLIT_FILE} is missing; {_HINT}")
    return root


def read_split(path: Path) -> list[dict]:
    """``lvis.json``: a list of ``{"uid", "category", "data_path"}`` string entries (other keys
    ignored); ValueError naming the file and the first bad entry."""
    try:
        entries = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); re-extract meta_data.zip") from None
    except RecursionError:
        raise ValueError(f"{path} is nested too deeply (thousands of levels) to be the split; "
                         f"re-extract meta_data.zip") from None
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path} must hold a non-empty list of objects "
                         f"({{'uid', 'category', 'data_path'}}), got {type(entries).__name__}")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ValueError(f"{path} entry {i} is a {type(entry).__name__}, not an object")
        missing = [k for k in ENTRY_KEYS if not isinstance(entry.get(k), str) or not entry[k]]
        if missing:
            raise ValueError(f"{path} entry {i} (uid {entry.get('uid')!r}) lacks "
                             f"{', '.join(missing)} (each entry needs non-empty strings "
                             f"{', '.join(ENTRY_KEYS)})")
    first: dict = {}
    for i, entry in enumerate(entries):
        j = first.setdefault(entry["uid"], i)
        if j != i:
            raise ValueError(f"{path} lists uid {entry['uid']} twice (entries {j} and {i}); an "
                             f"object listed twice would be both tuned on and reported: remove "
                             f"the duplicate entry")
    return entries


def relative_path(data_path: str, where: str = SPLIT_FILE) -> Optional[Path]:
    """Where ``data_path`` (as written in ``lvis.json``, e.g. ``/mnt/data/objaverse-processed/
    merged_for_training_final/Objaverse/000-123/<uid>.npy``) lies inside the folder: from
    ``objaverse-processed/`` on, or as written when relative; None for an absolute path
    without that part. ValueError naming ``where`` (the entry) when the path climbs out of
    ``objaverse-processed/`` or, relative, out of the folder (:func:`~pointcalip.core.paths.
    confined`): checked before anything is read or copied."""
    written = Path(data_path)
    if OBJECTS in written.parts:
        after = written.parts[written.parts.index(OBJECTS) + 1:]
        return confined(OBJECTS, Path(*after) if after else "", where)
    return None if written.is_absolute() else confined(".", written, where).relative_to(".")


def object_path(folder: Path, data_path: str, where: str = SPLIT_FILE) -> Path:
    """The object file of ``data_path``: its copy inside ``folder`` (:func:`relative_path`), or
    the absolute path as written when the folder has none (OpenShape's own setup keeps the
    objects under /mnt/data, apart from meta_data), which must lie in an ``objaverse-processed/``
    folder too. ValueError naming ``where`` for a path that leads anywhere else."""
    rel, written = relative_path(data_path, where), Path(data_path)
    if rel is None:
        raise ValueError(f"{where}: data_path {data_path!r} lies outside any {OBJECTS}/ folder; "
                         f"object files are read only from inside one (give a relative path or "
                         f"one under {OBJECTS}/)")
    if not (folder / rel).is_file() and written.is_absolute():
        elsewhere = Path(*written.parts[:written.parts.index(OBJECTS)]) / rel
        if elsewhere.is_file():
            return elsewhere
    return folder / rel


def _where(split_path, i: int, entry: dict) -> str:
    return f"{split_path} entry {i} (uid {entry.get('uid')})"


def categories_of(entries: Sequence[dict]) -> list[str]:
    """OpenShape's label order: the split's distinct categories, sorted by code point."""
    return sorted({e["category"] for e in entries})


def prompt_name(category: str) -> str:
    """The rule for a category the names file does not list: ``_`` -> space, everything else
    kept, e.g. ``"bow_(weapon)"`` -> ``"bow (weapon)"``, ``"CD_player"`` -> ``"CD player"``.
    The parenthesised qualifier stays: it is what tells LVIS's homonyms apart (a bow weapon, a
    bow ribbon), dropping it would give two classes one prompt, and written as a bare word
    ("bow weapon") it reads as a compound noun."""
    return " ".join(category.replace("_", " ").split())


def load_names(path: Optional[Path] = None) -> dict:
    """``names`` of the names file (default ``configs/data/objaverse_lvis_names.yaml``):
    category -> class name, strings; ValueError naming the file otherwise."""
    path = Path(path) if path is not None else configs_root() / NAMES_FILE
    names = read_yaml(path).get("names") or {}
    bad = [k for k, v in names.items() if not isinstance(k, str) or not isinstance(v, str)
           or not v.strip()] if isinstance(names, dict) else [names]
    if bad:
        raise ValueError(f"{path}: `names` must map each category to a non-empty string; "
                         f"bad entries: {bad[:5]}")
    return names


def release_categories() -> list[str]:
    """The 1,156 categories of OpenShape's split, in label order: the keys of the shipped names
    file (a fact of the release, checked against the catalog's class count by the tests)."""
    return list(load_names(configs_root() / NAMES_FILE))


def class_names(categories: Sequence[str], names: Optional[dict] = None) -> list[str]:
    """Prompt-friendly class names of ``categories`` (same order): the names file's entry, else
    :func:`prompt_name`; checked to give distinct prompts."""
    names = load_names() if names is None else names
    return check_classnames([names.get(c) or prompt_name(c) for c in categories],
                            "Objaverse-LVIS class names")


def check_up_axis(up_axis: str) -> str:
    """``"y"`` or ``"z"``, with an error naming the option."""
    axis = str(up_axis).strip().lower()
    if axis not in UP_AXES:
        raise ValueError(f"Objaverse-LVIS up_axis must be one of {list(UP_AXES)}, got {up_axis!r}: "
                         f"'y' serves the stored clouds (y up, as ModelNet40 and the shipped "
                         f"projectors), 'z' swaps y and z as OpenShape does")
    return axis


class ObjaverseLVIS(CloudSet):
    """OpenShape's Objaverse-LVIS evaluation split: one labelled cloud per entry of
    ``lvis.json``, read from its object file when asked (``points``), with the surface of the
    other datasets (``len``, ``ds[i]``, ``points``, ``labels``, ``classnames``, ``settings``).

    Args:
        root: the installed folder (holding ``meta_data/split/lvis.json``) or its parent.
        split: ``"test"`` only (the release has no other split).
        num_points: points per cloud (default 10000: every stored point, as OpenShape).
        sampling: ``"first"`` (the first ``num_points`` stored points) or ``"fps"``.
        up_axis: ``"y"`` (as stored; what the shipped projectors expect) or ``"z"`` (y and z
            swapped, OpenShape's ``y_up: True``).
        normalize: centre + unit-sphere scale each served cloud (OpenShape's ``normalize_pc``).
        categories: the label order (default: the split's categories, sorted as OpenShape
            does); an entry of another category is an error naming it.
        names: category -> class name (default: the names file, then the rule).
        in_memory: accepted for the other datasets' signature; objects are read on demand.

    Labels are ints in ``[0, num_classes)``; ``categories`` holds the raw LVIS names and
    ``classnames`` what CLIP reads.
    """

    def __init__(self, root, split: str = "test", num_points: Optional[int] = STORED_POINTS,
                 sampling: str = "first", up_axis: str = "y", normalize: bool = True,
                 categories: Optional[Sequence[str]] = None, names: Optional[dict] = None,
                 in_memory: bool = False) -> None:
        if split != "test":
            raise ValueError(f"Objaverse-LVIS has only a test split (got {split!r}); tune on a "
                             f"class-stratified slice of it or take settings from another run, "
                             f"as `pointcalip benchmark --config openshape` does")
        h5utils.check_sampling(sampling, num_points, STORED_POINTS, "each OpenShape object file")
        self.root = find_root(root)
        self.split, self.name = split, "objaverse_lvis"
        self.up_axis = check_up_axis(up_axis)
        self.num_points = None if num_points is None else int(num_points)
        self.sampling, self.normalize, self.in_memory = sampling, bool(normalize), False
        split_path = self.root / SPLIT_FILE
        entries = read_split(split_path)
        self.categories = list(categories) if categories is not None else categories_of(entries)
        index = {c: i for i, c in enumerate(self.categories)}
        unknown = next((e for e in entries if e["category"] not in index), None)
        if unknown is not None:
            raise ValueError(f"{split_path}: uid {unknown['uid']} has category "
                             f"{unknown['category']!r}, which is not among the "
                             f"{count(len(self.categories), 'class')}")
        self.classnames = class_names(self.categories, names)
        self.uids = [e["uid"] for e in entries]
        self.files = [object_path(self.root, e["data_path"], _where(split_path, i, e))
                      for i, e in enumerate(entries)]
        missing = [(u, f) for u, f in zip(self.uids, self.files) if not f.is_file()]
        if missing:
            shown = ", ".join(f"{u} ({f})" for u, f in missing[:3])
            raise FileNotFoundError(f"{len(missing)} of the {len(entries)} Objaverse-LVIS objects "
                                    f"listed in {split_path} are missing: {shown}"
                                    f"{', ...' if len(missing) > 3 else ''}; {_HINT}")
        self._labels = np.array([index[e["category"]] for e in entries], dtype=np.int64)
        self._labels.setflags(write=False)
        self._split_path = split_path
        self._fingerprint: Optional[list] = None      # computed when first asked (settings)

    def _cloud(self, i: int) -> torch.Tensor:
        """Object ``i``'s stored points, sampled: ``[num_points, 3]`` float32."""
        xyz = torch.from_numpy(read_xyz(self.files[i], self.uids[i]))
        if self.num_points is not None and self.num_points > len(xyz):
            raise ValueError(f"Objaverse-LVIS object {self.uids[i]} ({self.files[i]}) has "
                             f"{count(len(xyz), 'point')}, fewer than num_points={self.num_points}")
        return h5utils.sample_points(xyz[None], self.num_points, self.sampling)[0]

    def points(self, indices=None) -> torch.Tensor:
        """Clouds at ``indices`` (default all): ``[m] -> [m, num_points, 3]`` float32, up axis
        ``up_axis``, centred and unit-sphere scaled when ``normalize``."""
        idx = self._indices(indices)
        if not idx.size:
            return torch.zeros(0, self.num_points or STORED_POINTS, 3)
        clouds = [self._cloud(int(i)) for i in idx]
        if len({len(c) for c in clouds}) > 1:
            raise ValueError(f"Objaverse-LVIS objects at {idx.tolist()[:8]} have different point "
                             f"counts; set num_points to batch them")
        pts = torch.stack(clouds)
        if self.up_axis == "z":
            pts = pts[..., [0, 2, 1]]
        if self.normalize:
            pts = h5utils.normalize_unit_sphere(pts)
        return pts.contiguous()

    @property
    def files_identity(self) -> list:
        """The identity of every file the split reads (:func:`pointcalip.core.identity.
        files_identity`): ``lvis.json`` and every object file (by uid, in the split's order),
        each hashed in full once and remembered; a reinstalled object changes it."""
        if self._fingerprint is None:
            self._fingerprint = (h5utils.fingerprint([self._split_path])
                                 + files_identity(self.files, self.uids))
        return self._fingerprint

    @property
    def settings(self) -> dict:
        """JSON-serialisable identity of the clouds served (feature-store key): the split
        file and every object file it lists (:attr:`files_identity`)."""
        return {"dataset": self.name, "split": self.split, "num_points": self.num_points,
                "sampling": self.sampling, "up_axis": self.up_axis, "normalize": self.normalize,
                "num_clouds": len(self), "classnames": list(self.classnames),
                "files": self.files_identity}

    def __repr__(self) -> str:
        return (f"ObjaverseLVIS(n={len(self)}, classes={self.num_classes}, "
                f"num_points={self.num_points}, up_axis={self.up_axis!r})")


def install_files(folder: Path) -> list[tuple[Path, Path]]:
    """What `pointcalip download objaverse_lvis --from FOLDER` copies: ``(path inside the
    installed folder, source file)`` for the split and each object it lists (not the rest of
    OpenShape's training data that may lie beside them). FileNotFoundError naming the missing
    objects."""
    split_path = Path(folder) / SPLIT_FILE
    entries = read_split(split_path)
    places = [object_path(Path(folder), e["data_path"], _where(split_path, i, e))
              for i, e in enumerate(entries)]                  # every path checked first
    out, missing = [(Path(SPLIT_FILE), split_path)], []
    for e, src in zip(entries, places):
        if not src.is_file():
            missing.append(f"{e['uid']} ({src})")
        out.append((relative_path(e["data_path"]), src))
    if missing:
        raise FileNotFoundError(f"{folder}: {len(missing)} of the {count(len(entries), 'object')} "
                                f"listed in {SPLIT_FILE} are missing: {', '.join(missing[:3])}"
                                f"{', ...' if len(missing) > 3 else ''}")
    return out


def validate_folder(folder: Path) -> None:
    """A complete Objaverse-LVIS folder: the split readable, every object it lists present
    (the missing ones named) and readable by :func:`read_xyz` (finite ``[P, 3]`` points), the
    class names distinct. Reads every object: minutes for the full ~46k."""
    ds = ObjaverseLVIS(folder, num_points=None)
    for path, uid in zip(ds.files, ds.uids):
        read_xyz(path, uid)
    log.info("Objaverse-LVIS at %s: %s, %s", folder, count(len(ds), "object"),
             count(ds.num_classes, "category"))
