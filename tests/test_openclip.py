"""open_clip backbones (pointcalip/backbones/families/openclip/) on tiny models built from small architecture
configs: nothing is downloaded.

Two kinds of tiny models:

- "twins": open_clip models with exactly the architecture and weights of the tiny OpenAI CLIPs
  of tests/tiny_clip.py (as load_clip reads them), loaded through load_clip from a local-dir
  folder or from a registered architecture plus a weights file. With mean 0 and std 1 they
  must give the OpenAI backbones' features, CALIP logits and zero-shot results; with another
  mean/std, the OpenAI features of (images - mean) / std.
- towers of the other families (open_clip ViTs pooled by mean, timm ViTs and EVA), built in
  memory from small settings.

For every family, token 0 must equal the library's own normalised ``encode_image`` of the
normalised images.
"""
import json
import logging
import math
import socket
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import open_clip
import pytest
import timm
import torch
import torch.nn.functional as F
import yaml
from open_clip.timm_model import TimmModel
from timm.layers import AttentionPool2d, Mlp
from torch import nn

import planted as P
from pointcalip import PointCALIP
from pointcalip.backbones import checkpoint_identity, load_clip
from pointcalip.calip import aggregate_views, calip_logits
from pointcalip.cli import main
from pointcalip.config import ConfigError, ZeroShotConfig, check_backbone, load_config
from pointcalip.datasets import validation_indices
from pointcalip.backbones.families.openclip import OpenClipBackbone, open_clip_identity, parse_open_clip_spec
from pointcalip.projection import PointCLIPProjector
from pointcalip.search import beta_grid, search
from messages import error_block

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
TEXT = {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 1}
#: tests/tiny_clip.py's models as open_clip architecture configs (QuickGELU, like OpenAI's)
VIT = {"embed_dim": 32, "quick_gelu": True, "text_cfg": TEXT,
       "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "head_width": 64,
                      "patch_size": 32}}
