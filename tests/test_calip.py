"""calip_logits and aggregate_views against slow, literal implementations of docs/calip.md."""
import math

import pytest
import torch
import torch.nn.functional as F

from pointcalip.calip import aggregate_views, calip_logits


def _features(n=5, hw=7, c=16, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    glob = F.normalize(torch.randn(n, c, generator=g), dim=-1)
    spatial = F.normalize(torch.randn(n, hw, c, generator=g), dim=-1)
    text = F.normalize(torch.randn(k, c, generator=g), dim=-1)
    return glob, spatial, text


def _slow(fv, fs, ft):
    """One image, written exactly as docs/calip.md#the-attention-per-view."""
    a = 2 * fs @ ft.T                                        # [HW, K]
    fta = torch.softmax(a, dim=0).T @ fs                     # [K, C]
    fsa = torch.softmax(a, dim=1) @ ft                       # [HW, C]
    fva = fsa.mean(dim=0) + fsa.max(dim=0).values            # [C]
    return 100 * fv @ ft.T, 100 * fv @ fta.T, 100 * fva @ ft.T


def test_matches_per_image_loop():
    glob, spatial, text = _features()
    l0, l1, l2 = calip_logits(glob, spatial, text)
    for i in range(len(glob)):
        r0, r1, r2 = _slow(glob[i], spatial[i], text)
        torch.testing.assert_close(l0[i], r0, atol=1e-4, rtol=0)
        torch.testing.assert_close(l1[i], r1, atol=1e-4, rtol=0)
        torch.testing.assert_close(l2[i], r2, atol=1e-4, rtol=0)
    # l1 and l2 are genuinely different quantities from l0
    assert (l1 - l0).abs().max() > 1 and (l2 - l0).abs().max() > 1


def test_no_mixing_across_batch_and_chunks():
    glob, spatial, text = _features(n=6, seed=1)
    full = calip_logits(glob, spatial, text, chunk_size=None)
    chunked = calip_logits(glob, spatial, text, chunk_size=4)
    single = [calip_logits(glob[i:i + 1], spatial[i:i + 1], text) for i in range(6)]
    for j in range(3):
        torch.testing.assert_close(full[j], chunked[j])
        torch.testing.assert_close(full[j], torch.cat([s[j] for s in single]))


def test_half_inputs_give_float32():
    glob, spatial, text = _features(seed=2)
    out16 = calip_logits(glob.half(), spatial.half(), text.half())
    out32 = calip_logits(glob.half().float(), spatial.half().float(), text.half().float())
    for a, b in zip(out16, out32):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b)


def test_shape_errors():
    glob, spatial, text = _features()
    with pytest.raises(ValueError, match="shapes"):
        calip_logits(glob, spatial, text[:, :8])
    with pytest.raises(ValueError, match="spatial"):
        calip_logits(glob, spatial[0], text)


def test_aggregate_views_formula():
    g = torch.Generator().manual_seed(3)
    l0, l1, l2 = (torch.randn(4, 6, 5, generator=g) for _ in range(3))
    w = [0.25, 1.0, 0.5, 0.75, 1.0, 0.25]
    out = aggregate_views(l0, l1, l2, 1.3, 0.07, w)
    ref = torch.zeros(4, 5)
    for v in range(6):
        ref += w[v] * (l0[:, v] + 1.3 * l1[:, v] + 0.07 * l2[:, v])
    torch.testing.assert_close(out, ref / math.sqrt(6))
    # default weights and a view subset: V is the subset's size
    sub = aggregate_views(l0[:, :3], l1[:, :3], l2[:, :3], 0.0, 0.0)
    torch.testing.assert_close(sub, l0[:, :3].sum(1) / math.sqrt(3))
    with pytest.raises(ValueError, match="6 views"):
        aggregate_views(l0, l1, l2, 0.0, 0.0, [1.0, 1.0])
