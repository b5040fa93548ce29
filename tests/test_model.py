"""PointCALIP end to end on a tiny random CLIP and the PointCLIP projector."""
import clip
import pytest
import torch
import torch.nn.functional as F

from pointcalip.calip import aggregate_views, calip_logits
from pointcalip.model import PointCALIP
from pointcalip.projection import PointCLIPProjector

CLASSES = ["airplane", "night_stand", "chair", "lamp"]
TEMPLATE = "point cloud depth map of a {}."


@pytest.fixture(scope="module")
def backbone(tiny_vit):
    return tiny_vit  # faster on CPU than the tiny ResNet


@pytest.fixture(scope="module")
def projector():
    return PointCLIPProjector(views=[0, 2, 4])  # 3 of the 6 zero-shot views keep the test fast


@pytest.fixture(scope="module")
def clouds():
    g = torch.Generator().manual_seed(0)
    pts = torch.rand(3, 300, 3, generator=g) * 2 - 1
    return pts / pts.norm(dim=-1).max()


def test_zero_betas_equal_pointclip(backbone, projector, clouds):
    model = PointCALIP(backbone, CLASSES, projector)
    logits = model(clouds)
    v = projector.num_views
    assert logits.shape == (3, len(CLASSES))
    # PointCLIP's formulation, computed with the clip model directly
    images = projector(clouds)
    with torch.no_grad():
        f = backbone.model.encode_image(images.flatten(0, 1)).float()
        t = backbone.model.encode_text(
            clip.tokenize([TEMPLATE.format(c.replace("_", " ")) for c in CLASSES])).float()
    f = F.normalize(f, dim=-1).view(3, v * f.shape[-1])            # concatenated unit views
    t = F.normalize(F.normalize(t, dim=-1).repeat(1, v), dim=-1)    # tiled, normalised
    torch.testing.assert_close(logits, 100 * f @ t.T, atol=1e-4, rtol=0)


def test_forward_is_calip_of_view_features(backbone, projector, clouds):
    w = torch.linspace(0.25, 1.0, projector.num_views)
    model = PointCALIP(backbone, CLASSES, projector, beta2=1.2, beta3=0.05, view_weights=w)
    g, s = model.view_features(clouds)
    b, v = g.shape[:2]
    l0, l1, l2 = (x.view(b, v, -1) for x in calip_logits(g.flatten(0, 1), s.flatten(0, 1),
                                                          model.text_features))
    torch.testing.assert_close(model.head(g, s), aggregate_views(l0, l1, l2, 1.2, 0.05, w))
    logits = model(clouds)
    torch.testing.assert_close(logits, aggregate_views(l0, l1, l2, 1.2, 0.05, w))
    plain = aggregate_views(l0, l1, l2, 0.0, 0.0)
    assert (logits - plain).abs().max() > 1e-3  # the betas and weights matter


def test_point_order_and_batching_do_not_matter(backbone, projector, clouds):
    model = PointCALIP(backbone, CLASSES, projector, beta2=1.0, beta3=0.1)
    logits = model(clouds)
    perm = torch.randperm(clouds.shape[1], generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(model(clouds[:, perm]), logits, atol=1e-4, rtol=0)
    one_by_one = torch.cat([model(c) for c in clouds])              # [N, 3] inputs
    torch.testing.assert_close(one_by_one, logits, atol=1e-4, rtol=0)
    l0, l1, l2 = model.view_logits(clouds)
    assert l0.shape == l1.shape == l2.shape == (3, projector.num_views, len(CLASSES))


def test_bad_inputs(backbone, projector, clouds):
    with pytest.raises(ValueError, match="view_weights"):
        PointCALIP(backbone, CLASSES, projector, view_weights=[1.0])
    model = PointCALIP(backbone, CLASSES, projector)
    with pytest.raises(ValueError, match=r"\[B, N, 3\]"):
        model(clouds[..., :2])