RESNET = {"embed_dim": 32, "quick_gelu": True, "text_cfg": TEXT,
          "vision_cfg": {"image_size": 224, "layers": [1, 1, 1, 1], "width": 8, "head_width": 64}}
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
IDENTITY = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Nothing here may download: any connection attempt fails the test."""
    def refuse(sock, address, *args):
        raise AssertionError(f"test_openclip tried to connect to {address}")
    monkeypatch.setattr(socket.socket, "connect", refuse)


def _images(n, size=224, seed=0):
    """Images as the projectors make them: [n, 3, size, size] in [0, 1]."""
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _normalised(images, bb):
    """What the model must get: resized to its resolution, then (x - mean) / std."""
    x = F.interpolate(images, size=(bb.input_resolution,) * 2, mode="bilinear", align_corners=True)
    mean = torch.tensor(bb.image_mean).view(1, 3, 1, 1)
    return (x - mean) / torch.tensor(bb.image_std).view(1, 3, 1, 1)


def _library_embedding(bb, images):
    with torch.no_grad():
        return bb.model.encode_image(_normalised(images, bb).to(bb.dtype), normalize=True).float()


def write_local_dir(folder: Path, cfg: dict, state_dict: dict, mean_std=None) -> str:
    """An open_clip local-dir folder (config + weights, as on the Hugging Face Hub) -> its spec."""
    folder.mkdir(parents=True)
    pre = {} if mean_std is None else {"mean": list(mean_std[0]), "std": list(mean_std[1])}
    config = {"model_cfg": cfg, "preprocess_cfg": pre}
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    torch.save(state_dict, folder / "open_clip_pytorch_model.bin")
    return f"open_clip:local-dir:{folder}"


@pytest.fixture(scope="module")
def specs(tmp_path_factory, tiny_vit, tiny_resnet):
    """Backbone names of the twins: local-dir folders (identity or MEAN/STD preprocessing) and
    registered architectures with weights files (no preprocess config: OpenAI's mean/std)."""
    tmp = tmp_path_factory.mktemp("open_clip")
    arch_dir = tmp / "architectures"
    arch_dir.mkdir()
    out = {}
    for name, cfg, bb in (("vit", VIT, tiny_vit), ("resnet", RESNET, tiny_resnet)):
        weights = {k: v.clone() for k, v in bb.model.state_dict().items()}
        out[f"{name}_twin"] = write_local_dir(tmp / f"{name}_twin", cfg, weights, IDENTITY)
        out[f"{name}_meanstd"] = write_local_dir(tmp / f"{name}_meanstd", cfg, weights, (MEAN, STD))
        (arch_dir / f"pointcalip-tiny-{name}.json").write_text(json.dumps(cfg))
        torch.save(weights, tmp / f"tiny_{name}.pt")
        out[f"{name}_file"] = f"open_clip:pointcalip-tiny-{name}/{tmp / f'tiny_{name}.pt'}"
    open_clip.add_model_config(arch_dir)       # the library's registry of architectures
    return out


@pytest.fixture(scope="module")
def loaded(specs):
    return {key: load_clip(spec, device="cpu") for key, spec in specs.items()}


# ------------------------------------------------------------------------ tiny other towers

class _Tower(TimmModel):
    """open_clip's TimmModel around a given (small) timm trunk and projection head; forward,
    the library's, is head(trunk(x))."""

    def __init__(self, trunk: nn.Module, head: nn.Sequential, image_size: int):
        nn.Module.__init__(self)
        self.trunk, self.head, self.image_size = trunk, head, (image_size, image_size)


def _seeded(seed, build):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build()


def _with_visual(visual, mean_std=(MEAN, STD)) -> OpenClipBackbone:
    model = _seeded(0, lambda: open_clip.CLIP(**{**VIT, "quick_gelu": False}))
    model.visual = visual
    open_clip.set_model_preprocess_cfg(model, {"mean": mean_std[0], "std": mean_std[1]})
    return OpenClipBackbone(model.eval(), "tiny", "test")


def _timm(name, img_size=64, **kwargs):
    return _seeded(1, lambda: timm.create_model(name, pretrained=False, img_size=img_size, depth=1,
                                                embed_dim=32, num_heads=2, **kwargs))


def _native_vit(**vision):
    cfg = {"image_size": 64, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16, **vision}
    return _seeded(2, lambda: open_clip.CLIP(embed_dim=32, vision_cfg=cfg, text_cfg=TEXT)).visual


def _projection(*layers):
    return nn.Sequential(OrderedDict(layers))


TOWERS = {
    # family: (build the image tower, its label, spatial tokens)
    "open_clip ViT, mean of the tokens": (
        lambda: _native_vit(pool_type="avg"), "ViT, mean of the patch tokens", 16),
    "open_clip ViT, CLIPA": (
        lambda: _native_vit(pool_type="avg", final_ln_after_pool=True, no_ln_pre=True),
        "ViT, mean of the patch tokens", 16),
    "timm ViT, class token": (
        lambda: _Tower(_timm("vit_tiny_patch16_224", num_classes=0),
                       _projection(("proj", nn.Linear(32, 32, bias=False))), 64),
        "ViT (timm), class token", 16),
    "timm EVA-02, rope": (             # the trunk's classifier is the projection, as in EVA-CLIP
        lambda: _Tower(_timm("eva02_tiny_patch14_224", img_size=56, num_classes=32,
                             global_pool="token"), nn.Sequential(), 56),
        "ViT (timm), class token", 16),
    "timm ViT, register token, mean, MLP head": (
        lambda: _Tower(_timm("vit_pwee_patch16_reg1_gap_256", num_classes=0),
                       _projection(("mlp", Mlp(32, 64, 32))), 64),
        "ViT (timm), mean of the patch tokens", 16),
}


@pytest.fixture(scope="module", params=list(TOWERS))
def tower(request):
    build, label, hw = TOWERS[request.param]
    return _with_visual(build()), label, hw


# -------------------------------------------------------------------------- every family

@pytest.mark.parametrize("key", ["vit_meanstd", "resnet_meanstd", "vit_file", "resnet_file"])
def test_token0_is_the_librarys_normalised_encode_image(loaded, key):
    bb = loaded[key]
    images = _images(3, size=128, seed=1)          # resized to 224 inside, like the projector's
    g, s = bb.encode_images(images, batch_size=2)
    assert g.shape == (3, 32) and s.shape == (3, 49, 32) and g.dtype == s.dtype == torch.float32
    torch.testing.assert_close(g, _library_embedding(bb, images), atol=1e-5, rtol=0)
    torch.testing.assert_close(s.norm(dim=-1), torch.ones(3, 49), atol=1e-5, rtol=0)
    want = MEAN if key.endswith("meanstd") else open_clip.OPENAI_DATASET_MEAN
    assert bb.image_mean == pytest.approx(want) and bb.input_resolution == 224


def test_other_families(tower):
    bb, label, hw = tower
    assert (bb.family, bb.num_tokens, bb.embed_dim, bb.input_resolution) == (
        label, hw, 32, bb.model.visual.image_size[0])
    images = _images(2, size=80, seed=2)
    g, s, norms = bb.encode_images(images, return_norms=True)
    assert g.shape == (2, 32) and s.shape == (2, hw, 32)
    torch.testing.assert_close(g, _library_embedding(bb, images), atol=1e-5, rtol=0)
    torch.testing.assert_close(s.norm(dim=-1), torch.ones(2, hw), atol=1e-5, rtol=0)
    with torch.no_grad():
        raw = bb.model.encode_image(_normalised(images, bb))
    torch.testing.assert_close(norms, raw.norm(dim=-1), atol=1e-4, rtol=1e-5)


def _final_tokens(bb, images):
    """The image tower's last tokens [N, L, D] as a forward hook on the library's own forward
    sees them (open_clip ViT: transformer output; timm: the trunk's final norm)."""
    v = bb.model.visual
    module = v.transformer if hasattr(v, "transformer") else v.trunk.norm
    seen = {}
    hook = module.register_forward_hook(lambda m, inp, out: seen.setdefault("x", out))
    with torch.no_grad():
        bb.model.encode_image(_normalised(images, bb))
    hook.remove()
    return seen["x"]


def test_spatial_tokens_are_each_token_through_the_final_norm_and_projection(tower):
    """Written out per family from the module's own parts, after a hook on its forward."""
    bb, _, hw = tower
    images = _images(2, size=64, seed=3)
    _, s = bb.encode_images(images)
    v = bb.model.visual
    x = _final_tokens(bb, images)
    if hasattr(v, "transformer"):
        want = v.ln_post(x[:, 1:]) @ v.proj
    else:
        t = v.trunk
        want = v.head(t.head(t.fc_norm(x[:, t.num_prefix_tokens:])))
    assert want.shape[1] == hw
    torch.testing.assert_close(s, F.normalize(want, dim=-1), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["open_clip ViT, mean of the tokens",
                                  "timm ViT, register token, mean, MLP head"])
def test_mean_pooled_embedding_is_the_mean_of_the_tokens_when_the_head_is_linear(name):
    """An independent check of the pooled families: with a per-token norm before the pool and
    an affine head, the library's embedding is the mean of the unnormalised spatial tokens."""
    build, _, _ = TOWERS[name]
    visual = build()
    if isinstance(visual, TimmModel):
        visual.head = _projection(("proj", nn.Linear(32, 32)))
        visual.trunk.fc_norm = nn.Identity()
    bb = _with_visual(visual)
    x = bb._model_input(_images(2, size=64, seed=4))
    with torch.no_grad():
        tokens = bb._tokens(x)
        torch.testing.assert_close(tokens[:, 0], bb.model.encode_image(x), atol=1e-5, rtol=0)
    torch.testing.assert_close(tokens[:, 1:].mean(1), tokens[:, 0], atol=1e-5, rtol=0)


# ------------------------------------------------------------- twins of the OpenAI models

@pytest.mark.parametrize("which", ["vit", "resnet"])
def test_twins_give_the_openai_features(request, loaded, which):
    openai = request.getfixturevalue(f"tiny_{which}")
    twin, meanstd = loaded[f"{which}_twin"], loaded[f"{which}_meanstd"]
    images = _images(2, size=112, seed=5)
    for a, b in zip(twin.encode_images(images), openai.encode_images(images)):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=0)
    # the model's own mean/std is applied after resizing, inside the backbone
    resized = F.interpolate(images, size=(224, 224), mode="bilinear", align_corners=True)
    by_hand = (resized - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    for a, b in zip(meanstd.encode_images(images), openai.encode_images(by_hand)):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=0)
    assert (meanstd.encode_images(images)[0] - twin.encode_images(images)[0]).abs().max() > 1e-2
    classes, templates = ["night_stand", "chair"], ["a {}.", "point cloud depth map of a {}."]
    torch.testing.assert_close(twin.encode_text(classes, templates),
                               openai.encode_text(classes, templates), atol=2e-5, rtol=0)
    assert twin.logit_scale == pytest.approx(openai.logit_scale) == pytest.approx(100.0)


