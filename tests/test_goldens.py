"""Regression goldens: the tiny seeded CLIPs' tokens, text features and CALIP logits must stay
as stored in tests/data/tiny_clip_goldens.npz (written by `scripts/make_goldens.py
--tiny-clip`; regenerate only after a deliberate change of numbers, and say why)."""
from pathlib import Path

import numpy as np
import pytest
import torch

from pointcalip.head import CalipHead
from pointcalip.projection import PointCLIPProjector

GOLDENS = Path(__file__).parent / "data" / "tiny_clip_goldens.npz"
CLASSES = ["airplane", "chair", "lamp", "night_stand"]             # scripts/make_goldens.py TINY_*
TEMPLATES = ["point cloud depth map of a {}.", "a depth map of a {}."]
BETA2, BETA3, WEIGHTS = 1.3, 0.07, [1.0, 0.5, 0.25, 1.0, 0.75, 0.5]


@pytest.fixture(scope="module")
def gold():
    with np.load(GOLDENS) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("which", ["resnet", "vit"])
def test_tiny_clip_matches_its_goldens(request, gold, which):
    backbone = request.getfixturevalue(f"tiny_{which}")        # loaded from a state-dict file
    images = PointCLIPProjector()(torch.from_numpy(gold["tiny_clouds"])).flatten(0, 1)
    g, s, norms = backbone.encode_images(images, return_norms=True)
    text = backbone.encode_text(CLASSES, TEMPLATES)
    head = CalipHead(text, BETA2, BETA3, WEIGHTS)
    l0, l1, l2 = head.view_logits(g.view(2, 6, -1), s.view(2, 6, *s.shape[1:]))
    got = {"global": g, "norms": norms, "spatial": s, "text": text,
           "l0": l0, "l1": l1, "l2": l2, "logits": head.aggregate(l0, l1, l2)}
    for key, value in got.items():
        want = torch.from_numpy(gold[f"{which}_{key}"])
        tol = 1e-3 if key in ("l0", "l1", "l2", "logits", "norms") else 1e-5   # logits are x100
        torch.testing.assert_close(value, want, atol=tol, rtol=1e-5, msg=f"{which}_{key} drifted")
    assert (gold[f"{which}_logits"].std(axis=1) > 0).all()     # not a constant output
