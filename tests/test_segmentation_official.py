"""Our part-segmentation metric against the official PointCLIP V2 ``calculate_shape_IoU``,
stored as golden arrays (scripts/make_segmentation_goldens.py ran it from its own checkout)."""
from pathlib import Path

import numpy as np
import pytest

from pointcalip.datasets.shapenetpart import PART_COUNTS, PART_OFFSETS, SHAPENETPART_CATEGORIES
from pointcalip.segmentation import segmentation_scores

GOLDEN = Path(__file__).parent / "data" / "v2_shape_iou_golden.npz"


def test_metric_matches_official_calculate_shape_iou():
    g = np.load(GOLDEN)
    assert "calculate_shape_IoU" in str(g["source"])
    label = g["label"][:, 0].astype(np.int64)
    s = segmentation_scores(g["pred"].astype(np.int64), g["seg"].astype(np.int64), label,
                            SHAPENETPART_CATEGORIES, PART_OFFSETS, PART_COUNTS)
    assert np.allclose(s.shape_miou, g["shape_ious"], atol=1e-12)
    assert s.instance == pytest.approx(float(np.mean(g["shape_ious"])), abs=1e-12)
    want = dict(zip(g["categories"].tolist(), g["category_means"].tolist()))
    got = {SHAPENETPART_CATEGORIES.index(k): v.miou for k, v in s.categories.items()}
    assert got.keys() == want.keys()
    assert all(got[c] == pytest.approx(want[c], abs=1e-12) for c in want)
    assert s.class_ == pytest.approx(float(np.mean(list(want.values()))), abs=1e-12)
    # the case exercises what matters: empty unions, perfect and one-part shapes
    assert (g["shape_ious"] == 1).sum() >= 10 and 0.2 < float(np.mean(g["shape_ious"])) < 0.8