def test_calip_runs_on_open_clip_features(loaded, tiny_vit):
    clouds = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (3, 300, 3))).float()
    projector = PointCLIPProjector(views=[0, 2, 4])
    w = [1.0, 0.5, 0.75]
    classes = ["airplane", "chair", "lamp", "night_stand"]
    bb = loaded["vit_meanstd"]
    model = PointCALIP(bb, classes, projector, beta2=1.2, beta3=0.05, view_weights=w)
    logits = model(clouds)
    g, s = model.view_features(clouds)
    l0, l1, l2 = (x.view(3, 3, -1) for x in calip_logits(g.flatten(0, 1), s.flatten(0, 1),
                                                          model.text_features))
    torch.testing.assert_close(logits, aggregate_views(l0, l1, l2, 1.2, 0.05, w))
    assert (logits - aggregate_views(l0, l1, l2, 0.0, 0.0, w)).abs().max() > 1e-2
    # CALIP's plain term is the library's own image and text embeddings
    images = projector(clouds).flatten(0, 1)
    sentences = [P.TEMPLATES[0].format(c.replace("_", " ")) for c in classes]
    with torch.no_grad():
        text = F.normalize(bb.model.encode_text(open_clip.tokenize(sentences)), dim=-1)
    torch.testing.assert_close(l0.flatten(0, 1), 100 * _library_embedding(bb, images) @ text.T,
                               atol=2e-3, rtol=0)
    # the twin (mean 0, std 1) classifies exactly as the OpenAI model it copies
    twin = PointCALIP(loaded["vit_twin"], classes, projector, beta2=1.2, beta3=0.05, view_weights=w)
    same = PointCALIP(tiny_vit, classes, projector, beta2=1.2, beta3=0.05, view_weights=w)
    torch.testing.assert_close(twin(clouds), same(clouds), atol=2e-3, rtol=0)


