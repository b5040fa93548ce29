"""The location cache: a hit equals a fresh ``locate`` and renders nothing; other settings
miss; a damaged piece is located again, never read; a folder that cannot be written still
works; prompt candidates share one locating pass."""
import logging
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from pointcalip.projection import PointCLIPProjector
from pointcalip.segmentation import locations as locations_module
from pointcalip.projection.catalog import projector_options
from pointcalip.segmentation.locations import LocationCache, bytes_per_shape
from projector_variants import projector_names, renders_otherwise, rendering, variants


@dataclass
class Clouds:
    """The dataset surface LocationCache reads: name, split, settings, len."""

    points: torch.Tensor          # [M, N, 3]
    name: str = "toy"
    split: str = "val"

    @property
    def settings(self) -> dict:
        return {"dataset": self.name, "split": self.split, "num_points": self.points.shape[1],
                "num_clouds": len(self)}

    def __len__(self) -> int:
        return self.points.shape[0]


class Counting:
    """A projector whose ``locate`` calls and located clouds are counted."""

    def __init__(self, projector):
        self.projector, self.calls, self.clouds = projector, 0, 0

    def __getattr__(self, name):
        return getattr(self.projector, name)

    def locate(self, points, visible_tolerance=None):
        self.calls += 1
        self.clouds += points.shape[0]
        return self.projector.locate(points, visible_tolerance=visible_tolerance)


