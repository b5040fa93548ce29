"""View sets as data: the published view lists, subsets of them, and rings for ablations.

A view is an Euler triple `(a, b, c)` in radians giving `R = Rx(a) @ Ry(b) @ Rz(c)`, optionally
followed by a pan `Rx(s)` and a tilt `Ry(t)` (PointCLIP V2 tilts its views this way; its
segmentation code also pans them), so a point becomes `p' = Ry(t) @ Rx(s) @ R @ p`. The camera
then looks along +z: image rows follow x', columns follow y'.

With the preset convention `(phi, 0, pi/2)` the camera circles the y axis (the up axis of the
ModelNet40 h5 clouds) at azimuth `phi`, with y pointing up in the image; `(0, -pi/2, pi/2)` and
`(0, pi/2, pi/2)` look along -y and +y (top and bottom views). A tilt `t > 0` makes points with
larger y farther: the camera moves below the object's mid-plane and looks up by `t`. V2's side
views are tilted so (t = pi/9), i.e. they sit 20 degrees *below* the horizon; `ring_views`
speaks of elevation instead (camera above the horizon for elevation > 0, tilt = -elevation).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence, Tuple, Union
from ..core.words import count


pi = math.pi  # == numpy.pi; the preset angles below are written as in the reference code

Angles = Tuple[float, float, float]


@dataclass(frozen=True)
class ViewSet:
    """An ordered list of views.

    angles: V Euler triples `(a, b, c)` in radians.
    tilts:  None (no tilt), or V tilt angles `t` in radians, applied after the base rotation
            (and after the pan).
    name:   a label for logs and settings (the angles, not the name, define the pixels).
    pans:   None (no pan), or V pan angles `s` in radians: `Rx(s)`, applied after the base
            rotation and before the tilt (V2's segmentation views, `rot_mat2` in its code).
    """

    angles: Tuple[Angles, ...]
    tilts: Optional[Tuple[float, ...]] = None
    name: str = "custom"
    pans: Optional[Tuple[float, ...]] = None

    def __post_init__(self) -> None:
        angles = tuple(tuple(float(x) for x in a) for a in self.angles)
        if not angles or any(len(a) != 3 for a in angles):
            raise ValueError(f"view set {self.name!r}: angles must be a non-empty list of (a, b, c) "
                             f"triples in radians; got {self.angles!r}")
        object.__setattr__(self, "angles", angles)
        for field in ("tilts", "pans"):
            given = getattr(self, field)
            if given is not None:
                values = tuple(float(t) for t in given)
                if len(values) != len(angles):
                    raise ValueError(f"view set {self.name!r}: {len(values)} {field} for "
                                     f"{count(len(angles), 'view')}; give one {field[:-1]} per "
                                     f"view or {field}=None")
                object.__setattr__(self, field, values)
        for v in angles + tuple(t for t in (self.tilts, self.pans) if t):
            if not all(math.isfinite(x) for x in v):
                raise ValueError(f"view set {self.name!r}: angles must be finite; got {v!r}")

    def __len__(self) -> int:
        return len(self.angles)

    def subset(self, indices: Sequence[int]) -> "ViewSet":
        """The views at `indices` (positions in this list), in the order given."""
        idx = list(indices)
        if not idx:
            raise ValueError(f"view subset of {self.name!r} is empty; give at least one index")
        for i in idx:
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(self):
                raise ValueError(f"view index {i!r} is not an integer in [0, {len(self) - 1}] "
                                 f"(view set {self.name!r} has {count(len(self), 'view')})")
        def pick(values):
            return None if values is None else tuple(values[i] for i in idx)
        return ViewSet(angles=tuple(self.angles[i] for i in idx), tilts=pick(self.tilts),
                       name=f"{self.name}{idx}", pans=pick(self.pans))

    def rotations(self) -> Tuple[torch.Tensor, ...]:
        """Row-vector rotation matrices on the CPU, float32, applied one after the other:
        `p' = p @ base [@ pan] [@ tilt]` (one float32 product each, as the references).

        -> base [V, 3, 3] (= R^T), then pan [V, 3, 3] (= Rx(s)^T) when there are pans, then
        tilt [V, 3, 3] (= Ry(t)^T) when there are tilts.
        """
        import torch

        def matrices(angles):
            return euler2mat(torch.tensor(angles, dtype=torch.float64).float()).transpose(1, 2).contiguous()
        out = [matrices(self.angles)]
        if self.pans is not None:
            out.append(matrices([[s, 0.0, 0.0] for s in self.pans]))
        if self.tilts is not None:
            out.append(matrices([[0.0, t, 0.0] for t in self.tilts]))
        return tuple(out)

    def to_dict(self) -> dict:
        """JSON-serialisable description (floats, exactly as used); "pans" only when there
        are pans (so the settings of pan-free view sets read as before pans existed)."""
        out = {"name": self.name, "angles": [list(a) for a in self.angles],
               "tilts": None if self.tilts is None else list(self.tilts)}
        if self.pans is not None:
            out["pans"] = list(self.pans)
        return out


def euler2mat(angle: torch.Tensor) -> torch.Tensor:
    """angle: [V, 3] float32 (a, b, c) -> [V, 3, 3] `Rx(a) @ Ry(b) @ Rz(c)`.

    Same float32 arithmetic as the reference code (torch cos/sin, stacked, `x @ y @ z`).
    """
    import torch
    x, y, z = angle[:, 0], angle[:, 1], angle[:, 2]
    zero = z * 0
    one = zero + 1
    cz, sz, cy, sy, cx, sx = torch.cos(z), torch.sin(z), torch.cos(y), torch.sin(y), torch.cos(x), torch.sin(x)
    zmat = torch.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], dim=1).reshape(-1, 3, 3)
    ymat = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], dim=1).reshape(-1, 3, 3)
    xmat = torch.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], dim=1).reshape(-1, 3, 3)
    return xmat @ ymat @ zmat


# --- published view lists ------------------------------------------------------------------

#: PointCLIP zero-shot (trainers/mv_utils_zs.py): 4 side views, then top and bottom.
POINTCLIP_ZEROSHOT = ViewSet(name="pointclip_zeroshot", angles=(
    (0 * pi / 2, 0, pi / 2), (1 * pi / 2, 0, pi / 2), (2 * pi / 2, 0, pi / 2), (3 * pi / 2, 0, pi / 2),
    (0, -pi / 2, pi / 2), (0, pi / 2, pi / 2)))

#: PointCLIP few-shot (trainers/mv_utils_fs.py): the zero-shot views plus 4 oblique ones.
POINTCLIP_FEWSHOT = ViewSet(name="pointclip_fewshot", angles=(
    (0 * pi / 2, 0, pi / 2), (1 * pi / 2, 0, pi / 2), (2 * pi / 2, 0, pi / 2), (3 * pi / 2, 0, pi / 2),
    (5 * pi / 4, -pi / 4, pi / 2), (5 * pi / 4, pi / 4, pi / 2),
    (7 * pi / 4, -pi / 4, pi / 2), (7 * pi / 4, pi / 4, pi / 2),
    (0, -pi / 2, pi / 2), (0, pi / 2, pi / 2)))

#: PointCLIP V2 (zeroshot_cls/trainers/mv_utils_zs.py): 8 side views tilted by pi/9, then
#: top and bottom tilted by pi/15.
POINTCLIP_V2 = ViewSet(name="pointclip_v2", angles=(
    (1 * pi / 4, 0, pi / 2), (3 * pi / 4, 0, pi / 2), (5 * pi / 4, 0, pi / 2), (7 * pi / 4, 0, pi / 2),
    (0 * pi / 2, 0, pi / 2), (1 * pi / 2, 0, pi / 2), (2 * pi / 2, 0, pi / 2), (3 * pi / 2, 0, pi / 2),
    (0, -pi / 2, pi / 2), (0, pi / 2, pi / 2)),
    tilts=(pi / 9,) * 8 + (pi / 15,) * 2)

#: PointCLIP V2 segmentation (zeroshot_seg/realistic_projection.py): the four side views
#: panned by pi/4, the same four unpanned, top and bottom panned by pi/15; sides tilted by pi/9,
#: top and bottom by pi/15. Views 0-7 are the classification views 0-7 (in that order) up to
#: float rounding; top and bottom differ by the pan.
POINTCLIP_V2_SEG = ViewSet(name="pointclip_v2_seg", angles=(
    (0 * pi / 2, 0, pi / 2), (1 * pi / 2, 0, pi / 2), (2 * pi / 2, 0, pi / 2), (3 * pi / 2, 0, pi / 2),
    (0 * pi / 2, 0, pi / 2), (1 * pi / 2, 0, pi / 2), (2 * pi / 2, 0, pi / 2), (3 * pi / 2, 0, pi / 2),
    (0, -pi / 2, pi / 2), (0, pi / 2, pi / 2)),
    pans=(pi / 4,) * 4 + (0.0,) * 4 + (pi / 15,) * 2,
    tilts=(pi / 9,) * 8 + (pi / 15,) * 2)


def ring_views(n: int, elevation: float = 0.0, top_bottom: bool = False,
               azimuth_offset: float = 0.0, top_bottom_tilt: float = 0.0) -> ViewSet:
    """`n` views evenly spaced in azimuth around the up (y) axis, plus optional top/bottom.

    n: number of ring views (>= 1); view i has azimuth `azimuth_offset + 360 * i / n` degrees,
        i.e. base angles `(azimuth, 0, pi/2)`, the convention of the published side views.
    elevation: camera elevation in degrees (> 0: above the object, looking down; < 0: below,
        looking up), applied as the tilt `-elevation`. 0 gives the untilted PointCLIP side views
        (`ring_views(4)` = PointCLIP views 0-3); V2's eight side views are
        `ring_views(8, elevation=-20)`, in another order.
    top_bottom: append the top `(0, -pi/2, pi/2)` and bottom `(0, pi/2, pi/2)` views, with the
        raw tilt `top_bottom_tilt` in degrees (V2 uses 12 = 180/15).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"ring_views: n must be a positive integer (number of views); got {n!r}")
    angles = [((math.radians(azimuth_offset) + 2 * pi * i / n), 0.0, pi / 2) for i in range(n)]
    tilts = [-math.radians(elevation)] * n
    if top_bottom:
        angles += [(0.0, -pi / 2, pi / 2), (0.0, pi / 2, pi / 2)]
        tilts += [math.radians(top_bottom_tilt)] * 2
    name = f"ring{n}_el{elevation:g}" + ("_tb" if top_bottom else "")
    return ViewSet(angles=tuple(angles), tilts=None if not any(tilts) else tuple(tilts), name=name)