# ----------------------------------------------------------------------- command line

def test_zeroshot_cli_end_to_end_and_its_own_store(planted, specs, tiny_checkpoints, tmp_path):
    """The planted dataset (labelled with the tiny OpenAI ViT's CALIP at known betas and view
    weights) through `pointcalip zeroshot` with the open_clip twin: the planted signal is
    found, and the twin's features are stored under their own key next to the OpenAI ones."""
    val_fraction = 0.8

    def run(backbone, out):
        argv = ["zeroshot", "--config", "modelnet40", "--set", f"data.root={planted.root}",
                "--set", f"backbone={backbone}", "--set", f"cache_dir={tmp_path / 'store'}",
                "--set", f"output_dir={tmp_path / out}", "--set", f"tune.grid={P.GRID}",
                "--set", f"tune.val_fraction={val_fraction}", "--set", "tune.view_weights=true"]
        assert main(argv) == 0
        return json.loads((tmp_path / out / "results.json").read_text())

    first = run(tiny_checkpoints["vit"], "openai")
    res = run(specs["vit_twin"], "open_clip")
    assert res["backbone"] == specs["vit_twin"]
    assert res["backbone_identity"] == open_clip_identity(specs["vit_twin"])
    assert res["backbone_identity"] != first["backbone_identity"]
    for split in ("test", "tune"):                    # nothing read from the OpenAI rows
        assert res["features"][split]["encoded_now"] == res["features"][split]["rows"] > 0
        assert res["features"][split]["store"] != first["features"][split]["store"]

    val = validation_indices(planted.labels["train"], val_fraction, 0)
    l0, l1, l2 = (x[val] for x in planted.view_logits["train"])
    want = search(l0, l1, l2, torch.as_tensor(planted.labels["train"][val]), search_weights=True,
                  beta2_values=beta_grid(2.0, P.GRID), beta3_values=beta_grid(0.1, P.GRID))
    found = (res["beta2"], res["beta3"], res["view_weights"])
    assert found == (want.beta2, want.beta3, list(want.view_weights))
    assert res["view_weights"] != [1.0] * 6
    lo, hi = P.accuracy_range(planted.logits("test", *found), planted.labels["test"])
    calip = res["accuracy"]["calip"]
    assert lo <= calip <= hi and calip >= 85 and calip >= res["accuracy"]["pointclip"] + 15
    assert res["accuracy"] == first["accuracy"]