def clouds(m=7, n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    p = torch.randn(m, n, 3, generator=g) * torch.tensor([0.5, 0.9, 0.4])
    return Clouds(p / p.norm(dim=2).amax(dim=1)[:, None, None])


def fill(root, ds, projector, tol=None, batch=3):
    """Every row through a cache, in batches -> (cache, xy [M, V, N, 2], visible [M, V, N])."""
    cache = LocationCache(root, ds, projector, tol)
    xy, vis = zip(*[cache.locate(np.arange(s, min(s + batch, len(ds))),
                                 ds.points[s:s + batch]) for s in range(0, len(ds), batch)])
    return cache, torch.cat(xy), torch.cat(vis)


def test_hit_equals_fresh_locate_and_renders_nothing(tmp_path):
    ds = clouds()
    fresh = PointCLIPProjector().locate(ds.points)
    first = Counting(PointCLIPProjector())
    cache, xy, vis = fill(tmp_path, ds, first)
    assert first.clouds == len(ds) and cache.located == len(ds) and cache.read == 0
    assert torch.equal(xy, fresh.xy) and torch.equal(vis, fresh.visible)
    assert vis.any() and not vis.all()                     # a real mix of visible / hidden

    again = Counting(PointCLIPProjector())
    cache2, xy2, vis2 = fill(tmp_path, ds, again, batch=4)  # other batches: across pieces
    assert again.calls == 0 and cache2.located == 0 and cache2.read == len(ds)
    assert torch.equal(xy2, fresh.xy) and torch.equal(vis2, fresh.visible)
    # rows in any order, duplicates included
    rows = np.array([5, 0, 5, 2])
    xy3, vis3 = cache2.locate(rows, ds.points[rows])
    assert torch.equal(xy3, fresh.xy[rows]) and torch.equal(vis3, fresh.visible[rows])
    assert cache2.read == len(ds)              # a second pass (tune on test) reads no new shapes
    cache.locate(rows, ds.points[rows])
    assert cache.located == len(ds) and cache.read == 0    # located here, not "read from the cache"
    # the size on disk: xy float32 and visible bool per view and point, little else
    files = list((cache.path / "pieces").glob("*.npz"))
    assert len(files) == 3 and (cache.path / "locations.json").is_file()
    payload = len(ds) * bytes_per_shape(PointCLIPProjector().num_views, 40)
    assert payload <= sum(f.stat().st_size for f in files) <= payload + 3 * 1536  # headers, key


def test_other_settings_miss(tmp_path):
    ds = clouds()
    fill(tmp_path, ds, PointCLIPProjector())
    for projector, tol, data in [(PointCLIPProjector(views=[0, 1, 2]), None, ds),
                                 (PointCLIPProjector(), 0.07, ds),
                                 (PointCLIPProjector(), None, Clouds(ds.points[:, :30]))]:
        counted = Counting(projector)
        cache, xy, vis = fill(tmp_path, data, counted, tol)
        fresh = projector.locate(data.points, visible_tolerance=tol)
        assert counted.clouds == len(data) and cache.read == 0
        assert torch.equal(xy, fresh.xy) and torch.equal(vis, fresh.visible)
    folders = sorted(p.name for p in (tmp_path / "locations").iterdir())
    assert len(folders) == 4 and all(f.startswith("toy-val-PointCLIPProjector-") for f in folders)
    # the default tolerance is the projector's: naming it explicitly is the same cache
    same = Counting(PointCLIPProjector())
    fill(tmp_path, ds, same, PointCLIPProjector.VISIBLE_TOLERANCE)
    assert same.calls == 0


@pytest.mark.parametrize("name", projector_names())
def test_every_projector_option_is_another_cache(tmp_path, name):
    """Pixels located under one setting are never read as another's: changing any one option
    of any registered projector (each changes the images or the locations) changes the
    cache's folder, and so does the visibility tolerance."""
    ds = clouds(m=1, n=60)
    seen, before = {}, None
    for option, base, changed in variants(name):
        before = before or rendering(base, ds.points)
        assert renders_otherwise(before, rendering(changed, ds.points)), option  # a real change
        path = LocationCache(tmp_path, ds, changed).path
        assert path != LocationCache(tmp_path, ds, base).path, option
        seen[path] = option
    assert len(seen) == len(projector_options(name))                  # each its own folder
    base = next(variants(name))[1]
    assert (LocationCache(tmp_path, ds, base, base.VISIBLE_TOLERANCE * 2).path
            != LocationCache(tmp_path, ds, base).path)


@pytest.mark.parametrize("where", [0.3, 0.97])      # early bytes (rows, xy) or late (visible)
def test_damaged_piece_is_located_again_not_read(tmp_path, caplog, where):
    ds = clouds()
    fresh = PointCLIPProjector().locate(ds.points)
    cache, _, _ = fill(tmp_path, ds, PointCLIPProjector())
    piece = sorted((cache.path / "pieces").glob("00000003-*.npz"))[0]      # rows 3, 4, 5
    data = bytearray(piece.read_bytes())
    at = int(len(data) * where)
    data[at:at + 16] = bytes(16)                       # same size, zeros over real bytes
    assert data != piece.read_bytes()
    piece.write_bytes(bytes(data))
    again = Counting(PointCLIPProjector())
    with caplog.at_level(logging.WARNING):
        cache2, xy, vis = fill(tmp_path, ds, again)
    assert again.clouds == 3 and cache2.read == 4      # only the damaged piece's rows
    assert torch.equal(xy, fresh.xy) and torch.equal(vis, fresh.visible)
    assert "is unreadable" in caplog.text and piece.name in caplog.text
    assert not piece.exists() and len(list((cache.path / "damaged").iterdir())) == 1
    third = Counting(PointCLIPProjector())             # the rows were kept again
    fill(tmp_path, ds, third)
    assert third.calls == 0


def test_unwritable_cache_computes_and_warns_once(tmp_path, caplog, monkeypatch):
    ds = clouds()
    fresh = PointCLIPProjector().locate(ds.points)
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")                 # nothing can be made under it
    with caplog.at_level(logging.WARNING):
        cache, xy, vis = fill(blocked, ds, PointCLIPProjector())
    assert torch.equal(xy, fresh.xy) and torch.equal(vis, fresh.visible)
    assert cache.located == len(ds) and not cache.writable
    warnings = [r for r in caplog.records if "cannot be written" in r.getMessage()]
    assert len(warnings) == 1 and str(cache.path) in warnings[0].getMessage()

    # a full cache in a folder that cannot be written is read as it is, without a warning
    fill(tmp_path, ds, PointCLIPProjector())

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(locations_module, "atomic_write", refuse)
    caplog.clear()
    counted = Counting(PointCLIPProjector())
    with caplog.at_level(logging.WARNING):
        cache, xy, vis = fill(tmp_path, ds, counted)
    assert counted.calls == 0 and torch.equal(xy, fresh.xy) and not caplog.records
    # ... and missing rows are located there without being kept
    other = Counting(PointCLIPProjector())
    with caplog.at_level(logging.WARNING):
        cache, xy, vis = fill(tmp_path, ds, other, 0.07)
    assert other.clouds == len(ds) and not cache.writable
    assert not (cache.path / "pieces").exists() or not list((cache.path / "pieces").iterdir())


def test_prompt_candidates_locate_once(tmp_path, monkeypatch):
    from pointcalip.datasets.shapenetpart import ShapeNetPart
    from pointcalip.segmentation.config import SegmentConfig
    from pointcalip.segmentation import run as seg_run
    from synthetic_shapenetpart import write_shapenetpart

    root = write_shapenetpart(tmp_path, {"train": 1, "val": 5, "test": 1}, num_points=32,
                              categories=["chair", "mug"])
    ds = ShapeNetPart(root, "val", num_points=32)
    projector = Counting(PointCLIPProjector(views=[0, 1]))
    rng = np.random.default_rng(0)

    class Features:          # the feature store surface tune_prompts reads: random tokens
        class store:
            @staticmethod
            def read(rows):
                t = rng.normal(size=(len(rows), 2, 4, 8)).astype(np.float32)
                return None, t / np.linalg.norm(t, axis=-1, keepdims=True), None

    texts = [{c: torch.nn.functional.normalize(torch.randn(k, 8), dim=-1)
              for c, k in ((4, 4), (11, 2))} for _ in range(3)]
    cfg = SegmentConfig()
    cfg.batch_size, cfg.tune.points, cfg.tune.view_weights = 2, 16, False
    timings = {}
    blocked = tmp_path / "a-file"          # nothing kept: only one pass can explain it
    blocked.write_text("not a folder")
    cache = LocationCache(blocked, ds, projector)
    choice = seg_run.tune_prompts(Features, ds, texts, cache, cfg, timings)
    assert projector.clouds == len(ds) and cache.located == len(ds)    # not 3 x len(ds)
    assert set(choice.scores) == {4, 11} and all(len(v) == 3 for v in choice.scores.values())
    assert timings["tune_locate_s"] > 0


def test_kept_locations_are_read_without_rendering(tmp_path):
    """``keep`` (locations from the encoding render) then ``locate``: read, not rendered;
    rows already kept are skipped; wrong shapes are refused naming the expected ones."""
    ds = clouds()
    proj = PointCLIPProjector()
    images, loc = proj.images_and_locations(ds.points[:4])
    cache = LocationCache(tmp_path, ds, Counting(proj))
    assert cache.keep(np.arange(4), loc.xy, loc.visible) == 4
    assert cache.keep(np.arange(2, 5), *[t[1:4] for t in (loc.xy, loc.visible)]) == 1
    assert (cache.located, cache.with_images) == (5, 5)
    assert list(cache.missing(np.arange(len(ds)))) == [5, 6]
    again = Counting(PointCLIPProjector())
    cache2 = LocationCache(tmp_path, ds, again)
    xy, vis = cache2.locate(np.arange(4), ds.points[:4])
    assert again.calls == 0 and cache2.read == 4
    assert torch.equal(xy, loc.xy) and torch.equal(vis, loc.visible)
    with pytest.raises(ValueError, match=r"xy \[2, 6, N, 2\]"):
        cache2.keep(np.arange(2), loc.xy[:3], loc.visible[:3])


def test_a_piece_copied_in_from_another_setting_is_set_aside(tmp_path, caplog):
    """Same shapes, another visibility tolerance: the piece names its own cache, so it is
    not read as this cache's (issue 27 section 3)."""
    ds = clouds()
    other, _, _ = fill(tmp_path, ds, PointCLIPProjector(), 0.07)
    fresh = PointCLIPProjector().locate(ds.points)
    ours = LocationCache(tmp_path, ds, PointCLIPProjector())
    (ours.path / "pieces").mkdir(parents=True)
    for piece in (other.path / "pieces").glob("*.npz"):
        (ours.path / "pieces" / piece.name).write_bytes(piece.read_bytes())
    counted = Counting(PointCLIPProjector())
    with caplog.at_level(logging.WARNING):
        cache, xy, vis = fill(tmp_path, ds, counted)
    assert counted.clouds == len(ds) and cache.read == 0
    assert torch.equal(xy, fresh.xy) and torch.equal(vis, fresh.visible)
    assert "does not belong here" in caplog.text and other.meta["key"] in caplog.text
    assert len(list((ours.path / "damaged").iterdir())) == 3
