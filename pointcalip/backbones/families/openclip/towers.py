"""How PointCALIP reads an open_clip model's tokens: one reader per family of image towers
(:func:`token_reader`) and :class:`OpenClipBackbone`, the frozen model with
:class:`~pointcalip.backbones.base.ClipBackbone`'s surface. Imports torch (and open_clip when a
reader or backbone is made): the family module (:mod:`pointcalip.backbones.families.openclip`)
imports this one only to load a model."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ...base import ClipBackbone, attention_pool_tokens
from .library import ATTENTION_POOLED, NOT_READ, SUPPORTED, library

__all__ = ["OpenClipBackbone", "token_reader"]


class _Reader:
    """How one family of open_clip image towers gives its tokens: ``__call__`` maps the model
    input [N, 3, S, S] to [N, 1 + HW, C] (token 0: the library's own image embedding; 1..HW:
    the spatial tokens); ``label``, ``is_vit``, ``num_tokens`` (HW), ``embed_dim`` (C)."""

    label: str
    is_vit: bool
    num_tokens: int
    embed_dim: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class _OpenClipViT(_Reader):
    """open_clip's own VisionTransformer (OpenAI-style ViTs, LAION, DataComp, DFN, MetaCLIP,
    CLIPA): ``forward_intermediates`` gives the library's image embedding and the last block's
    tokens through ``ln_post``; the spatial tokens are those times ``proj``. Class-token and
    average-pooled towers (``final_ln_after_pool`` or not) are read alike."""

    is_vit = True

    def __init__(self, visual: nn.Module):
        if visual.attn_pool is not None:
            raise ValueError(ATTENTION_POOLED)
        if visual.pool_type not in ("tok", "avg"):
            raise ValueError(f"has pool_type {visual.pool_type!r} (no single image embedding)")
        self.visual = visual
        self.label = ("ViT, class token" if visual.pool_type == "tok" else
                      "ViT, mean of the patch tokens")
        self.num_tokens = int(visual.grid_size[0] * visual.grid_size[1])
        self.embed_dim = int(visual.output_dim if visual.proj is not None
                             else visual.transformer.width)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.visual.forward_intermediates(x, indices=1, normalize_intermediates=True,
                                                output_fmt="NLC")
        spatial = out["image_intermediates"][-1]                   # [N, HW, width], ln_post'ed
        if self.visual.proj is not None:
            spatial = spatial @ self.visual.proj
        return torch.cat([out["image_features"][:, None], spatial], dim=1)


class _OpenClipResNet(_Reader):
    """open_clip's ModifiedResNet (RN50, RN101, ... of OpenAI, YFCC-15M, CC12M): stem,
    layer1..4, then the attention pool kept at all query positions."""

    is_vit = False
    label = "ResNet, attention pool at every position"

    def __init__(self, visual: nn.Module):
        self.visual = visual
        self.num_tokens = int(visual.attnpool.positional_embedding.shape[0]) - 1
        self.embed_dim = int(visual.attnpool.c_proj.out_features)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        v = self.visual
        x = v.layer4(v.layer3(v.layer2(v.layer1(v.stem(x)))))
        return attention_pool_tokens(v.attnpool, x)


class _TimmViT(_Reader):
    """A timm ViT inside open_clip's TimmModel (EVA-CLIP, ViTamin, MobileCLIP-B): the trunk's
    ``forward_features`` (through its final norm), then token 0 = the library's embedding
    (``head(trunk.forward_head(...))``) and the spatial tokens = each patch token through the
    same per-token steps (``fc_norm``, the trunk's head, open_clip's projection head). Prefix
    tokens (class, registers) are dropped from the spatial tokens."""

    is_vit = True

    def __init__(self, visual: nn.Module):
        from timm.models.eva import Eva
        from timm.models.vision_transformer import VisionTransformer

        trunk = visual.trunk
        if not isinstance(trunk, (VisionTransformer, Eva)):
            raise ValueError(f"is timm's {type(trunk).__name__} ({NOT_READ})")
        if getattr(trunk, "attn_pool", None) is not None or hasattr(visual.head, "pool"):
            raise ValueError(ATTENTION_POOLED)
        pool = trunk.global_pool
        if pool not in ("token", "avg") or (pool == "token" and trunk.cls_token is None):
            raise ValueError(f"pools with timm's global_pool={pool!r} (supported: a class token, "
                             "'token', or the mean, 'avg')")
        self.visual, self.trunk = visual, trunk
        self.label = ("ViT (timm), class token" if pool == "token" else
                      "ViT (timm), mean of the patch tokens")
        embed = trunk.patch_embed
        self.num_tokens = int(getattr(embed, "num_patches", 0) or
                              embed.grid_size[0] * embed.grid_size[1])
        projections = [m for m in visual.head.modules() if isinstance(m, nn.Linear)]
        if projections:                                 # open_clip's head: linear or MLP
            self.embed_dim = int(projections[-1].out_features)
        elif isinstance(trunk.head, nn.Linear):         # the trunk's classifier as projection
            self.embed_dim = int(trunk.head.out_features)
        else:
            self.embed_dim = int(trunk.num_features)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        t = self.trunk
        feats = t.forward_features(x)                                   # [N, prefix + HW, D]
        pooled = self.visual.head(t.forward_head(feats))                # = TimmModel.forward
        spatial = t.head(t.head_drop(t.fc_norm(feats[:, t.num_prefix_tokens:])))
        return torch.cat([pooled[:, None], self.visual.head(spatial)], dim=1)


def token_reader(visual: nn.Module) -> _Reader:
    """The reader of an open_clip image tower's tokens; ValueError (phrased to follow "whose
    image tower") for families without spatial tokens CALIP can use."""
    oc = library()
    from open_clip.modified_resnet import ModifiedResNet
    from open_clip.timm_model import TimmModel
    from open_clip.transformer import VisionTransformer

    if isinstance(visual, VisionTransformer):
        return _OpenClipViT(visual)
    if isinstance(visual, ModifiedResNet):
        return _OpenClipResNet(visual)
    if isinstance(visual, TimmModel):
        return _TimmViT(visual)
    raise ValueError(f"is a {type(visual).__name__} (open_clip {oc.__version__}), which "
                     "PointCALIP does not read for spatial tokens")