# ------------------------------------------------------------------- names and identities

def test_names_and_identities(specs, loaded, tiny_checkpoints):
    for key, spec in specs.items():
        assert loaded[key].identity == checkpoint_identity(spec) == open_clip_identity(spec)
    ids = {checkpoint_identity(s) for s in specs.values()}
    assert len(ids) == len(specs)                                   # mean/std and weights count
    assert checkpoint_identity(tiny_checkpoints["vit"]) not in ids
    assert all(i.startswith("open_clip:") for i in ids)
    assert "mean=0.5,0.4,0.3;std=0.2,0.25,0.3" in checkpoint_identity(specs["vit_meanstd"])
    tag = "open_clip:ViT-B/32/openai"                                # open_clip reads / as -
    ref = parse_open_clip_spec(tag)
    assert (ref.kind, ref.arch, ref.source, ref.name) == ("tag", "ViT-B-32", "openai",
                                                          "open_clip:ViT-B-32/openai")
    assert checkpoint_identity(tag).startswith("open_clip:ViT-B-32/openai;224px;mean=0.481455")
    assert loaded["vit_file"].name == "open_clip:pointcalip-tiny-vit/tiny_vit.pt"
    assert loaded["vit_twin"].name == "open_clip:local-dir:vit_twin"


def test_published_tags_load_through_open_clip(monkeypatch, tmp_path):
    """The real download path, stopped before any network: open_clip's create_model gets the
    tag, our precision, the cache folder and QuickGELU for tags trained with it."""
    calls = []

    def create_model(name, **kwargs):
        calls.append((name, kwargs))
        raise OSError("no network here")

    monkeypatch.setattr(open_clip, "create_model", create_model)
    with pytest.raises(RuntimeError) as info:
        load_clip("open_clip:ViT-B-32/openai", device="cpu", download_root=tmp_path)
    name, kwargs = calls[0]
    assert name == "ViT-B-32" and kwargs == {"pretrained": "openai", "precision": "fp32",
                                             "device": torch.device("cpu"), "cache_dir": str(tmp_path),
                                             "require_pretrained": True, "force_quick_gelu": True}
    assert "no network here" in str(info.value) and "open_clip:local-dir:" in str(info.value)
    with pytest.raises(RuntimeError):
        load_clip("open_clip:ViT-B-32/laion2b_s34b_b79k", device="cpu")
    assert "force_quick_gelu" not in calls[1][1]


def test_offline_download_error_says_what_to_fetch(monkeypatch):
    def offline(cfg, **kwargs):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(open_clip.factory, "download_pretrained", offline)
    with pytest.raises(RuntimeError) as info:
        load_clip("open_clip:ViT-H-14/laion2b_s32b_b79k", device="cpu")
    msg = str(info.value)
    assert "ViT-H-14/laion2b_s32b_b79k" in msg and "name resolution" in msg
    assert "https://huggingface.co/laion/CLIP-ViT-H-14-laion2B-s32B-b79K" in msg
    assert "--set backbone=open_clip:local-dir:" in msg


# ------------------------------------------------------------------------------ bad input

#: names whose form is wrong: the config's cheap check refuses them (open_clip not imported)
MALFORMED = [
    ("open_clip:local-dir:/nowhere", r"/nowhere has no open_clip_config.json"),
    ("open_clip:hf-hub:laion", r"hf-hub: needs a Hugging Face repo id ORG/REPO"),
    ("open_clip:/", r"names no model: write open_clip:ARCH/TAG, e.g. open_clip:ViT-H-14/laion2b"),
]
#: names only the library can judge: refused when the model's identity is needed or it is
#: loaded, before anything is downloaded
UNKNOWN_TO_THE_LIBRARY = [
    ("open_clip:ViT-X-14/laion2b", r"'ViT-X-14' is not an open_clip architecture \(did you mean ViT-"),
    ("open_clip:ViT-H-14", r"names no weights: write open_clip:ViT-H-14/laion2b_s32b_b79k"),
    ("open_clip:ViT-H-14/laion5b", r"'laion5b' is neither a pretrained tag of ViT-H-14 \(tags: "
                                   r"laion2b_s32b_b79k"),
    ("open_clip:coca_ViT-B-32/laion2b_s13b_b90k", r"pools its tokens with learnt attention queries"),
    ("open_clip:ViT-B-16-SigLIP/webli", r"SigLIP's and PE's MAP head"),
    ("open_clip:convnext_base_w/laion2b_s13b_b82k", r"timm's convnext_base \(PointCALIP reads timm's VisionTransformer and Eva"),
]


