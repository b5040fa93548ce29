"""The tokens protocol every backbone answers, and what every backbone family shares.

:class:`ClipBackbone` wraps a frozen, unmodified CLIP model and computes the global feature
``F_v`` and the spatial features ``F_s`` (docs/calip.md#clip-features) by running the model's own
submodules. Its hooks read one model library's models; the defaults read OpenAI's ``clip``
models (the reference of docs/calip.md#clip-features):

- ``_read_visual(model)``: ``is_vit``, ``input_resolution``, ``embed_dim``, ``num_tokens``,
  ``device``, ``dtype``.
- ``_tokens(x)``: model input [N, 3, S, S] -> [N, 1 + HW, C], token 0 the image embedding,
  1..HW the spatial tokens. ResNet: stem, layer1..4, then the attention pool kept at ALL query
  positions; ViT: ``ln_post`` on ALL tokens, then ``@ proj``.
- ``_normalise(x)``: what the resized images become before the model (identity here).
- ``_tokenize(texts)``: sentences -> token ids.

Everything else (resizing, batching, L2 normalisation, prompt ensembling, the engine running
the image tower) is shared. Families (:mod:`pointcalip.backbones.families`) turn names into
backbones; engines (:mod:`pointcalip.backbones.engines`) get :meth:`ClipBackbone.tower`, a
function computing the tokens, never the backbone.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F

with warnings.catch_warnings():  # openai-clip imports the deprecated pkg_resources
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    import clip
from clip.model import CLIP, ModifiedResNet, VisionTransformer

from pointcalip.prompts import check_classnames, check_templates

from .devices import default_images_per_call
from .engines import select_engine
from .tower import Tower
from .weights import file_sha256  # noqa: F401 - re-exported: pointcalip.backbones.base.file_sha256


def attention_pool_tokens(pool: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """CLIP's ResNet attention pool kept at every query position: layer4 features
    x [N, D, H, W] -> [N, 1 + HW, C]. As CLIP does it: flatten the HW tokens, prepend their
    mean, add the positional embedding, multi-head attention with the pool's q/k/v projections
    and ``c_proj`` as output projection; output 0 is CLIP's image embedding, 1..HW the spatial
    tokens. ``pool`` needs ``positional_embedding``, ``num_heads``, ``q_proj``, ``k_proj``,
    ``v_proj``, ``c_proj`` (the ``clip`` and ``open_clip`` pools both have them)."""
    x = x.flatten(2).permute(2, 0, 1)  # [HW, N, D]
    x = torch.cat([x.mean(dim=0, keepdim=True), x], dim=0)  # [1 + HW, N, D]
    x = x + pool.positional_embedding[:, None, :].to(x.dtype)
    x, _ = F.multi_head_attention_forward(
        query=x, key=x, value=x, embed_dim_to_check=x.shape[-1], num_heads=pool.num_heads,
        q_proj_weight=pool.q_proj.weight, k_proj_weight=pool.k_proj.weight,
        v_proj_weight=pool.v_proj.weight, in_proj_weight=None,
        in_proj_bias=torch.cat([pool.q_proj.bias, pool.k_proj.bias, pool.v_proj.bias]),
        bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0.0,
        out_proj_weight=pool.c_proj.weight, out_proj_bias=pool.c_proj.bias,
        use_separate_proj_weight=True, training=False, need_weights=False)
    return x.permute(1, 0, 2)


class ClipBackbone:
    """A frozen CLIP model that encodes images into global + spatial tokens and text into
    template-ensembled class features.

    Attributes: ``model`` (the unmodified clip model, eval, frozen), ``name``, ``identity``
    (identifies the weights, for feature-cache keys), ``embed_dim`` (C), ``input_resolution``
    (S), ``num_tokens`` (HW), ``device``, ``dtype``, ``is_vit``, ``engine`` (what runs the
    image tower: ``"eager"`` (PyTorch) or ``"onnxruntime"``; see :meth:`set_engine`) and
    ``images_per_call`` (images per forward call when ``encode_images`` gets no
    ``batch_size``; None: all in one call).

    ResNet image towers run in the channels_last memory format (weights and input): faster
    on the CPU (RN50: ~1.15x at 8 images per call, ~1.6x at 96) and what GPUs prefer; the
    same numbers up to float rounding.

    Subclasses for other model libraries
    (:class:`pointcalip.backbones.families.openclip.OpenClipBackbone`) override the hooks
    ``_read_visual``, ``_normalise``, ``_tokens`` and ``_tokenize`` and keep the rest
    (resizing, batching, L2 normalisation, prompt ensembling, engines).
    """

    def __init__(self, model: CLIP, name: str, identity: str):
        self.model = model.eval().requires_grad_(False)
        self.name = name
        self.identity = identity
        self._read_visual(model)
        if not self.is_vit:
            self.model.visual.to(memory_format=torch.channels_last)
        self.images_per_call = default_images_per_call(self.device)
        self.engine = "eager"
        self._engine_tokens = None  # set by set_engine: model input -> tokens, as _tokens
        # (None: ``_tokens`` itself)

    def _read_visual(self, model: CLIP) -> None:
        """Set ``is_vit``, ``input_resolution``, ``embed_dim``, ``num_tokens``, ``device`` and
        ``dtype`` from the model."""
        visual = model.visual
        self.is_vit = isinstance(visual, VisionTransformer)
        if not self.is_vit and not isinstance(visual, ModifiedResNet):
            raise TypeError(f"{self.name}: unsupported visual encoder {type(visual).__name__}")
        self.input_resolution = int(visual.input_resolution)
        self.embed_dim = int(model.text_projection.shape[1])
        pos = visual.positional_embedding if self.is_vit else visual.attnpool.positional_embedding
        self.num_tokens = int(pos.shape[0]) - 1
        self.device = visual.conv1.weight.device
        self.dtype = visual.conv1.weight.dtype

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, C={self.embed_dim}, "
                f"HW={self.num_tokens}, S={self.input_resolution}, device={self.device}, "
                f"dtype={self.dtype})")

    # ------------------------------------------------------------------ images
    def _resnet_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """[N, 3, S, S] -> [N, 1 + HW, C] attention-pool outputs at all query positions."""
        v: ModifiedResNet = self.model.visual
        for i, (conv, bn) in enumerate([(v.conv1, v.bn1), (v.conv2, v.bn2), (v.conv3, v.bn3)], 1):
            relu = getattr(v, f"relu{i}", None) or v.relu  # older clip: one shared `relu`
            x = relu(bn(conv(x)))
        x = v.avgpool(x)
        x = v.layer4(v.layer3(v.layer2(v.layer1(x))))
        return attention_pool_tokens(v.attnpool, x)

    def _vit_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """[N, 3, S, S] -> [N, 1 + HW, C]: ln_post and proj applied to every token."""
        v: VisionTransformer = self.model.visual
        x = v.conv1(x).flatten(2).permute(0, 2, 1)  # [N, HW, width]
        cls = v.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + v.positional_embedding.to(x.dtype)
        x = v.ln_pre(x)
        x = v.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
        x = v.ln_post(x)
        return x @ v.proj if v.proj is not None else x

    def _tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Model input [N, 3, S, S] -> [N, 1 + HW, C]: token 0 is the image embedding, 1..HW
        the spatial tokens (not normalised)."""
        return self._vit_tokens(x) if self.is_vit else self._resnet_tokens(x)

    def _image_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Model input [N, 3, S, S] -> [N, 1 + HW, C] through the selected engine
        (``_tokens`` itself when eager)."""
        return self._tokens(x) if self._engine_tokens is None else self._engine_tokens(x)

    def set_engine(self, engine: str = "auto", cache_dir: Union[str, Path, None] = None) -> str:
        """Choose what runs the image tower, one of the registered engines (``"auto"``,
        ``"eager"``, ``"onnxruntime"``; :func:`pointcalip.backbones.engines.select_engine`
        says how ``auto`` chooses, where graphs are cached and which errors are raised). The
        engine gets :meth:`tower`, never the backbone. Returns the engine now in use
        (``self.engine``)."""
        self.engine, self._engine_tokens = "eager", None
        self.engine, self._engine_tokens = select_engine(self.tower(), engine, cache_dir)
        return self.engine

    def tower(self) -> Tower:
        """What an engine needs of the image tower: ``_tokens``, the model whose weights it
        reads, a probe input, and names for logs and cached graphs."""
        visual = self.model.visual
        tensors = list(visual.parameters()) + list(visual.buffers())
        return Tower(name=self.name,
                     key=f"{type(self).__name__}|{self.identity}|{self.input_resolution}",
                     tokens=self._tokens, probe=self._probe, weights=self.model,
                     device=torch.device(self.device), precision=self.precision,
                     nbytes=sum(t.numel() * t.element_size() for t in tensors))

    def _probe(self, n: int, seed: int) -> torch.Tensor:
        """A seeded random model input [n, 3, S, S], as ``_model_input`` makes it."""
        g = torch.Generator().manual_seed(seed)
        s = self.input_resolution
        return self._model_input(torch.rand(n, 3, s, s, generator=g))

    def _model_input(self, images: torch.Tensor) -> torch.Tensor:
        """Images [n, 3, S', S'] as the projectors make them -> the model's input [n, 3, S, S]
        in ``self.dtype`` on ``self.device``: resized bilinearly (align_corners=True) when
        S' != S, then ``_normalise``d: left as they are for OpenAI models, which get the
        projectors' images without mean/std normalisation, as the published PointCLIP code
        gives them. ResNets get it in the channels_last memory format, as their weights."""
        x = images.to(self.device, torch.float32)
        if x.shape[-2:] != (self.input_resolution, self.input_resolution):
            x = F.interpolate(x, size=(self.input_resolution,) * 2, mode="bilinear",
                              align_corners=True)
        x = self._normalise(x).to(self.dtype)
        return x if self.is_vit else x.contiguous(memory_format=torch.channels_last)

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Resized images [n, 3, S, S] float32 -> what the model gets; the identity here."""
        return x

    @property
    def precision(self) -> str:
        """The weights' dtype as a word ("float32", "float16"); part of feature-store keys."""
        return str(self.dtype).replace("torch.", "")

    @property
    def logit_scale(self) -> float:
        """The model's own learnt logit scale, ``exp(model.logit_scale)`` (100 for OpenAI's
        models; CALIP's formulas use the fixed 100 of docs/calip.md#the-attention-per-view)."""
        return float(self.model.logit_scale.detach().float().exp())

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor, batch_size: Optional[int] = None,
                      return_norms: bool = False):
        """images: [N, 3, S', S'] as the projectors make them (values in [0, 1], no CLIP
        mean/std) -> (global [N, C], spatial [N, HW, C]), float32 on ``self.device``, every
        row L2-normalised. Images whose size is not the model's input resolution are resized
        bilinearly (align_corners=True); see ``_model_input`` for what else the model gets
        (open_clip backbones apply their own mean/std there).

        ``batch_size``: images per forward call; None: ``self.images_per_call`` (8 on the CPU,
        all at once on a GPU). The results do not depend on it beyond float rounding.

        ``return_norms``: also return ``norms`` [N], the length of each global feature before
        normalisation (``global * norms[:, None]`` is CLIP's raw image embedding, which
        PointCLIP's adapter consumes)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"encode_images expects images [N, 3, S, S], got {tuple(images.shape)}")
        if batch_size is not None and (isinstance(batch_size, bool) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
        n = images.shape[0]
        step = batch_size or self.images_per_call or max(n, 1)
        glob, spatial, norms = [], [], []
        for start in range(0, n, step):
            tokens = self._image_tokens(self._model_input(images[start:start + step])).float()
            norms.append(tokens[:, 0].norm(dim=-1))
            tokens = F.normalize(tokens, dim=-1)
            glob.append(tokens[:, 0])
            spatial.append(tokens[:, 1:])
        if glob:
            out = (torch.cat(glob), torch.cat(spatial), torch.cat(norms))
        else:
            c = self.embed_dim
            out = (torch.zeros(0, c, device=self.device),
                   torch.zeros(0, self.num_tokens, c, device=self.device),
                   torch.zeros(0, device=self.device))
        return out if return_norms else out[:2]

    # -------------------------------------------------------------------- text
    def encode_text(self, classnames: Sequence[str], templates: Sequence[str],
                    batch_size: int = 1024) -> torch.Tensor:
        """-> [K, C] float32 unit rows: per class, every template filled with its name (``_``
        becomes a space), ensembled by :meth:`encode_prompts`."""
        classnames, templates = check_classnames(classnames), check_templates(templates)
        return self.encode_prompts(
            [[t.format(c.replace("_", " ")) for t in templates] for c in classnames], batch_size)

    @torch.no_grad()
    def encode_prompts(self, prompts: Sequence[Sequence[str]], batch_size: int = 1024
                       ) -> torch.Tensor:
        """prompts: K lists of complete sentences (one list per class, any lengths) -> [K, C]
        float32 unit rows: encode each sentence, L2-normalise it, average per class,
        L2-normalise again (CLIP's prompt ensembling)."""
        if not prompts or any(isinstance(p, str) or not p for p in prompts):
            raise ValueError("encode_prompts needs one non-empty list of sentences per class")
        texts = [t for per_class in prompts for t in per_class]
        tokens = self._tokenize(texts)
        feats = torch.cat([self.model.encode_text(tokens[i:i + batch_size].to(self.device))
                           for i in range(0, len(texts), batch_size)])
        feats = F.normalize(feats.float(), dim=-1)
        owner = torch.repeat_interleave(torch.arange(len(prompts), device=feats.device),
                                        torch.tensor([len(p) for p in prompts], device=feats.device))
        means = torch.zeros(len(prompts), feats.shape[1], device=feats.device).index_add_(0, owner, feats)
        return F.normalize(means, dim=-1)   # the mean's direction: dividing by the count is moot

    def _tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        """Sentences -> token ids [n, context] (CLIP's BPE tokenizer)."""
        return clip.tokenize(list(texts), context_length=self.model.context_length)