class OpenClipBackbone(ClipBackbone):
    """A frozen open_clip model with :class:`ClipBackbone`'s surface (``encode_images``,
    ``encode_text``, ``encode_prompts``, ``identity``, ``input_resolution``, ``num_tokens``,
    ``embed_dim``, ...), plus ``family`` (how its tokens are read), ``image_mean`` and
    ``image_std`` (from the model's preprocess config; OpenAI's values when it has none).

    ``encode_images``: images [N, 3, S', S'] as the projectors make them -> resized bilinearly
    to the model's S x S, normalised per channel with ``(x - image_mean) / image_std``, then
    (global [N, C], spatial [N, HW, C]) unit rows; the global row is the library's own
    ``model.encode_image(..., normalize=True)``. Text goes through ``tokenizer`` (the
    architecture's own; CLIP's BPE tokenizer at the text tower's context length if None).
    """

    def __init__(self, model: nn.Module, name: str, identity: str, tokenizer=None):
        oc = library()
        try:
            self.reader = token_reader(model.visual)
        except ValueError as err:
            raise ValueError(f"{name} cannot be used: its image tower {err}; {SUPPORTED}") from None
        self.family = self.reader.label
        pre = oc.get_model_preprocess_cfg(model)
        self.image_mean = tuple(float(v) for v in pre.get("mean") or oc.OPENAI_DATASET_MEAN)
        self.image_std = tuple(float(v) for v in pre.get("std") or oc.OPENAI_DATASET_STD)
        if tokenizer is None:
            context = oc.get_model_tokenize_cfg(model).get("context_length", 77)
            tokenizer = oc.SimpleTokenizer(context_length=context)
        self.tokenizer = tokenizer
        super().__init__(model, name, identity)
        shape = (1, 3, 1, 1)
        self._mean = torch.tensor(self.image_mean, device=self.device).view(shape)
        self._std = torch.tensor(self.image_std, device=self.device).view(shape)

    def _read_visual(self, model: nn.Module) -> None:
        visual = model.visual
        size = visual.image_size
        height, width = (size, size) if isinstance(size, int) else tuple(size)
        if height != width:
            raise ValueError(f"{self.name}: input size {height} x {width} is not square; "
                             "PointCALIP's views are square images")
        self.is_vit = self.reader.is_vit
        self.input_resolution = int(height)
        self.num_tokens = self.reader.num_tokens
        self.embed_dim = self.reader.embed_dim
        conv = next(m for m in visual.modules() if isinstance(m, nn.Conv2d))
        self.device, self.dtype = conv.weight.device, conv.weight.dtype

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, family={self.family!r})"

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self._mean) / self._std

    def _tokens(self, x: torch.Tensor) -> torch.Tensor:
        return self.reader(x)

    def _tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        return self.tokenizer(list(texts))
