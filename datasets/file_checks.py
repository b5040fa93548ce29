"""Check a cloud or mesh file against its own header before Open3D reads it.

Open3D (0.20, the version checked) does not fail on a broken file; it prints a coloured
warning and returns something: for a truncated PLY or ASCII PCD as many points as the header
declares, the missing ones filled with uninitialised memory; for a truncated OFF the faces it
got to; for an OBJ with quads the triangles only. So `check_file` parses each format's header
and walks the data that follows:

- ``.ply``: the header (``format ascii | binary_little_endian | binary_big_endian``,
  elements, property types, list properties) against the bytes or values that follow;
- ``.pcd``: ``FIELDS SIZE TYPE COUNT WIDTH HEIGHT POINTS DATA`` against the data
  (``ascii``, ``binary``, ``binary_compressed``);
- ``.off``: the vertex and face counts against the lines that follow, face indices in range;
- ``.stl``: binary, 80-byte header + uint32 count + 50 bytes per triangle == file size;
  ASCII, complete facets and a closing ``endsolid``;
- ``.obj``: every ``v`` and ``f`` line parses, faces refer to existing vertices
  (`read_obj`: an OBJ without faces is a point cloud, and polygons are split into triangles
  here, since Open3D drops faces of more than 3 vertices without a word).

Each problem is a ``ValueError`` naming the file, saying what is wrong and how to fix it.
`check_file` returns what the file declares (`Declared`); `check_mesh` compares Open3D's
mesh with it after reading.
"""
from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from ..core.words import count

# PLY property types -> struct (and NumPy) type characters.
PLY_TYPES = {
    "char": "b", "int8": "b", "uchar": "B", "uint8": "B", "short": "h", "int16": "h",
    "ushort": "H", "uint16": "H", "int": "i", "int32": "i", "uint": "I", "uint32": "I",
    "float": "f", "float32": "f", "double": "d", "float64": "d",
}
PLY_FORMATS = {"ascii": "", "binary_little_endian": "<", "binary_big_endian": ">"}
PCD_KEYS = ("VERSION", "FIELDS", "SIZE", "TYPE", "COUNT", "WIDTH", "HEIGHT", "VIEWPOINT",
            "POINTS", "DATA")
OFF_KEYWORDS = ("OFF", "COFF", "NOFF", "CNOFF")
OBJ_STATEMENTS = frozenset(
    "v vt vn vp f l p g o s mg usemtl mtllib maplib usemap lod bevel c_interp d_interp "
    "shadow_obj trace_obj ctech stech cstype deg bmat step curv curv2 surf parm trim hole "
    "scrv sp end con call csh".split()
)
_TRUNCATED = "the file is truncated"
_BROKEN_LINE = "the file is corrupt or truncated"
_COUNTS_WRONG = ("the header's counts do not match the data (a corrupt header, or data "
                 "appended to the file); export the file again")


@dataclass(frozen=True)
class Declared:
    """What a file says it holds. ``vertices``: points of a cloud or vertices of a mesh
    (None where Open3D renumbers them: STL, OBJ); ``faces``: polygons (0 for a cloud)."""

    vertices: int | None
    faces: int


def check_file(path: Path) -> Declared:
    """Check a .ply/.pcd/.off/.stl/.obj file's structure; raise ValueError if it is broken."""
    checks = {".ply": check_ply, ".pcd": check_pcd, ".off": check_off, ".stl": check_stl,
              ".obj": check_obj}
    return checks[path.suffix.lower()](path, path.read_bytes())


def check_mesh(
    path: Path, declared: Declared, vertices: np.ndarray, triangles: np.ndarray
) -> None:
    """Open3D's mesh (vertices: [V, 3], triangles: [T, 3] int) against the file's header."""
    if len(triangles) < declared.faces:
        raise ValueError(f"{path}: Open3D read {count(len(triangles), 'triangle')} but the file "
                         f"declares {declared.faces} faces; the file is corrupt")
    if declared.vertices is not None and len(vertices) != declared.vertices:
        raise ValueError(f"{path}: Open3D read {len(vertices)} vertices but the file "
                         f"declares {declared.vertices}; the file is corrupt")
    outside = (triangles < 0) | (triangles >= len(vertices))
    if outside.any():
        t = int(np.flatnonzero(outside.any(axis=1))[0])
        raise ValueError(
            f"{path}: triangle {t} refers to vertex {int(triangles[t][outside[t]][0])}, but "
            f"the mesh has {len(vertices)} vertices (0..{len(vertices) - 1}); its face list "
            f"is corrupt"
        )
    bad = ~np.isfinite(vertices[np.unique(triangles)]).all(axis=1)
    if bad.any():
        raise ValueError(f"{path}: {int(bad.sum())} of the mesh's vertices have NaN or "
                         f"infinite coordinates; cannot sample its surface. Fix or remove them")


