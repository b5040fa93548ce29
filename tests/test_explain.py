"""`pointcalip explain` and pointcalip.explain: CALIP's spatial attention over each view."""
import numpy as np
import pytest
import torch
from PIL import Image

import planted as P
from pointcalip import PointCALIP, load_clip
from pointcalip.calip import calip_logits
from pointcalip.cli import main
from pointcalip.datasets import load_point_cloud
from pointcalip.explain import Explanation, explain_cloud, render, spatial_attention
from pointcalip.report.plots import attention_grid_size
from pointcalip.projection import PointCLIPProjector
from messages import error_block


def test_attention_is_calips_softmax_over_positions_and_gives_l1():
    g = torch.Generator().manual_seed(0)
    unit = lambda *shape: torch.nn.functional.normalize(torch.randn(*shape, generator=g), dim=-1)  # noqa: E731
    s, t, v = unit(3, 49, 16), unit(5, 16), unit(3, 16)
    att = spatial_attention(s, t)                                            # [V, K, HW]
    for view in range(3):
        literal = torch.softmax(2 * s[view] @ t.T, dim=0)                  # [HW, K], docs/calip.md
        assert torch.allclose(att[view], literal.T, atol=1e-6)
    assert torch.allclose(att.sum(-1), torch.ones(3, 5), atol=1e-6)
    # the same weights pool F_s F_v into CALIP's visual-guided logits l1
    _, l1, _ = calip_logits(v, s, t)
    assert torch.allclose(l1, 100 * torch.einsum("vkh,vh->vk", att, torch.einsum("vhc,vc->vh", s, v)),
                          atol=1e-4)


def test_upsampled_maps_span_zero_to_one_and_uniform_attention_is_blank():
    att = torch.full((2, 3, 49), 1 / 49)
    att[0, 1, 10] = 0.5
    expl = Explanation(torch.rand(2, 224, 224), att, torch.zeros(3), ["a", "b", "c"])
    up = expl.upsampled(1)
    assert up.shape == (2, 224, 224) and float(up[0].min()) == 0 and float(up[0].max()) == pytest.approx(1)
    assert float(up[1].abs().max()) == 0                                     # uniform: nothing to show
    with pytest.raises(ValueError, match="do not form a square grid"):
        Explanation(torch.rand(1, 8, 8), torch.rand(1, 3, 50), torch.zeros(3), ["a", "b", "c"]).upsampled(0)


def test_explanation_logits_are_pointcalips(planted, tiny_vit):
    cloud = planted.points["test"][0]
    expl = explain_cloud(cloud, tiny_vit, PointCLIPProjector(), P.CLASSES, "pointclip", 1.2, 0.05,
                         [1, 0.5, 1, 0.25, 1, 1])
    model = PointCALIP(tiny_vit, P.CLASSES, PointCLIPProjector(), beta2=1.2, beta3=0.05,
                       view_weights=[1, 0.5, 1, 0.25, 1, 1])
    with torch.no_grad():
        want = model(cloud)[0]
    assert torch.allclose(expl.logits, want, atol=1e-4)
    assert expl.attention.shape == (6, 3, 49) and expl.images.shape == (6, 224, 224)
    assert float(expl.images.max()) == pytest.approx(1.0)
    assert [name for name, _ in expl.top(3)] == [P.CLASSES[i] for i in want.argsort(descending=True)]