ViewsArg = Union[None, str, ViewSet, Mapping[str, Any], Sequence[int], Sequence[Sequence[float]]]

_RING_KEYS = {"ring", "elevation", "top_bottom", "azimuth_offset", "top_bottom_tilt"}


def pick_preset(views: ViewsArg, preset: Optional[str], presets: Mapping[str, Any], default: str,
                kind: str) -> Tuple[str, ViewsArg]:
    """Read a projector's `views` / `preset` pair, where a string `views` names the preset.

    -> (preset name, the `views` argument left for `resolve_views`).
    """
    if isinstance(views, str):
        if preset is not None and preset != views:
            raise ValueError(f"views={views!r} and preset={preset!r} disagree; give one of them")
        preset, views = views, None
    preset = default if preset is None else preset
    if preset not in presets:
        raise ValueError(f"unknown {kind} preset {preset!r}; choose one of {sorted(presets)}")
    return preset, views


def resolve_views(views: ViewsArg, preset_views: ViewSet) -> ViewSet:
    """Turn a projector's `views=` argument into a ViewSet.

    None -> the preset's list; a ViewSet -> itself; a list of ints -> that subset of the preset
    list; a list of (a, b, c) triples -> those Euler angles (radians, no tilt); a mapping
    `{"ring": n, "elevation": deg, "top_bottom": bool, "azimuth_offset": deg,
    "top_bottom_tilt": deg}` -> `ring_views(...)`.
    """
    if views is None:
        return preset_views
    if isinstance(views, ViewSet):
        return views
    if isinstance(views, Mapping):
        unknown = set(views) - _RING_KEYS
        if "ring" not in views or unknown:
            raise ValueError(f"views mapping {dict(views)!r}: expected keys 'ring' (required), "
                             f"'elevation', 'top_bottom', 'azimuth_offset', 'top_bottom_tilt'"
                             + (f"; unknown: {sorted(unknown)}" if unknown else ""))
        kw = dict(views)
        return ring_views(kw.pop("ring"), **kw)
    if isinstance(views, (list, tuple)) and views:
        if all(isinstance(v, int) and not isinstance(v, bool) for v in views):
            return preset_views.subset(views)
        if all(isinstance(v, (list, tuple)) and len(v) == 3 for v in views):
            return ViewSet(angles=tuple(tuple(v) for v in views), name="custom")
    raise ValueError(f"views={views!r} not understood: use a preset name, a list of view indices "
                     f"into the preset list (0..{len(preset_views) - 1}), a list of (a, b, c) Euler "
                     "triples, a ViewSet, or {'ring': n, 'elevation': deg, 'top_bottom': bool}")
