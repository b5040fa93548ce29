"""Views -> points, the nearest-visible fallback, metrics and the search, on hand-made cases."""
import numpy as np
import pytest
import torch

from pointcalip.segmentation import (Group, PointLogits, combine_points, nearest_visible,
                                     predict_local, search_segmentation, segmentation_scores,
                                     shape_ious)


def test_shape_iou_by_hand():
    gt = torch.tensor([[0, 0, 1, 1]])
    pred = torch.tensor([[0, 1, 1, 1]])
    # part 0: inter 1, union 2; part 1: inter 2, union 3; part 2: absent in both -> 1
    assert shape_ious(pred, gt, 3)[0].tolist() == pytest.approx([0.5, 2 / 3, 1.0])
    assert shape_ious(gt, gt, 2)[0].tolist() == [1.0, 1.0]
    assert shape_ious(1 - gt, gt, 2)[0].tolist() == [0.0, 0.0]


def test_instance_and_class_miou_by_hand():
    offsets, counts, names = [0, 2], [2, 3], ["mug", "cup3"]
    # category 0 (global parts 0, 1): two shapes, mIoU 1 and 0
    # category 1 (global parts 2, 3, 4): one shape, part 4 absent in both (IoU 1)
    gt = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3]])
    pred = np.array([[0, 0, 1, 1], [1, 1, 0, 0], [2, 2, 3, 2]])
    # shape 3: part 2 inter 2 union 3 (2/3); part 3 inter 1 union 2 (1/2); part 4 empty (1)
    s = segmentation_scores(pred, gt, [0, 0, 1], names, offsets, counts)
    third = (2 / 3 + 1 / 2 + 1) / 3
    assert s.shape_miou.tolist() == pytest.approx([1.0, 0.0, third])
    assert s.instance == pytest.approx((1 + 0 + third) / 3)
    assert s.class_ == pytest.approx((0.5 + third) / 2)
    assert s.categories["mug"].accuracy == pytest.approx(0.5)
    assert s.categories["cup3"].accuracy == pytest.approx(0.75)
    assert s.accuracy == pytest.approx(7 / 12)


def test_nearest_visible_fallback_by_hand():
    pts = torch.tensor([[[0.0, 0, 0], [1.0, 0, 0], [0.9, 0, 0], [0.1, 0, 0], [5.0, 0, 0]]])
    seen = torch.tensor([[True, True, False, False, False]])
    assert nearest_visible(pts, seen)[0].tolist() == [0, 1, 1, 0, 1]
    assert nearest_visible(pts, torch.zeros(1, 5, dtype=torch.bool))[0].tolist() == [0, 1, 2, 3, 4]


def random_logits(m=6, v=3, n=40, p=3, seed=0, hidden=0.2):
    g = torch.Generator().manual_seed(seed)
    s = [torch.randn(m, v, n, p, generator=g) * 10 for _ in range(3)]
    visible = torch.rand(m, v, n, generator=g) > hidden
    pts = torch.rand(m, n, 3, generator=g)
    return PointLogits(*s, visible=visible, source=nearest_visible(pts, visible.any(1)))


def test_combine_points_against_a_loop():
    lg = random_logits()
    w, b2, b3 = [1.0, 0.5, 0.25], 0.7, 1.3
    got = combine_points(lg, b2, b3, w)
    m, v, n, _ = lg.s0.shape
    for i in range(m):
        for j in range(n):
            want = sum(w[k] * float(lg.visible[i, k, j]) *
                       (lg.s0[i, k, j] + b2 * lg.s1[i, k, j] + b3 * lg.s2[i, k, j]) for k in range(v))
            assert torch.allclose(got[i, j], want, atol=1e-4)
    pred = predict_local(lg, b2, b3, w)
    assert torch.equal(pred, torch.gather(got.argmax(2), 1, lg.source))
    unseen = ~lg.visible.any(1)
    assert unseen.any() and lg.unseen_share == pytest.approx(float(unseen.float().mean()))
    assert torch.equal(pred[unseen], pred.gather(1, lg.source)[unseen])


def test_search_recovers_planted_parameters():
    lg = random_logits(m=8, v=3, n=60, p=4, seed=1, hidden=0.3)
    b2, b3, w = 0.75, 1.25, [1.0, 0.25, 1.0]
    gt = predict_local(lg, b2, b3, w)                     # labels = the model's own prediction
    found = search_segmentation([Group(lg, gt, 4)])
    assert found.miou == pytest.approx(1.0)
    assert torch.equal(predict_local(lg, found.beta2, found.beta3, found.view_weights), gt)
    assert found.view_weights[1] < 1.0
    assert found.beta2 == pytest.approx(b2, abs=0.3) and found.beta3 == pytest.approx(b3, abs=0.3)
    # dense CLIP (betas 0) and the swapped betas do worse: the planted signal is real
    for params in [(0.0, 0.0, None), (b3, b2, w)]:
        pred = predict_local(lg, *params)
        assert shape_ious(pred, gt, 4).mean() < 0.8