def test_explain_a_file(planted, tiny_checkpoints, tmp_path, capsys):
    cloud = tmp_path / "cloud.npy"
    np.save(cloud, planted.points["test"][1].numpy())
    out = tmp_path / "att.png"
    assert main(["explain", str(cloud), "--classes", *P.CLASSES, "--backbone",
                 str(tiny_checkpoints["vit"]), "--beta2", "1.0", "-o", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    model = PointCALIP(load_clip(tiny_checkpoints["vit"], device="cpu"), P.CLASSES,
                       PointCLIPProjector(), beta2=1.0)
    with torch.no_grad():
        probs = model(load_point_cloud(cloud)).softmax(-1)[0]      # what `classify` would say
    values, idx = probs.topk(3)
    assert printed[0] == "cloud.npy: " + ", ".join(f"{P.CLASSES[i]} {v:.1%}" for v, i in
                                                  zip(values.tolist(), idx.tolist()))
    assert printed[1] == f"wrote {out}"
    with Image.open(out) as image:
        image.verify()
    with Image.open(out) as image:     # predicted class and the runner-up: two rows of 6 views
        assert image.format == "PNG" and image.size == attention_grid_size(6, 2)
        assert len(np.unique(np.asarray(image.convert("L")))) > 50


def test_explain_a_dataset_item_shows_its_true_label(planted, tiny_checkpoints, tmp_path, capsys,
                                                     monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["explain", "--dataset", "modelnet40", "--root", str(planted.root), "--index", "2",
                 "--backbone", str(tiny_checkpoints["vit"]), "--projector", "realistic",
                 "--target", "cup"]) == 0
    out = tmp_path / "modelnet40_test_2_attention.png"
    label = P.CLASSES[planted.labels["test"][2]]
    assert capsys.readouterr().out.startswith(f"modelnet40 test[2] (label: {label}): ")
    with Image.open(out) as image:                    # V2's 10 views, one or two rows
        assert image.size in (attention_grid_size(10, 1), attention_grid_size(10, 2))


def test_render_rows(tmp_path):
    att = torch.softmax(torch.randn(2, 3, 49), dim=-1)
    expl = Explanation(torch.rand(2, 224, 224), att, torch.tensor([3.0, 1.0, 0.0]), ["a", "b", "c"])
    assert render(expl, tmp_path / "one.png", target=0) == attention_grid_size(2, 1)   # = predicted
    assert render(expl, tmp_path / "two.png", target=2) == attention_grid_size(2, 2)
    with Image.open(tmp_path / "two.png") as image:
        assert image.size == attention_grid_size(2, 2)


@pytest.mark.parametrize("argv, message", [
    (["x.npy"], "FILE needs --classes"),
    ([], "give a cloud FILE"),
    (["--dataset", "modelnet40"], "--dataset needs --index"),
    (["x.npy", "--classes", "a", "b", "--dataset", "modelnet40", "--index", "0"], "give either FILE"),
    (["x.npy", "--classes", "a", "b", "--index", "0"], "--index belongs to --dataset"),
])
def test_explain_argument_errors(argv, message, capsys):
    assert main(["explain", *argv]) == 2
    assert message in capsys.readouterr().err


def test_explain_checks_options_and_classes(planted, tiny_checkpoints, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["explain", "x.npy", "--classes", "a", "--num-points", "0"])
    assert "argument --num-points: must be a positive integer" in capsys.readouterr().err
    cloud = tmp_path / "c.npy"
    np.save(cloud, planted.points["test"][0].numpy())
    assert main(["explain", str(cloud), "--classes", "a", "b", "--target", "c",
                 "--backbone", str(tiny_checkpoints["vit"])]) == 2
    assert "--target 'c' is not among the classes: a, b" in capsys.readouterr().err
    assert main(["explain", "--dataset", "modelnet40", "--root", str(planted.root), "--index", "999",
                 "--backbone", str(tiny_checkpoints["vit"])]) == 2
    assert "--index 999 is out of range: modelnet40 test has 50 clouds" in capsys.readouterr().err


@pytest.mark.parametrize("suffix, fmt, magic", [
    (".jpg", "JPEG", b"\xff\xd8\xff"), (".JPEG", "JPEG", b"\xff\xd8\xff"),
    (".pdf", None, b"%PDF-"), (".svg", None, b"<?xml"), (".png", "PNG", b"\x89PNG\r\n"),
])
def test_render_writes_the_format_the_extension_names(tmp_path, suffix, fmt, magic):
    att = torch.softmax(torch.randn(2, 3, 49), dim=-1)
    expl = Explanation(torch.rand(2, 224, 224), att, torch.tensor([3.0, 1.0, 0.0]), ["a", "b", "c"])
    out = tmp_path / f"att{suffix}"
    assert render(expl, out, target=2) == attention_grid_size(2, 2)
    assert out.read_bytes().startswith(magic)
    if fmt:
        with Image.open(out) as image:
            assert image.format == fmt and image.size == attention_grid_size(2, 2)
    if suffix == ".svg":
        assert b"<svg" in out.read_bytes()


@pytest.mark.parametrize("name, what", [("att.gif", "extension '.gif'"), ("att", "no extension")])
def test_other_extensions_are_refused_before_clip_loads(tmp_path, capsys, monkeypatch, name, what):
    def no_clip(*args, **kwargs):
        raise AssertionError("CLIP must not load before -o is checked")

    monkeypatch.setattr("pointcalip.backbones.load_clip", no_clip)
    cloud = tmp_path / "c.npy"
    np.save(cloud, np.random.default_rng(0).normal(size=(200, 3)))
    out = tmp_path / name
    assert main(["explain", str(cloud), "--classes", "a", "b", "-o", str(out)]) == 2
    assert (f"pointcalip explain: error: cannot write the figure {out}: it has {what}; end the "
            f"name with one of .png, .jpg, .jpeg, .pdf, .svg (PNG, JPEG, PDF or SVG)"
            in error_block(capsys.readouterr().err))
    assert not out.exists()
    with pytest.raises(ValueError, match=r"it has extension '\.gif'"):
        render(Explanation(torch.rand(1, 8, 8), torch.full((1, 2, 49), 1 / 49), torch.zeros(2),
                           ["a", "b"]), tmp_path / "x.gif")


def test_explain_a_file_as_jpeg_and_one_class_is_flagged(planted, tiny_checkpoints, tmp_path,
                                                         capsys):
    cloud = tmp_path / "cloud.npy"
    np.save(cloud, planted.points["test"][1].numpy())
    out = tmp_path / "att.jpg"
    assert main(["explain", str(cloud), "--classes", P.CLASSES[0], "--backbone",
                 str(tiny_checkpoints["vit"]), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [f"cloud.npy: {P.CLASSES[0]} 100.0%", f"wrote {out}"]
    assert (f"pointcalip explain: warning: only one class ({P.CLASSES[0]!r}): its probability "
            f"is 100% whatever the cloud, a softmax over one class means nothing; give two or "
            f"more --classes to compare" in captured.err)
    with Image.open(out) as image:
        assert image.format == "JPEG" and image.size == attention_grid_size(6, 1)
