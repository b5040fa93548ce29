"""ClipBackbone / load_clip on tiny random CLIP checkpoints (no network)."""
import hashlib
import urllib.error

import clip
import pytest
import torch
import torch.nn.functional as F

import tiny_clip
from pointcalip.backbones import load_clip
from pointcalip.backbones.families.openai import is_torchscript_archive


@pytest.fixture(scope="module")
def ckpts(tiny_checkpoints):
    return tiny_checkpoints


@pytest.fixture(scope="module")
def resnet(tiny_resnet):
    return tiny_resnet


@pytest.fixture(scope="module")
def vit(tiny_vit):
    return tiny_vit


def _images(n, size=224, seed=0):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("which, is_vit", [("resnet", False), ("vit", True)])
def test_attributes(ckpts, which, is_vit):
    bb = load_clip(ckpts[which], device="cpu")
    assert bb.is_vit == is_vit
    assert (bb.embed_dim, bb.num_tokens, bb.input_resolution) == (tiny_clip.EMBED_DIM, 49, 224)
    assert bb.dtype == torch.float32 and bb.device.type == "cpu"
    assert not any(p.requires_grad for p in bb.model.parameters())
    assert not bb.model.training
    sha = hashlib.sha256(ckpts[which].read_bytes()).hexdigest()
    assert bb.identity == f"sha256:{sha}"


@pytest.mark.parametrize("which", ["resnet", "vit"])
def test_global_token_is_clip_embedding(request, which):
    bb = request.getfixturevalue(which)
    images = _images(3)
    g, s = bb.encode_images(images)
    assert g.shape == (3, bb.embed_dim) and s.shape == (3, 49, bb.embed_dim)
    assert g.dtype == s.dtype == torch.float32
    ref = F.normalize(bb.model.encode_image(images).float(), dim=-1)
    torch.testing.assert_close(g, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(s.norm(dim=-1), torch.ones(3, 49), atol=1e-5, rtol=0)


def test_resnet_spatial_tokens_match_slow_attention_pool(resnet):
    """Every query position of the attention pool, written out head by head."""
    images = _images(2, seed=1)
    g, s = resnet.encode_images(images)
    v = resnet.model.visual
    feats = {}
    v.attnpool.register_forward_hook(lambda m, inp, out: feats.setdefault("x", inp[0]))
    v(images)
    v.attnpool._forward_hooks.clear()
    pool = v.attnpool
    x = feats["x"].flatten(2).transpose(1, 2)                    # [N, HW, D]
    x = torch.cat([x.mean(1, keepdim=True), x], 1) + pool.positional_embedding
    q, k, val = pool.q_proj(x), pool.k_proj(x), pool.v_proj(x)
    heads, d = pool.num_heads, x.shape[-1] // pool.num_heads
    outs = []
    for h in range(heads):
        sl = slice(h * d, (h + 1) * d)
        att = torch.softmax(q[..., sl] @ k[..., sl].transpose(1, 2) / d ** 0.5, dim=-1)
        outs.append(att @ val[..., sl])
    tokens = F.normalize(pool.c_proj(torch.cat(outs, -1)), dim=-1)
    torch.testing.assert_close(g, tokens[:, 0], atol=1e-5, rtol=0)
    torch.testing.assert_close(s, tokens[:, 1:], atol=1e-5, rtol=0)


def test_vit_spatial_tokens_are_ln_post_proj_of_all_tokens(vit):
    images = _images(2, seed=2)
    _, s = vit.encode_images(images)
    v = vit.model.visual
    feats = {}
    hook = v.transformer.register_forward_hook(lambda m, inp, out: feats.setdefault("x", out))
    v(images)
    hook.remove()
    tokens = v.ln_post(feats["x"].permute(1, 0, 2)) @ v.proj   # [N, 1 + HW, C]
    torch.testing.assert_close(s, F.normalize(tokens[:, 1:], dim=-1), atol=1e-5, rtol=0)


def test_resize_and_batching(resnet):
    small = _images(3, size=112, seed=3)
    g, s = resnet.encode_images(small)
    big = F.interpolate(small, size=(224, 224), mode="bilinear", align_corners=True)
    g2, s2 = resnet.encode_images(big, batch_size=2)
    torch.testing.assert_close(g, g2, atol=1e-5, rtol=0)
    torch.testing.assert_close(s, s2, atol=1e-5, rtol=0)


def test_old_single_relu_stem(ckpts):
    bb = load_clip(ckpts["resnet"], device="cpu")
    images = _images(1, seed=4)
    before = bb.encode_images(images)
    v = bb.model.visual
    relu = v.relu1
    del v.relu1, v.relu2, v.relu3
    v.relu = relu
    after = bb.encode_images(images)
    torch.testing.assert_close(before, after)


def test_torchscript_archive_loads_same_weights(ckpts, resnet):
    assert is_torchscript_archive(ckpts["resnet_jit"])
    assert not is_torchscript_archive(ckpts["resnet"])
    bb = load_clip(ckpts["resnet_jit"], device="cpu")
    images = _images(2, seed=5)
    for a, b in zip(bb.encode_images(images), resnet.encode_images(images)):
        torch.testing.assert_close(a, b)


def test_wrapped_state_dict(tmp_path, resnet):
    path = tmp_path / "wrapped.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in resnet.model.state_dict().items()}},
               path)
    bb = load_clip(path, device="cpu")
    images = _images(1, seed=6)
    torch.testing.assert_close(bb.encode_images(images)[0], resnet.encode_images(images)[0])