def is_number(word: str | bytes) -> bool:
    """Whether ``float(word)`` works (``nan`` and ``inf`` count as numbers)."""
    try:
        float(word)
    except ValueError:
        return False
    return True


def _check_numbers(path: Path, values: list[bytes], what: str, per_item: int = 0) -> None:
    """Raise if a value is not a number; ``per_item`` values per item name the item."""
    try:
        np.array(values, dtype=np.float64)
    except ValueError:
        i = next(i for i, v in enumerate(values) if not is_number(v))
        where = f"{what} {i // per_item}" if per_item else f"the {what} data"
        raise ValueError(f"{path}: {where} holds {values[i].decode(errors='replace')!r}, "
                         f"which is not a number; the file is corrupt") from None


def _no_trailing(path: Path, rest: bytes, what: str) -> None:
    if rest.strip():
        raise ValueError(f"{path}: the file holds {count(len(rest), 'byte')} more than the {what} "
                         f"the header declares; {_COUNTS_WRONG}")


def _text_rows(data: bytes) -> Iterator[tuple[int, list[str]]]:
    """(line number, words) of each line with words, ``#`` comments removed."""
    for i, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        words = (line.split("#", 1)[0] if "#" in line else line).split()
        if words:
            yield i, words


# --- PLY -----------------------------------------------------------------------------

@dataclass
class PlyElement:
    """An ``element`` of a PLY header; ``props``: (name, value type, list count type or
    None) per property, types as struct characters."""

    name: str
    count: int
    props: list[tuple[str, str, str | None]] = field(default_factory=list)

    @property
    def plural(self) -> str:
        return {"vertex": "vertices", "face": "faces", "edge": "edges"}.get(
            self.name, f"'{self.name}' elements")


def parse_ply_header(path: Path, data: bytes) -> tuple[str, list[PlyElement], int]:
    """-> (format, elements, offset of the first data byte)."""
    if data.split(b"\n", 1)[0].strip() != b"ply":
        raise ValueError(f"{path}: not a PLY file (its first line must be 'ply')")
    end = re.search(rb"\nend_header[ \t]*\r?\n", data)
    if end is None:
        raise ValueError(f"{path}: the PLY header has no 'end_header' line; {_TRUNCATED} "
                         f"or its header is corrupt")
    fmt, elements = None, []
    for i, line in enumerate(data[:end.start()].decode("ascii", "replace").splitlines()):
        words, where = line.split(), f"{path} header line {i + 1}"
        if i == 0 or not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format" and len(words) == 3 and words[1] in PLY_FORMATS:
            fmt = words[1]
        elif words[0] == "element" and len(words) == 3 and words[2].isdigit():
            elements.append(PlyElement(words[1], int(words[2])))
        elif words[0] == "property" and elements and len(words) == 3 and words[1] in PLY_TYPES:
            elements[-1].props.append((words[2], PLY_TYPES[words[1]], None))
        elif (words[0] == "property" and elements and len(words) == 5 and words[1] == "list"
              and words[2] in PLY_TYPES and words[3] in PLY_TYPES):
            elements[-1].props.append((words[4], PLY_TYPES[words[3]], PLY_TYPES[words[2]]))
        else:
            raise ValueError(
                f"{where}: cannot read {line.strip()[:60]!r}; expected 'format ascii|"
                f"binary_little_endian|binary_big_endian 1.0', 'element <name> <count>', "
                f"'property <type> <name>' or 'property list <count type> <type> <name>' "
                f"(types: {', '.join(PLY_TYPES)}); the header is corrupt"
            )
    if fmt is None:
        raise ValueError(f"{path}: the PLY header has no 'format' line; the header is corrupt")
    return fmt, elements, end.end()