def test_search_ties_keep_the_start_point_betas_0_and_weights_1():
    """Where CALIP's terms and the view weights change nothing (s1 = s2 = 0, every view the
    same s0), every candidate ties: the documented start wins (betas 0, all weights 1), both
    per category and shared; a search that moved on a tie would land elsewhere."""
    lg = random_logits(m=4, v=3, n=30, p=3, seed=2, hidden=0.0)
    same = PointLogits(lg.s0[:, :1].expand_as(lg.s0).clone(), torch.zeros_like(lg.s1),
                       torch.zeros_like(lg.s2), visible=lg.visible, source=lg.source)
    gt = predict_local(same, 0.0, 0.0, None)
    gt[:, ::2] = (gt[:, ::2] + 1) % 3                          # an imperfect score to tie at
    for groups in ([Group(same, gt, 3)], [Group(same, gt, 3), Group(same, gt.flip(1), 3)]):
        found = search_segmentation(groups)
        assert (found.beta2, found.beta3, found.view_weights) == (0.0, 0.0, [1.0, 1.0, 1.0])
        assert 0.0 < found.miou < 1.0


def test_part_prompts_from_templates_and_sentence_files(tmp_path):
    from pointcalip.segmentation.run import part_prompts

    got = part_prompts("motorbike", ["gas tank", "seat"], ["the {part} of a {category}.", "{part}"])
    assert got == [["the gas tank of a motorbike.", "gas tank"], ["the seat of a motorbike.", "seat"]]
    f = tmp_path / "sentences.yaml"
    f.write_text("chair:\n  back: [a chair back., the backrest of a chair.]\n  seat: [a chair seat.]\n")
    assert part_prompts("chair", ["back", "seat"], str(f)) == [
        ["a chair back.", "the backrest of a chair."], ["a chair seat."]]
    with pytest.raises(ValueError, match=r"no sentences for chair.leg"):
        part_prompts("chair", ["back", "leg"], str(f))
    f.write_text("chair:\n  back: []\n")
    with pytest.raises(ValueError, match=r"key chair.back: expected a non-empty list"):
        part_prompts("chair", ["back"], str(f))
    with pytest.raises(ValueError, match=r"needs '\{part\}'"):
        part_prompts("chair", ["back"], ["a photo of a {}."])


def test_segment_batch_size_is_checked_against_its_cost_like_every_run_config():
    from pointcalip.config import load_config
    from pointcalip.core.config_loader import ConfigError
    from pointcalip.segmentation.config import SegmentConfig

    # the size depends on the config's projector (its map size): only its form is pinned here
    with pytest.raises(ConfigError, match=r"batch_size would make [\d,]+\.\d GiB \(per batch: "
                                          r"100000 clouds x 10 views"):
        load_config(SegmentConfig, ["shapenetpart"], ["batch_size=100000"])


def test_part_confusion_by_hand():
    offsets, counts, names = [0, 2], [2, 3], ["mug", "cup3"]
    gt = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3]])
    pred = np.array([[0, 0, 1, 1], [1, 1, 0, 0], [2, 2, 3, 2]])
    s = segmentation_scores(pred, gt, [0, 0, 1], names, offsets, counts)
    # mug: true 0 -> predicted 0 twice, 1 twice; true 1 -> 1 twice, 0 twice (row: true part)
    assert s.categories["mug"].confusion.tolist() == [[2, 2], [2, 2]]
    # cup3 (parts 2, 3, 4 global): true 2 -> 2, 2; true 3 -> 3, 2; part 4 unused
    assert s.categories["cup3"].confusion.tolist() == [[2, 0, 0], [1, 1, 0], [0, 0, 0]]
    skew = np.array([[0, 1, 1, 1]])           # one shape: true 0 -> 1 once, true 1 -> 1 twice
    one = segmentation_scores(skew, gt[:1], [0], names, offsets, counts)
    c = one.categories["mug"].confusion
    assert c.tolist() == [[1, 1], [0, 2]]
    assert np.trace(c) / c.sum() == pytest.approx(one.categories["mug"].accuracy)
    iou = np.diag(c) / (c.sum(0) + c.sum(1) - np.diag(c))       # one shape: the same cells
    assert one.categories["mug"].miou == pytest.approx(iou.mean())