def test_bad_file_names_the_file(tmp_path):
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="garbage.pt"):
        load_clip(path, device="cpu")
    other = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(2)}, other)
    with pytest.raises(RuntimeError, match="other.pt"):
        load_clip(other, device="cpu")


def test_unknown_name_lists_models():
    with pytest.raises(ValueError, match="ViT-B/32"):
        load_clip("RN9000", device="cpu")


def test_offline_download_error_says_what_to_fetch(tmp_path, monkeypatch):
    def offline(url, root):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(clip.clip, "_download", offline)
    with pytest.raises(RuntimeError) as info:
        load_clip("RN50", device="cpu", download_root=tmp_path)
    msg = str(info.value)
    assert clip.clip._MODELS["RN50"] in msg and str(tmp_path / "RN50.pt") in msg


def test_encode_text_template_ensemble(resnet):
    templates = ["a photo of a {}.", "point cloud depth map of a {}."]
    t = resnet.encode_text(["night_stand", "chair"], templates)
    assert t.shape == (2, tiny_clip.EMBED_DIM)
    refs = []
    for name in ["night stand", "chair"]:
        with torch.no_grad():
            e = resnet.model.encode_text(clip.tokenize([x.format(name) for x in templates]))
        e = e / e.norm(dim=-1, keepdim=True)
        m = e.mean(0)
        refs.append(m / m.norm())
    torch.testing.assert_close(t, torch.stack(refs), atol=1e-5, rtol=0)


@pytest.mark.parametrize("which", ["resnet", "vit"])
def test_fp16_weights_give_float32_unit_features(which):
    """The CUDA setting (build_model's fp16 weights), run on CPU."""
    from pointcalip.backbones import ClipBackbone
    sd = getattr(tiny_clip, f"tiny_{which}_state_dict")()
    bb16 = ClipBackbone(clip.model.build_model(dict(sd)), which, "test")
    bb32 = ClipBackbone(clip.model.build_model(dict(sd)).float(), which, "test")
    assert bb16.dtype == torch.float16
    images = _images(2, seed=7)
    (g16, s16), (g32, s32) = bb16.encode_images(images), bb32.encode_images(images)
    assert g16.dtype == s16.dtype == torch.float32
    torch.testing.assert_close(g16, F.normalize(bb16.model.encode_image(images).float(), dim=-1))
    torch.testing.assert_close(g16, g32, atol=3e-3, rtol=0)
    torch.testing.assert_close(s16, s32, atol=3e-3, rtol=0)
    t16 = bb16.encode_text(["chair"], ["a {}."])
    assert t16.dtype == torch.float32
    torch.testing.assert_close(t16, bb32.encode_text(["chair"], ["a {}."]), atol=3e-3, rtol=0)