def check_ply(path: Path, data: bytes) -> Declared:
    fmt, elements, start = parse_ply_header(path, data)
    vertex = next((e for e in elements if e.name == "vertex"), None)
    if vertex is None or not {"x", "y", "z"} <= {name for name, _, _ in vertex.props}:
        raise ValueError(f"{path}: the PLY header declares no 'vertex' element with x, y, z "
                         f"properties; the file holds no points")
    if vertex.count == 0:
        raise ValueError(f"{path}: the PLY header declares 0 vertices; the file holds no points")
    if fmt == "ascii":
        _walk_ply_ascii(path, elements, data[start:])
    else:
        _walk_ply_binary(path, fmt, elements, data[start:])
    faces = next((e.count for e in elements if e.name == "face"), 0)
    return Declared(vertices=vertex.count, faces=faces)


def _walk_ply_ascii(path: Path, elements: list[PlyElement], payload: bytes) -> None:
    values, pos = payload.split(), 0
    for el in elements:
        start = pos
        if all(count_type is None for _, _, count_type in el.props):
            pos += el.count * len(el.props)
            if pos > len(values):
                complete = (len(values) - start) // len(el.props)
                raise ValueError(
                    f"{path}: header declares {el.count} {el.plural} (ascii, "
                    f"{count(len(el.props), 'value')} each) but the file holds only "
                    f"{count(complete, 'complete ' + el.name, 'complete ' + el.plural)}; "
                    f"{_TRUNCATED}"
                )
            _check_numbers(path, values[start:pos], el.name, per_item=len(el.props))
            continue
        for i in range(el.count):
            for _, _, count_type in el.props:
                if pos < len(values) and count_type is not None:
                    if not values[pos].isdigit():
                        raise ValueError(f"{path}: {el.name} {i} has list length "
                                         f"{values[pos].decode(errors='replace')!r}, not a "
                                         f"whole number; the file is corrupt")
                    pos += int(values[pos])
                pos += 1
            if pos > len(values):
                raise ValueError(f"{path}: header declares {el.count} {el.plural} (ascii) but "
                                 f"the data ends inside {el.name} {i}; {_TRUNCATED}")
        _check_numbers(path, values[start:pos], el.name)
    if pos < len(values):
        raise ValueError(f"{path}: the file holds {count(len(values) - pos, 'value')} more than "
                         f"the elements the header declares; {_COUNTS_WRONG}")


def _walk_ply_binary(path: Path, fmt: str, elements: list[PlyElement], payload: bytes) -> None:
    order, pos = PLY_FORMATS[fmt], 0
    for el in elements:
        if all(count_type is None for _, _, count_type in el.props):
            size = struct.calcsize(order + "".join(t for _, t, _ in el.props))
            if pos + el.count * size > len(payload):
                raise ValueError(
                    f"{path}: header declares {el.count} {el.plural} ({fmt}, {count(size, 'byte')} "
                    f"each = {count(el.count * size, 'byte')}) but the file holds only "
                    f"{count(len(payload) - pos, 'byte')} of {el.name} data; {_TRUNCATED}"
                )
            pos += el.count * size
        else:
            pos = _walk_ply_lists(path, fmt, el, payload, pos)
    _no_trailing(path, payload[pos:], "elements")


def _walk_ply_lists(path: Path, fmt: str, el: PlyElement, payload: bytes, pos: int) -> int:
    """End offset of ``el`` (an element with list properties, e.g. faces) from ``pos``."""
    order = PLY_FORMATS[fmt]

    def instance(start: int) -> tuple[int, list[tuple[int, str, int]]]:
        """-> (end offset, [(offset of a list's count in the instance, type, count)])."""
        at, lists = start, []
        for _, item, count_type in el.props:
            if count_type is None:
                at += struct.calcsize(order + item)
                continue
            if at + struct.calcsize(order + count_type) > len(payload):
                return len(payload) + 1, lists
            n = struct.unpack_from(order + count_type, payload, at)[0]
            if n < 0:
                raise ValueError(f"{path}: a {el.name} has list length {n}; the file is corrupt")
            lists.append((at - start, count_type, n))
            at += struct.calcsize(order + count_type) + n * struct.calcsize(order + item)
        return at, lists

    end, lists = instance(pos)
    stride = end - pos
    if el.count and pos + el.count * stride <= len(payload):
        # Fast path: every list as long as the first instance's (e.g. all triangles).
        same = all(
            (np.ndarray((el.count,), order + count_type, payload, pos + at, (stride,)) == n).all()
            for at, count_type, n in lists
        )
        if same:
            return pos + el.count * stride
    for i in range(el.count):
        end, _ = instance(pos)
        if end > len(payload):
            raise ValueError(f"{path}: header declares {el.count} {el.plural} ({fmt}) but the "
                             f"data ends inside {el.name} {i}; {_TRUNCATED}")
        pos = end
    return pos


