"""CalipHead against the literal implementation of docs/calip.md in tests/planted.py."""
import pytest
import torch
import torch.nn.functional as F

from planted import reference_logits, reference_view_logits
from pointcalip.calip import aggregate_views
from pointcalip.head import CalipHead


def features(b=4, v=3, hw=5, c=8, k=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    unit = lambda *shape: F.normalize(torch.randn(*shape, generator=g), dim=-1)  # noqa: E731
    return unit(b, v, c), unit(b, v, hw, c), unit(k, c)


def test_forward_is_the_spec_formula():
    glob, spatial, text = features()
    w = [0.5, 1.0, 0.25]
    head = CalipHead(text, beta2=1.3, beta3=0.07, view_weights=w)
    want_views = reference_view_logits(glob, spatial, text)
    got_views = head.view_logits(glob, spatial)
    for got, want in zip(got_views, want_views):
        assert got.shape == (4, 3, 6) and got.dtype == torch.float32
        torch.testing.assert_close(got.double(), want, atol=1e-4, rtol=0)
    torch.testing.assert_close(head(glob, spatial).double(), reference_logits(*want_views, 1.3, 0.07, w),
                               atol=1e-4, rtol=0)
    torch.testing.assert_close(head.aggregate(*got_views), aggregate_views(*got_views, 1.3, 0.07, w))


def test_zero_betas_and_unit_weights_are_plain_clip():
    glob, spatial, text = features(seed=1)
    head = CalipHead(text, num_views=3)
    plain = 100 * torch.einsum("bvc,kc->bk", glob, text) / 3 ** 0.5
    torch.testing.assert_close(head(glob, spatial), plain, atol=1e-4, rtol=0)


def test_parameters_are_buffers_and_can_be_set():
    _, _, text = features()
    head = CalipHead(text, 1.0, 0.05, num_views=3)
    assert set(head.state_dict()) == {"text", "beta2", "beta3", "view_weights"}
    assert not list(head.parameters())
    head.set_params(0.5, 0.01, [1.0, 0.25, 0.75])
    assert (float(head.beta2), float(head.beta3)) == (0.5, pytest.approx(0.01))
    assert head.view_weights.tolist() == [1.0, 0.25, 0.75]
    clone = CalipHead(torch.zeros_like(text), num_views=3)
    clone.load_state_dict(head.state_dict())
    assert torch.equal(clone.view_weights, head.view_weights) and torch.equal(clone.text, text)
    assert "beta2=0.5" in repr(head)


def test_bad_values_are_rejected():
    glob, spatial, text = features()
    with pytest.raises(ValueError, match="beta2 must be a finite number"):
        CalipHead(text, beta2=float("nan"), num_views=3)
    with pytest.raises(ValueError, match="view_weights has 2 values but there are 3 views"):
        CalipHead(text, num_views=3).set_params(0, 0, [1.0, 1.0])
    with pytest.raises(ValueError, match="finite"):
        CalipHead(text, view_weights=[1.0, float("inf"), 1.0])
    with pytest.raises(ValueError, match="needs view_weights or num_views"):
        CalipHead(text)
    head = CalipHead(text, num_views=2)
    with pytest.raises(ValueError, match="aggregates 2 views"):
        head(glob, spatial)
    with pytest.raises(ValueError, match="do not match"):
        head.view_logits(glob[:, :2], spatial[:, :2, :, :4])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_logits_are_computed_on_the_features_device():
    glob, spatial, text = features()
    head = CalipHead(text, 1.0, 0.05, num_views=3)           # buffers on the CPU
    out = head(glob.cuda(), spatial.cuda())
    assert out.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), head(glob, spatial), atol=1e-4, rtol=0)
    torch.testing.assert_close(head.cuda()(glob.cuda(), spatial.cuda()).cpu(), head.cpu()(glob, spatial),
                               atol=1e-4, rtol=0)