@pytest.mark.parametrize("which", ["resnet", "vit"])
def test_norms_recover_clips_raw_embedding(request, which):
    bb = request.getfixturevalue(which)
    images = _images(3, seed=8)
    g, s, norms = bb.encode_images(images, return_norms=True, batch_size=2)
    with torch.no_grad():
        raw = bb.model.encode_image(images).float()
    torch.testing.assert_close(g * norms[:, None], raw, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(norms, raw.norm(dim=-1))
    assert bb.precision == "float32"
    for bad in (0, -2):
        with pytest.raises(ValueError, match="batch_size must be a positive integer"):
            bb.encode_images(images, batch_size=bad)
    with pytest.raises(ValueError, match="single string"):
        bb.encode_text("chair", ["a {}."])
    with pytest.raises(ValueError, match="exactly one"):
        bb.encode_text(["chair"], ["a chair."])


def test_encode_prompts_ensembles_each_class_on_its_own(vit):
    per_class = [["a chair.", "a wooden chair with four legs."], ["a lamp."]]
    got = vit.encode_prompts(per_class)
    assert got.shape == (2, tiny_clip.EMBED_DIM)
    for row, prompts in zip(got, per_class):
        with torch.no_grad():
            e = F.normalize(vit.model.encode_text(clip.tokenize(prompts)).float(), dim=-1)
        torch.testing.assert_close(row, F.normalize(e.mean(0), dim=0), atol=1e-5, rtol=0)
    torch.testing.assert_close(vit.encode_text(["chair"], ["a {}."]), vit.encode_prompts([["a chair."]]))
    for bad in ([], [["a chair."], []], ["a chair."]):
        with pytest.raises(ValueError, match="one non-empty list of sentences per class"):
            vit.encode_prompts(bad)


# --------------------------------------------------------------------- the family registry

def test_families_are_discovered_and_resolved_by_their_prefix(tmp_path):
    from pointcalip.backbones.families import FAMILIES, family_of
    assert sorted(FAMILIES.names()) == ["clip", "open_clip"]       # discovered, in import order
    assert (FAMILIES["clip"].prefix, FAMILIES["open_clip"].prefix) == ("", "open_clip:")
    assert family_of("open_clip:ViT-B-32/openai").name == "open_clip"
    assert family_of("open_clip:local-dir:/x").name == "open_clip"
    for name in ("RN50", "ViT-B/16", tmp_path / "RN50.pt", "open_clip", "openclip:ViT-B-32/openai"):
        assert family_of(name).name == "clip"


def test_load_clip_dispatches_through_the_registry(ckpts, resnet, monkeypatch):
    """A family registered with a longer prefix wins for its names: its check, identity and
    loader run, and the OpenAI family's error lists its form."""
    from pointcalip.backbones import checkpoint_identity, families
    from pointcalip.backbones.families import FAMILIES, Family, check_backbone_name
    from pointcalip.core.registry import Entry

    seen = []

    def check(name):
        seen.append(("check", name))
        if name.endswith("bad"):
            raise ValueError(f"is {name!r}, but it is bad")

    def load(name, device=None, download_root=None):
        seen.append(("load", name))
        return load_clip(ckpts["resnet"], device="cpu")

    probe = Family(check=check, identity=lambda name: f"probe:{name}", load=load)
    meta = {"prefix": "open_clip:probe/", "forms": "probe models: open_clip:probe/NAME",
            "example": "open_clip:probe/x"}
    monkeypatch.setitem(FAMILIES._entries, "probe", Entry("probe", probe, meta))
    assert families.family_of("open_clip:probe/x").name == "probe"       # the longest prefix
    assert families.family_of("open_clip:ViT-B-32/openai").name == "open_clip"
    check_backbone_name("open_clip:probe/x")
    with pytest.raises(ValueError, match="but it is bad"):
        check_backbone_name("open_clip:probe/bad")
    assert checkpoint_identity("open_clip:probe/x") == "probe:open_clip:probe/x"
    bb = load_clip("open_clip:probe/x", device="cpu", engine="eager")
    assert seen == [("check", "open_clip:probe/x"), ("check", "open_clip:probe/bad"),
                    ("load", "open_clip:probe/x")]
    assert bb.engine == "eager" and bb.identity == resnet.identity
    with pytest.raises(ValueError, match=r"nor an existing checkpoint file \(open_clip models: "
                                         r"open_clip:ARCH/TAG, e.g. open_clip:ViT-H-14/laion2b_s32b_b79k; "
                                         r"probe models: open_clip:probe/NAME, e.g. open_clip:probe/x\)"):
        check_backbone_name("RN9000")


# ------------------------------------------------- light names, heavy models (issue 16 / 19)

def test_listing_and_checking_names_imports_no_model_library(tmp_path):
    """Importing pointcalip.backbones, discovering the families, checking backbone and engine
    names and identifying OpenAI weights import neither torch, clip nor open_clip (config
    checks do all of these); asking for ClipBackbone then imports torch. Fresh process."""
    import subprocess
    import sys

    ckpt = tmp_path / "w.pt"
    ckpt.write_bytes(b"not read as a model")
    code = f"""
import sys
import pointcalip.backbones as bb
from pointcalip.backbones.families import openai
heavy = lambda: sorted(m for m in ("torch", "clip", "open_clip") if m in sys.modules)
names = bb.FAMILIES.names(), bb.ENGINES.names()
bb.check_backbone_name("RN50"); bb.check_backbone_name({str(ckpt)!r})
bb.check_backbone_name("open_clip:hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K")
for engine in ("auto", "eager", "onnxruntime"):
    bb.check_engine(engine, "cpu")
try:
    bb.check_engine("onnxruntime", "cuda:0")
except ValueError as err:
    refused = "runs on the CPU only" in str(err)
ident = bb.checkpoint_identity("RN50"), bb.checkpoint_identity({str(ckpt)!r})
where = openai.weights_file("ViT-B/32", "/w").as_posix()
before = heavy()
bb.ClipBackbone
print(sorted(names[0]), names[1], refused, ident[0], where, before, heavy())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    sha = hashlib.sha256(b"not read as a model").hexdigest()
    assert out.stdout.split() == [
        "['clip',", "'open_clip']", "['auto',", "'eager',", "'onnxruntime']", "True",
        "sha256:afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762",
        "/w/ViT-B-32.pt", "[]", "['clip',", "'torch']"], out.stdout
    from pointcalip.backbones import checkpoint_identity
    assert checkpoint_identity(ckpt) == f"sha256:{sha}"


def test_openai_names_are_clips_own():
    """The family's table of OpenAI names and addresses (read without importing clip) is the
    clip package's, in its order: the same names, downloads and identities as before."""
    from pointcalip.backbones.families import openai
    assert openai.WEIGHTS == clip.clip._MODELS
    assert list(openai.WEIGHTS) == clip.available_models() == openai.available_models()


def test_weights_file_present_and_fetched(tmp_path, monkeypatch):
    """Where a name's weights live, whether they are there with their checksum, and fetching
    them through clip's downloader (which is told the address and the folder)."""
    from pointcalip.backbones.families import openai
    from pointcalip.core import paths

    content = b"weights of a made-up model"
    sha = hashlib.sha256(content).hexdigest()
    monkeypatch.setitem(openai.WEIGHTS, "RN50", f"https://example.invalid/clip/{sha}/RN50.pt")
    monkeypatch.setattr(paths, "clip_dir", lambda: tmp_path / "default")
    assert openai.weights_file("RN50") == tmp_path / "default" / "RN50.pt"
    path = openai.weights_file("RN50", tmp_path)
    assert path == tmp_path / "RN50.pt" and not openai.weights_present("RN50", tmp_path)
    path.write_bytes(content)
    assert openai.weights_present("RN50", tmp_path)
    path.write_bytes(content + b"!")                           # damaged: size and sha differ
    assert not openai.weights_present("RN50", tmp_path)
    with pytest.raises(KeyError):
        openai.weights_file("RN9000")

    calls = []
    monkeypatch.setattr(clip.clip, "_download", lambda url, root: calls.append((url, root)) or
                        str(path))
    assert openai.fetch_weights("RN50", tmp_path) == path
    assert calls == [(openai.WEIGHTS["RN50"], str(tmp_path))]

    def offline(url, root):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(clip.clip, "_download", offline)
    with pytest.raises(RuntimeError, match=rf"Download {openai.WEIGHTS['RN50']} and put it at "
                                           rf"{tmp_path / 'default' / 'RN50.pt'}"):
        openai.fetch_weights("RN50")


def test_every_lazy_name_of_the_package_resolves():
    import pointcalip.backbones as bb
    from pointcalip.backbones import base, devices, engines, factory, families, weights
    owners = {"base": base, "devices": devices, "engines": engines, "factory": factory,
              "families": families, "weights": weights}
    assert len(bb.__all__) == 15
    for name in bb.__all__:
        assert getattr(bb, name) is getattr(owners[bb._EXPORTS[name]], name), name
    assert bb.file_sha256 is base.file_sha256 and "load_clip" in dir(bb)
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        bb.nope
