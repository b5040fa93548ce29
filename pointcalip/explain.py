"""What CALIP looks at: each view's depth map with CALIP's spatial attention over it.

    expl = explain_cloud(points, backbone, projector, classnames, "pointclip", beta2, beta3)
    expl.top(3)                     # [(class, probability), ...] of the view-aggregated logits
    expl.attention                  # [V, K, HW]: softmax over positions, per view and class
    render(expl, "chair.png", target=2, title="chair.ply")    # .png .jpg .jpeg .pdf .svg

The attention is the one CALIP computes (docs/calip.md#the-attention-per-view):
``softmax_HW(A)`` with ``A = 2 F_s F_t^T`` [HW, K], the weights with which each class's
visual-guided text feature ``F_t^a`` pools the view's spatial tokens. It is consistent with
the logits by construction: ``l1[v, k] = 100 * sum_hw attention[v, k, hw] * (F_s[v, hw] .
F_v[v])`` (tested). The token grid is sqrt(HW) x sqrt(HW) (7 x 7 for RN50 at 224 px, 14 x 14
for ViT-B/16), upsampled bilinearly to the view's CLIP image for display.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from .report import plots
from .backbones import ClipBackbone
from .calip import ViewWeights
from .head import CalipHead
from .prompts import check_classnames, class_prompts


def spatial_attention(spatial: torch.Tensor, text: torch.Tensor, temperature: float = 0.5
                      ) -> torch.Tensor:
    """spatial [V, HW, C], text [K, C] (unit rows) -> attention [V, K, HW]: for every view
    and class, ``softmax over positions of (F_s F_t^T / temperature)`` (CALIP: temperature
    0.5, i.e. ``A = 2 F_s F_t^T``); each [HW] row sums to 1."""
    if spatial.dim() != 3 or text.dim() != 2 or spatial.shape[2] != text.shape[1]:
        raise ValueError(f"spatial_attention expects spatial [V, HW, C] and text [K, C]; got "
                         f"{tuple(spatial.shape)} and {tuple(text.shape)}")
    a = torch.einsum("vhc,kc->vkh", spatial.float(), text.to(spatial.device).float())
    return torch.softmax(a / temperature, dim=-1)


def token_grid(num_tokens: int) -> int:
    """The side of the square token grid (49 -> 7, 196 -> 14)."""
    side = math.isqrt(num_tokens)
    if side * side != num_tokens:
        raise ValueError(f"{num_tokens} spatial tokens do not form a square grid")
    return side


@dataclass
class Explanation:
    """One cloud seen by CALIP. images [V, S, S] (the CLIP images' first channel, scaled to
    [0, 1] for display), attention [V, K, HW], logits [K] (view-aggregated CALIP logits)."""

    images: torch.Tensor
    attention: torch.Tensor
    logits: torch.Tensor
    classnames: List[str]

    @property
    def probabilities(self) -> torch.Tensor:
        """[K] softmax of the logits."""
        return self.logits.float().softmax(-1)

    @property
    def predicted(self) -> int:
        return int(self.logits.argmax())

    def top(self, k: int = 3) -> List[Tuple[str, float]]:
        values, idx = self.probabilities.topk(min(k, len(self.classnames)))
        return [(self.classnames[i], float(v)) for v, i in zip(values.tolist(), idx.tolist())]

    def upsampled(self, class_index: int) -> torch.Tensor:
        """[V, S, S] attention to one class, bilinearly upsampled from the token grid to the
        image size, each view scaled to [0, 1] from its own minimum to its maximum (a view
        whose attention is uniform, to float precision, is all 0)."""
        v, _, hw = self.attention.shape
        side = token_grid(hw)
        maps = self.attention[:, class_index].reshape(v, 1, side, side).double()
        up = F.interpolate(maps, size=self.images.shape[-2:], mode="bilinear",
                           align_corners=False)[:, 0]
        low = up.flatten(1).amin(dim=1)[:, None, None]
        spread = up.flatten(1).amax(dim=1)[:, None, None] - low
        flat = spread <= 1e-6 / hw                     # uniform attention is 1 / HW everywhere
        scaled = (up - low) / spread.clamp_min(1e-300)
        return torch.where(flat, torch.zeros_like(up), scaled).float()


@torch.no_grad()
def explain_cloud(points: torch.Tensor, backbone: ClipBackbone, projector,
                  classnames: Sequence[str], prompts: Union[str, Sequence[str]] = "pointclip",
                  beta2: float = 0.0, beta3: float = 0.0,
                  view_weights: ViewWeights = None) -> Explanation:
    """points [N, 3] -> :class:`Explanation` (``prompts``: a template set name, a template
    list or a per-class prompt file, as ``templates:`` in configs)."""
    names = check_classnames(classnames)
    points = torch.as_tensor(points, dtype=torch.float32)
    if points.dim() != 2 or points.shape[1] != 3:
        raise ValueError(f"explain_cloud expects one cloud [N, 3], got {tuple(points.shape)}")
    images = projector(points[None].to(backbone.device))[0]              # [V, 3, S, S]
    g, s = backbone.encode_images(images)                                  # [V, C], [V, HW, C]
    text = backbone.encode_prompts(class_prompts(names, prompts))          # [K, C]
    head = CalipHead(text, beta2, beta3, view_weights, num_views=images.shape[0]).to(g.device)
    logits = head(g[None], s[None])[0]
    shown = images[:, 0].float().cpu()
    shown = shown / shown.max().clamp_min(1e-12)
    return Explanation(shown, spatial_attention(s, head.text, head.temperature).cpu(),
                       logits.cpu(), names)


#: file extension -> matplotlib format: what `render` writes
IMAGE_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".pdf": "pdf", ".svg": "svg"}


def image_format(path: Union[str, Path]) -> str:
    """The format an output file's extension names (``x.jpg`` -> ``"jpeg"``); any other
    extension is a ValueError listing those written (:data:`IMAGE_FORMATS`)."""
    suffix = Path(path).suffix.lower()
    if suffix not in IMAGE_FORMATS:
        named = f"extension {suffix!r}" if suffix else "no extension"
        raise ValueError(f"cannot write the figure {path}: it has {named}; end the name with "
                         f"one of {', '.join(IMAGE_FORMATS)} (PNG, JPEG, PDF or SVG)")
    return IMAGE_FORMATS[suffix]


def explain_rows(expl: Explanation, target: Optional[int]) -> List[Tuple[str, int]]:
    """(row label, class index): the predicted class, then ``target`` if it differs."""
    pred = expl.predicted
    if target is None or target == pred:
        chosen = " (= chosen)" if target == pred else ""
        return [(f"predicted: {expl.classnames[pred]}{chosen}", pred)]
    return [(f"predicted: {expl.classnames[pred]}", pred),
            (f"chosen: {expl.classnames[target]}", target)]


def render(expl: Explanation, path: Union[str, Path], target: Optional[int] = None,
           title: str = "", view_titles: Optional[Sequence[str]] = None) -> Tuple[int, int]:
    """Write the figure, in the format ``path``'s extension names (:func:`image_format`: PNG,
    JPEG, PDF or SVG): one column per view, one row for the predicted class and one for
    ``target`` (a class index; skipped when it is the predicted one), titled with the top-3
    probabilities. -> (width, height) in pixels (:func:`pointcalip.report.plots.attention_grid_size`)."""
    fmt = image_format(path)
    rows = explain_rows(expl, target)
    top = ", ".join(f"{name} {p:.1%}" for name, p in expl.top(3))
    heading = f"{title}  top-3: {top}" if title else f"top-3: {top}"
    views = view_titles or [f"view {i}" for i in range(expl.images.shape[0])]
    overlays = [(label, expl.upsampled(k).numpy()) for label, k in rows]
    return plots.attention_grid(Path(path), expl.images.numpy().astype(np.float32), overlays,
                                views, heading + "\nCALIP spatial attention (softmax over "
                                "positions) over each view", fmt=fmt)