@pytest.mark.parametrize("spec, message", MALFORMED)
def test_malformed_names_are_config_errors_naming_the_option(spec, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_config(ZeroShotConfig, ["modelnet40"], [f"backbone={spec}"])
    assert str(info.value).startswith(f"config key backbone is '{spec}'")
    assert str(info.value).endswith("(set it in the YAML file or with --set backbone=...)")


@pytest.mark.parametrize("spec, message", MALFORMED + UNKNOWN_TO_THE_LIBRARY)
def test_bad_names_are_refused_before_anything_is_downloaded(spec, message):
    """load_clip and the store's identity (what extract, ablate and fewshot compute first) say
    the same, naming the backbone; the autouse fixture refuses every connection."""
    for call in (lambda: load_clip(spec, device="cpu"), lambda: checkpoint_identity(spec)):
        with pytest.raises(ValueError, match=message) as info:
            call()
        assert str(info.value).startswith(f"backbone is '{spec}'")


def test_checking_a_name_imports_no_model_library():
    """Config validation checks open_clip names without importing open_clip (a fresh process);
    what only the library knows is left to loading."""
    code = ("import sys\n"
            "from pointcalip.config import check_backbone\n"
            "check_backbone('open_clip:ViT-X-14/laion2b')\n"
            "check_backbone('open_clip:ViT-H-14/laion2b_s32b_b79k')\n"
            "assert 'open_clip' not in sys.modules, 'open_clip was imported'\n"
            "try:\n"
            "    check_backbone('open_clip:hf-hub:laion')\n"
            "except ValueError as err:\n"
            "    print(err)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "hf-hub: needs a Hugging Face repo id" in done.stdout


def test_the_cli_names_an_unknown_architecture_in_one_line(planted, tmp_path, capsys):
    spec = "open_clip:ViT-X-14/laion2b"
    code = main(["zeroshot", "--config", "modelnet40", "--set", f"data.root={planted.root}",
                 "--set", f"backbone={spec}", "--set", f"cache_dir={tmp_path / 'store'}",
                 "--set", f"output_dir={tmp_path / 'out'}"])
    err = error_block(capsys.readouterr().err)
    assert code == 2 and err.startswith("pointcalip ")
    assert f"backbone is '{spec}', but 'ViT-X-14' is not an open_clip architecture" in err


def test_towers_without_usable_spatial_tokens_are_refused():
    coca = _native_vit(attentional_pool=True, attn_pooler_queries=4, attn_pooler_heads=1)
    siglip = _Tower(_timm("vit_base_patch16_siglip_224", num_classes=0), nn.Sequential(), 64)
    convnext = _Tower(_seeded(3, lambda: timm.create_model(
        "convnext_atto", pretrained=False, num_classes=32, depths=(1, 1, 1, 1), dims=(8, 8, 8, 8))),
        nn.Sequential(), 64)
    pooled = _Tower(_timm("vit_tiny_patch16_224", num_classes=0, global_pool=""),     # abs_attn
                    _projection(("pool", AttentionPool2d(32, feat_size=4, num_heads=2))), 64)
    for visual, why in ((coca, "learnt attention queries"), (siglip, "learnt attention queries"),
                        (pooled, "learnt attention queries"),
                        (convnext, "timm's ConvNeXt .PointCALIP reads timm's VisionTransformer")):
        message = f"tiny cannot be used: its image tower .*{why}.*supported are ViTs"
        with pytest.raises(ValueError, match=message):
            _with_visual(visual)


def test_missing_library_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "open_clip", None)          # import open_clip fails
    with pytest.raises(ConfigError, match=r"pip install 'pointcalip\[open_clip\]'") as info:
        load_config(ZeroShotConfig, ["modelnet40"], ["backbone=open_clip:ViT-H-14/laion2b_s32b_b79k"])
    assert "--set backbone=" in str(info.value)
    with pytest.raises(ValueError, match=r"backbone is .* needs the open_clip library"):
        load_clip("open_clip:ViT-H-14/laion2b_s32b_b79k", device="cpu")
    check_backbone(str(Path(__file__)))                       # other backbones do not need it


def test_unreadable_weights_file_names_the_file(tmp_path, specs):
    bad = tmp_path / "epoch_3.pt"
    bad.write_bytes(b"not a checkpoint")
    message = r"Could not load .*epoch_3\.pt as pointcalip-tiny-vit weights"
    with pytest.raises(RuntimeError, match=message):
        load_clip(f"open_clip:pointcalip-tiny-vit/{bad}", device="cpu")


def test_library_progress_lines_stay_out_of_the_log(caplog):
    """open_clip logs every loading step with logging.info on the root logger."""
    from pointcalip.backbones.families.openclip import _library_info_hidden

    for level, want in ((logging.INFO, ["warning", "ours"]),
                        (logging.DEBUG, ["step", "warning", "ours"])):     # pointcalip -v
        caplog.clear()
        with caplog.at_level(level), _library_info_hidden():
            logging.info(f"step {level}")          # messages differ: the CLI's handlers let
            logging.warning(f"warning {level}")    # each warning through once
            logging.getLogger("pointcalip.test").info(f"ours {level}")
        assert [r.getMessage() for r in caplog.records] == [f"{w} {level}" for w in want]


# ------------------------------------------------------------------- fp16 and shipped configs

@pytest.mark.parametrize("which", ["vit", "resnet"])
def test_fp16_weights_give_float32_unit_features(loaded, which):
    """The CUDA setting (open_clip's fp16 mixed precision), run on the CPU."""
    bb32 = loaded[f"{which}_meanstd"]
    model = _seeded(0, lambda: open_clip.CLIP(**(VIT if which == "vit" else RESNET),
                                              cast_dtype=torch.float16))
    model.load_state_dict(bb32.model.state_dict())
    open_clip.convert_weights_to_lp(model)
    open_clip.set_model_preprocess_cfg(model, {"mean": MEAN, "std": STD})
    bb16 = OpenClipBackbone(model, "fp16", "test")
    assert bb16.dtype == torch.float16 and bb16.precision == "float16"
    images = _images(2, seed=6)
    (g16, s16), (g32, s32) = bb16.encode_images(images), bb32.encode_images(images)
    assert g16.dtype == s16.dtype == torch.float32
    torch.testing.assert_close(g16, _library_embedding(bb16, images), atol=1e-3, rtol=0)
    torch.testing.assert_close(g16, g32, atol=5e-3, rtol=0)
    torch.testing.assert_close(s16, s32, atol=5e-3, rtol=0)


#: the shipped open_clip model configs: backbone -> (family, spatial tokens, channels, px)
SHIPPED = {
    "open_clip:ViT-B-16/datacomp_xl_s13b_b90k": ("ViT, class token", 196, 512, 224),
    "open_clip:ViT-L-14/datacomp_xl_s13b_b90k": ("ViT, class token", 256, 768, 224),
    "open_clip:ViT-H-14/laion2b_s32b_b79k": ("ViT, class token", 256, 1024, 224),
    "open_clip:ViT-H-14-quickgelu/dfn5b": ("ViT, class token", 256, 1024, 224),
    "open_clip:ViT-bigG-14/laion2b_s39b_b160k": ("ViT, class token", 256, 1280, 224),
    "open_clip:EVA02-L-14/merged2b_s4b_b131k": ("ViT (timm), class token", 256, 768, 224),
}


def test_shipped_configs_name_supported_models():
    """Every configs/model/*_openclip_*.yaml loads, and its architecture (built without weights
    on the meta device) is read as the README's table says."""
    files = sorted((CONFIGS / "model").glob("*_openclip_*.yaml"))
    found = {yaml.safe_load(f.read_text())["backbone"] for f in files}
    assert found == set(SHIPPED) and len(files) >= len(SHIPPED)
    for f in files:
        cfg = load_config(ZeroShotConfig, ["modelnet40", f])
        ref = parse_open_clip_spec(cfg.backbone)
        with torch.device("meta"):
            model = open_clip.create_model(ref.arch, device="meta")
        bb = OpenClipBackbone(model, ref.name, "meta")
        read = (bb.family, bb.num_tokens, bb.embed_dim, bb.input_resolution)
        assert read == SHIPPED[cfg.backbone]
        assert math.isqrt(bb.num_tokens) ** 2 == bb.num_tokens      # explain draws a square grid
