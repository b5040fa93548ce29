"""Dense CALIP logits against the literal formulas; smoothing and pixel reads by hand."""
import torch
import torch.nn.functional as F

from pointcalip.dense_calip import (dense_calip_logits, dense_logits, read_at_pixels,
                                    smooth_grid, tokens_to_grid, upsample_grid)


def unit(x):
    return x / x.norm(dim=-1, keepdim=True)


def literal(fs, ft, beta2, beta3):
    """One view, spelled out: A, F_t^a, F_s^a, S0..S2 (float64)."""
    fs, ft = fs.double(), ft.double()
    a = fs @ ft.T / 0.5
    ft_a = torch.softmax(a, dim=0).T @ fs
    fs_a = torch.softmax(a, dim=1) @ ft
    s0, s1, s2 = 100 * fs @ ft.T, 100 * fs @ ft_a.T, 100 * fs_a @ ft.T
    return s0 + beta2 * s1 + beta3 * s2


def test_matches_literal_formulas_and_betas_zero_is_dense_clip():
    g = torch.Generator().manual_seed(0)
    fs = unit(torch.randn(3, 49, 16, generator=g))
    ft = unit(torch.randn(4, 16, generator=g))
    s0, s1, s2 = dense_calip_logits(fs, ft)
    assert s0.shape == (3, 49, 4)
    for i in range(3):
        for b2, b3 in [(0.0, 0.0), (1.5, 0.0), (0.0, 2.0), (0.7, -1.3)]:
            want = literal(fs[i], ft, b2, b3).float()
            assert torch.allclose(dense_logits(s0, s1, s2, b2, b3)[i], want, atol=1e-3)
    assert torch.allclose(s0, 100 * fs @ ft.T, atol=1e-4)       # V2's dense CLIP
    # per-image text sets give the same as one shared set
    t0, t1, t2 = dense_calip_logits(fs, ft.expand(3, 4, 16))
    assert torch.allclose(t1, s1, atol=1e-4) and torch.allclose(t2, s2, atol=1e-4)
    # S1 and S2 carry real signal (not copies of S0)
    assert (s1 - s0).abs().mean() > 1 and (s2 - s0).abs().mean() > 1


def test_smoothing_by_hand():
    grid = torch.arange(2 * 7 * 7, dtype=torch.float32).view(1, 2, 7, 7) ** 1.3
    got = smooth_grid(grid)
    padded = F.pad(grid, (2, 3, 2, 3), mode="replicate")
    for y in range(7):
        for x in range(7):
            assert torch.allclose(got[0, :, y, x], padded[0, :, y:y + 6, x:x + 6].mean((1, 2)))
    # the replicate padding keeps a constant grid constant
    assert torch.allclose(smooth_grid(torch.full((1, 1, 7, 7), 3.0)), torch.full((1, 1, 7, 7), 3.0))


def test_read_at_pixels_equals_full_upsampling():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 49, 3, generator=g)
    grid = tokens_to_grid(logits)
    assert torch.equal(grid[1, 2, 3, 4], logits[1, 3 * 7 + 4, 2])   # row-major tokens
    xy = torch.rand(2, 50, 2, generator=g) * 223
    for smooth in (False, True):
        full = upsample_grid(smooth_grid(grid) if smooth else grid, 224)   # [2, 3, 224, 224]
        x, y = xy[..., 0].round().long(), xy[..., 1].round().long()
        want = torch.stack([full[i][:, y[i], x[i]].T for i in range(2)])
        assert torch.allclose(read_at_pixels(grid, xy, 224, smooth=smooth), want, atol=1e-5)
