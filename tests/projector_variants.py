"""Every option of every registered projector, changed one at a time: what the caches keyed on
a projector's settings (the feature store, the location cache) are tested against.

``variants(name)`` yields ``(option, base, changed)`` projectors for each keyword argument the
projector accepts (``projection.catalog.projector_options``: its config options), from a base
in which every option shows (realistic: V2's segmentation preset, volumetric and cropped). An
option without a value in ``OTHER_VALUES`` fails, naming it: a new option must say what to
change it to, so its caches are tested too."""
from __future__ import annotations

from pointcalip.projection import build_projector
from pointcalip.projection.catalog import PROJECTORS, projector_options

#: the base each projector is changed from: every option enters its settings there
#: (small grids and images, so that rendering each variant takes milliseconds)
BASES = {"pointclip": {"preset": "zeroshot", "image_size": 64},
         "realistic": {"preset": "pointclip_v2_seg", "views": [0, 1, 2], "grid_resolution": 40,
                       "depth_bins": 16, "crop": 4, "image_size": 64}}

#: per projector, per option: another valid value (differs from the base's pixels)
OTHER_VALUES = {
    "pointclip": {"views": [0, 1], "preset": "fewshot", "resolution": 64, "distance": 2.0,
                  "image_size": 32, "clip_normalize": True},
    "realistic": {"views": [0, 1], "preset": "pointclip_v2", "grid_resolution": 36,
                  "depth_bins": 12, "obj_ratio": 0.8, "depth_bias": 0.2, "pool_kernel": 13,
                  "pool_padding": 4, "pool_kernel_z": 3, "blur_kernel": 3, "blur_sigma": 2.0,
                  "blur_kernel_z": 3, "blur_sigma_z": 1.0, "crop": 2,
                  "reference_translation": True, "image_size": 32, "clip_normalize": True},
}


def projector_names():
    return sorted(PROJECTORS.names())


def rendering(projector, points):
    """What a projector makes of ``points``: (images, located xy, visible)."""
    located = projector.locate(points)
    return projector(points), located.xy, located.visible


def renders_otherwise(a, b) -> bool:
    """Whether two :func:`rendering` results differ (in shape or in any value)."""
    import torch
    return any(x.shape != y.shape or not torch.equal(x, y) for x, y in zip(a, b))


def variants(name):
    """(option, base projector, projector with only that option changed), every option."""
    options = projector_options(name)
    missing = [o for o in options if o not in OTHER_VALUES.get(name, {})]
    assert not missing, (f"projector {name!r}: give tests/projector_variants.py OTHER_VALUES "
                         f"a value for {missing}, so the caches keyed on it are tested")
    base_options = BASES.get(name, {})
    base = build_projector(name, **base_options)
    for option in options:
        changed = {**base_options, option: OTHER_VALUES[name][option]}
        yield option, base, build_projector(name, **changed)
