"""Dense CALIP: per-position part logits of one view (docs/segmentation.md#dense-calip-per-view).

With unit rows ``F_s`` [HW, C] (the view's spatial tokens) and ``F_t`` [P, C] (the part texts
of the shape's category)::

    A     = F_s F_t^T / tau                        [HW, P]   (tau 0.5)
    F_t^a = softmax_HW(A)^T F_s                    [P, C]
    F_s^a = softmax_P(A) F_t                       [HW, C]
    S0 = 100 F_s F_t^T,  S1 = 100 F_s F_t^a^T,  S2 = 100 F_s^a F_t^T
    S  = S0 + beta2 S1 + beta3 S2                  (beta2 = beta3 = 0: V2's dense CLIP)

No re-normalisation. The attention is :func:`pointcalip.calip.calip_attention`, the one used
for classification, and the terms combine with :func:`pointcalip.calip.combine_view_logits`.
The grid [P, h, w] is then smoothed (optional: replicate-pad left 2, right 3, top 2, bottom 3
and a 6 x 6 mean, stride 1, as V2), upsampled bilinearly to the image and read at each
point's pixel; :func:`read_at_pixels` does the read without forming the full image.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from .calip import LOGIT_SCALE, calip_attention, combine_view_logits

SMOOTH_KERNEL = 6
SMOOTH_PAD = (2, 3, 2, 3)  # left, right, top, bottom


def dense_calip_logits(spatial: torch.Tensor, text: torch.Tensor, temperature: float = 0.5
                       ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """spatial [n, HW, C] (unit rows), text [P, C] or [n, P, C] (unit rows; one part-text set
    per image when 3-D) -> (S0, S1, S2), each [n, HW, P] float32, already x100."""
    if spatial.dim() != 3 or text.dim() not in (2, 3) or spatial.shape[-1] != text.shape[-1]:
        raise ValueError(f"dense_calip_logits expects spatial [n, HW, C] and text [P, C] or "
                         f"[n, P, C]; got {tuple(spatial.shape)} and {tuple(text.shape)}")
    s = spatial.to(torch.float32)
    t = text.to(s.device, torch.float32)
    over_hw, over_p = calip_attention(s, t, temperature)                # [n, HW, P]
    per_image = t.dim() == 3
    s0 = torch.einsum("nhc,npc->nhp" if per_image else "nhc,pc->nhp", s, t)
    text_a = torch.einsum("nhp,nhc->npc", over_hw, s)                   # F_t^a [n, P, C]
    s1 = torch.einsum("nhc,npc->nhp", s, text_a)
    # F_s^a F_t^T = softmax_P(A) (F_t F_t^T): no [n, HW, C] tensor is formed
    gram = torch.einsum("npc,nqc->npq" if per_image else "pc,qc->pq", t, t)
    s2 = torch.einsum("nhp,npq->nhq" if per_image else "nhp,pq->nhq", over_p, gram)
    return LOGIT_SCALE * s0, LOGIT_SCALE * s1, LOGIT_SCALE * s2


def dense_logits(s0: torch.Tensor, s1: torch.Tensor, s2: torch.Tensor,
                 beta2: float = 0.0, beta3: float = 0.0) -> torch.Tensor:
    """``S0 + beta2 S1 + beta3 S2`` (any matching shapes)."""
    return combine_view_logits(s0, s1, s2, beta2, beta3)


def smooth_grid(grid: torch.Tensor) -> torch.Tensor:
    """grid [n, P, h, w] -> same shape: replicate-pad (2, 3, 2, 3), 6 x 6 mean, stride 1."""
    padded = F.pad(grid, SMOOTH_PAD, mode="replicate")
    return F.avg_pool2d(padded, SMOOTH_KERNEL, stride=1)


def upsample_grid(grid: torch.Tensor, image_size: int) -> torch.Tensor:
    """grid [n, P, h, w] -> [n, P, S, S]: bilinear, align_corners=False (the full image; the
    reference for :func:`read_at_pixels`)."""
    return F.interpolate(grid, size=(image_size, image_size), mode="bilinear",
                         align_corners=False)


def read_at_pixels(grid: torch.Tensor, xy: torch.Tensor, image_size: int,
                   smooth: bool = True) -> torch.Tensor:
    """grid [n, P, h, w] logits, xy [n, M, 2] (x = column, y = row) image pixels
    -> [n, M, P]: the value of the (smoothed) grid, upsampled bilinearly to the image, at each
    point's pixel (xy rounded to the nearest pixel). Reads only those pixels: the upsampled
    image's pixel (x, y) is the grid sampled at ``(x + 0.5) * w / S - 0.5`` (clamped to the
    grid), which ``grid_sample`` computes directly."""
    if smooth:
        grid = smooth_grid(grid)
    n, p, h, w = grid.shape
    pix = xy.to(grid.dtype).round()
    # grid_sample (align_corners=False) reads source pixel (u + 1) * w / 2 - 0.5 at u; we want
    # source pixel (x + 0.5) * w / S - 0.5, i.e. u = 2 (x + 0.5) / S - 1; border padding
    # clamps to the edge as bilinear upsampling does.
    u = 2 * (pix + 0.5) / image_size - 1
    out = F.grid_sample(grid, u.view(n, -1, 1, 2), mode="bilinear", padding_mode="border",
                        align_corners=False)                                # [n, P, M, 1]
    return out[..., 0].transpose(1, 2)


def tokens_to_grid(logits: torch.Tensor, grid_hw: Optional[Tuple[int, int]] = None
                   ) -> torch.Tensor:
    """logits [n, HW, P] (row-major positions) -> [n, P, h, w] (square unless grid_hw)."""
    n, hw, p = logits.shape
    h, w = grid_hw or (int(round(hw ** 0.5)),) * 2
    if h * w != hw:
        raise ValueError(f"{hw} spatial tokens do not form a {h} x {w} grid; pass grid_hw")
    return logits.transpose(1, 2).reshape(n, p, h, w)