# --- PCD -----------------------------------------------------------------------------

def check_pcd(path: Path, data: bytes) -> Declared:
    header, pos, line_no = {}, 0, 0
    while "DATA" not in header:
        if pos >= len(data):
            raise ValueError(f"{path}: the PCD header has no DATA line; {_TRUNCATED} or it is "
                             f"not a PCD file")
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end
        line, pos, line_no = data[pos:end].decode("ascii", "replace").strip(), end + 1, line_no + 1
        if not line or line.startswith("#"):
            continue
        key, *words = line.split()
        if key.upper() not in PCD_KEYS:
            raise ValueError(f"{path} line {line_no}: {line[:60]!r} is not a PCD header line "
                             f"({' '.join(PCD_KEYS)}); the header is corrupt")
        header[key.upper()] = words
    fields = header.get("FIELDS", [])
    sizes, types = header.get("SIZE", []), header.get("TYPE", [])
    counts = header.get("COUNT", ["1"] * len(fields))
    if not {"x", "y", "z"} <= set(fields):
        raise ValueError(f"{path}: the PCD header's FIELDS {fields} lack x y z; the file "
                         f"holds no points")
    numbers = sizes + counts + [(header.get(k) or ["0"])[0] for k in ("WIDTH", "HEIGHT", "POINTS")]
    if not len(sizes) == len(types) == len(counts) == len(fields) or not all(
        w.isdigit() for w in numbers
    ):
        raise ValueError(f"{path}: the PCD header's FIELDS {fields}, SIZE {sizes}, TYPE {types} "
                         f"and COUNT {counts} do not fit together; the header is corrupt")
    width, height = (int((header.get(k) or ["0"])[0]) for k in ("WIDTH", "HEIGHT"))
    points = int(header["POINTS"][0]) if header.get("POINTS") else width * height
    if "WIDTH" in header and "HEIGHT" in header and width * height != points:
        raise ValueError(f"{path}: the PCD header says WIDTH {width} x HEIGHT {height} = "
                         f"{count(width * height, 'point')} but POINTS {points}; the header is "
                         "corrupt")
    if points == 0:
        raise ValueError(f"{path}: the PCD header declares 0 points; the file holds no points")
    per_point = sum(int(c) for c in counts)
    point_size = sum(int(s) * int(c) for s, c in zip(sizes, counts))
    mode, payload = (header["DATA"] or [""])[0].lower(), data[pos:]
    if mode == "ascii":
        values = payload.split()
        if len(values) < points * per_point:
            raise ValueError(f"{path}: header declares {count(points, 'point')} (ascii, "
                             f"{count(per_point, 'value')} each) but the file holds only "
                             f"{count(len(values) // per_point, 'complete point')}; {_TRUNCATED}")
        if len(values) > points * per_point:
            raise ValueError(f"{path}: the file holds "
                             f"{count(len(values) - points * per_point, 'value')} more than the "
                             f"{count(points, 'point')} the header declares; {_COUNTS_WRONG}")
        _check_numbers(path, values, "point", per_item=per_point)
    elif mode == "binary":
        if len(payload) < points * point_size:
            raise ValueError(f"{path}: header declares {count(points, 'point')} (binary, "
                             f"{count(point_size, 'byte')} each = "
                             f"{count(points * point_size, 'byte')}) but the file holds only "
                             f"{count(len(payload), 'byte')} of point data; {_TRUNCATED}")
        _no_trailing(path, payload[points * point_size:], "points")
    elif mode == "binary_compressed":
        if len(payload) < 8:
            raise ValueError(f"{path}: the compressed data has no size fields; {_TRUNCATED}")
        packed, unpacked = struct.unpack_from("<II", payload)
        if unpacked != points * point_size:
            raise ValueError(f"{path}: the compressed data unpacks to {count(unpacked, 'byte')}, "
                             f"but {count(points, 'point')} of {count(point_size, 'byte')} need "
                             f"{points * point_size}; "
                             f"the file is corrupt")
        if len(payload) < 8 + packed:
            raise ValueError(f"{path}: the compressed data declares {count(packed, 'byte')} but "
                             f"the file holds only {len(payload) - 8}; {_TRUNCATED}")
    else:
        raise ValueError(f"{path}: unknown PCD 'DATA {mode}'; expected ascii, binary or "
                         f"binary_compressed")
    return Declared(vertices=points, faces=0)


# --- OFF -----------------------------------------------------------------------------

def check_off(path: Path, data: bytes) -> Declared:
    rows = _text_rows(data)
    i, words = next(rows, (1, [""]))
    if words[0] not in OFF_KEYWORDS:
        raise ValueError(f"{path}: not an OFF file (its first line must be 'OFF')")
    if len(words) > 1:
        raise ValueError(f"{path} line {i}: Open3D cannot read counts on the '{words[0]}' line; "
                         f"move them to a line of their own")
    i, counts = next(rows, (i + 1, []))
    if len(counts) not in (2, 3) or not all(w.isdigit() for w in counts):
        raise ValueError(f"{path} line {i}: expected the counts 'vertices faces edges' after the "
                         f"OFF line, got {' '.join(counts)!r}; {_BROKEN_LINE}")
    nv, nf = int(counts[0]), int(counts[1])
    if nv == 0 or nf == 0:
        raise ValueError(f"{path}: the OFF header declares {nv} vertices and {nf} faces; a mesh "
                         f"needs both (save a cloud without faces as .ply or .xyz)")
    for seen in range(nv + nf):
        row = next(rows, None)
        if row is None:
            raise ValueError(f"{path}: header declares {nv} vertices and {nf} faces but the file "
                             f"holds only {count(min(seen, nv), 'vertex line')} and "
                             f"{count(max(seen - nv, 0), 'face line')}; {_TRUNCATED}")
        i, words = row
        if seen < nv:
            try:
                xyz = float(words[0]), float(words[1]), float(words[2])
            except (ValueError, IndexError):
                raise ValueError(f"{path} line {i}: expected a vertex 'x y z', got "
                                 f"{' '.join(words)[:60]!r}; {_BROKEN_LINE}") from None
            if not all(map(math.isfinite, xyz)):  # Open3D's OFF reader stops there
                raise ValueError(f"{path} line {i}: the vertex {' '.join(words[:3])!r} has a NaN "
                                 f"or infinite coordinate; cannot sample the mesh's surface")
            continue
        try:
            k = int(words[0])
            index = [int(w) for w in words[1:k + 1]]
        except ValueError:
            k, index = 0, []
        if k < 3 or len(index) < k or min(index) < 0:
            raise ValueError(f"{path} line {i}: expected a face 'n i1 ... in' with n >= 3 "
                             f"vertex numbers, got {' '.join(words)[:60]!r}; {_BROKEN_LINE}")
        if max(index) >= nv:
            raise ValueError(f"{path} line {i}: the face refers to vertex {max(index)}, but the "
                             f"file has {nv} vertices (0..{nv - 1}); the face list is corrupt")
    extra = next(rows, None)
    if extra is not None:
        raise ValueError(f"{path} line {extra[0]}: more lines follow the {nv} vertices and {nf} "
                         f"faces the header declares; {_COUNTS_WRONG}")
    return Declared(vertices=nv, faces=nf)


# --- STL -----------------------------------------------------------------------------

def check_stl(path: Path, data: bytes) -> Declared:
    n = struct.unpack_from("<I", data, 80)[0] if len(data) >= 84 else 0
    if len(data) >= 84 and len(data) == 84 + 50 * n:
        if n == 0:
            raise ValueError(f"{path}: the binary STL declares 0 triangles; it holds no surface")
        return Declared(vertices=None, faces=n)
    if data.lstrip()[:5].lower() == b"solid" and data.isascii() and b"\0" not in data:
        return _check_ascii_stl(path, data.decode("ascii"))
    if len(data) < 84:
        raise ValueError(f"{path}: {count(len(data), 'byte')} is too short for a binary STL "
                         "(80-byte "
                         f"header + 4-byte triangle count) and it is not an ASCII STL (which "
                         f"starts with 'solid'); {_TRUNCATED} or not an STL")
    need = 84 + 50 * n
    what = _TRUNCATED if len(data) < need else "its triangle count is corrupt"
    raise ValueError(f"{path}: the binary STL declares {count(n, 'triangle')} (80 + 4 + 50 x {n} = "
                     f"{count(need, 'byte')}) but the file has {count(len(data), 'byte')}; {what}, "
                     f"or it is not an STL file (an ASCII STL starts with 'solid')")


def _check_ascii_stl(path: Path, text: str) -> Declared:
    facets = vertices = ends = 0
    last = ""
    for i, line in enumerate(text.splitlines(), 1):
        words = line.lower().split()
        if not words:
            continue
        last = words[0]
        if last == "facet":
            facets += 1
        elif last == "endfacet":
            ends += 1
        elif last == "vertex":
            if len(words) != 4 or not all(is_number(w) for w in words[1:]):
                raise ValueError(f"{path} line {i}: expected 'vertex x y z', got "
                                 f"{line.strip()[:60]!r}; {_BROKEN_LINE}")
            vertices += 1
    if last != "endsolid":
        raise ValueError(f"{path}: the ASCII STL does not end with 'endsolid'; {_TRUNCATED}")
    if facets == 0:
        raise ValueError(f"{path}: the ASCII STL holds no facets; it holds no surface")
    if vertices != 3 * facets or ends != facets:
        raise ValueError(f"{path}: the ASCII STL has {facets} facets but {vertices} vertex lines "
                         f"and {ends} endfacet lines (3 vertices and 1 endfacet per facet); the "
                         f"file is corrupt")
    return Declared(vertices=None, faces=facets)


# --- OBJ -----------------------------------------------------------------------------

@dataclass
class ObjContents:
    """What an OBJ file holds. vertices [V, 3] float64 (x y z of each ``v`` line; a 4th
    weight or colour columns ignored); faces: per ``f`` line its vertex numbers counted from
    0 (relative ``-1`` references resolved); polygons: line numbers of faces with more than
    3 vertices."""

    vertices: np.ndarray
    faces: list[list[int]]
    polygons: list[int]

    def triangles(self) -> np.ndarray:
        """[T, 3] int64: each face split into a fan from its first vertex, ``(v0, vi, vi+1)``
        for i = 1 .. n-2 (right for convex polygons, the usual quads and n-gons of exported
        meshes; a concave polygon's fan may cover area outside it)."""
        fans = [(f[0], f[j], f[j + 1]) for f in self.faces for j in range(1, len(f) - 1)]
        return np.asarray(fans, dtype=np.int64).reshape(-1, 3)


def read_obj(path: Path, data: bytes) -> ObjContents:
    """Parse an OBJ file's ``v`` and ``f`` lines, checking that every line is an OBJ
    statement, every vertex has x y z, every face has 3 or more vertex numbers that refer to
    existing vertices; at least one vertex. A file without faces is a point cloud."""
    xyz: list[tuple[float, float, float]] = []
    faces, polygons, highest = [], [], (0, 0)
    for i, words in _text_rows(data):
        if words[0] == "v":
            try:
                xyz.append((float(words[1]), float(words[2]), float(words[3])))
            except (ValueError, IndexError):
                raise ValueError(f"{path} line {i}: expected a vertex 'v x y z', got "
                                 f"{' '.join(words)[:60]!r}; {_BROKEN_LINE}") from None
        elif words[0] == "f":
            try:
                index = [int(ref.partition("/")[0]) for ref in words[1:]]
            except ValueError:
                index = []
            if len(index) < 3 or 0 in index:
                raise ValueError(f"{path} line {i}: expected a face 'f i j k' of 3 or more "
                                 f"vertex numbers (from 1), got {' '.join(words)[:60]!r}; "
                                 f"{_BROKEN_LINE}")
            if min(index) < -len(xyz):
                raise ValueError(f"{path} line {i}: the face refers to vertex {min(index)}, but "
                                 f"only {len(xyz)} vertices come before it; the file is corrupt")
            if max(index) > highest[0]:
                highest = (max(index), i)
            faces.append([k - 1 if k > 0 else len(xyz) + k for k in index])
            if len(index) > 3:
                polygons.append(i)
        elif words[0] not in OBJ_STATEMENTS:
            raise ValueError(f"{path} line {i}: {' '.join(words)[:60]!r} is not an OBJ "
                             f"statement; the file is corrupt or not an OBJ file")
    if highest[0] > len(xyz):
        raise ValueError(f"{path} line {highest[1]}: the face refers to vertex {highest[0]}, but "
                         f"the file has {len(xyz)} vertices; the face list is corrupt or the "
                         f"file is truncated")
    if not xyz:
        raise ValueError(f"{path}: holds 0 vertices ('v' lines) and no faces ('f' lines); it "
                         f"holds no points")
    return ObjContents(np.asarray(xyz, dtype=np.float64).reshape(-1, 3), faces, polygons)


def check_obj(path: Path, data: bytes) -> Declared:
    """An OBJ file's structure (:func:`read_obj`); -> its face count (0: a point cloud)."""
    return Declared(vertices=None, faces=len(read_obj(path, data).faces))
