"""The GPU path: float16 CLIP on CUDA against the float32 CPU path, and CUDA extraction.

Skipped without a CUDA GPU. On the CPU every other test runs float32; these check that the
float16 features a GPU stores agree with them (tokens, CALIP predictions on the planted
dataset) and that two CUDA extractions store byte-identical pieces.
"""
import numpy as np
import pytest
import torch

import planted as P
from pointcalip import PointCALIP
from pointcalip.backbones import load_clip
from pointcalip.datasets import ModelNet40
from pointcalip.extract import extract
from pointcalip.projection import PointCLIPProjector, RealisticProjector
from pointcalip.store import FeatureStore

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

#: largest |float16 GPU token - float32 CPU token| allowed (tokens are unit vectors)
TOKEN_TOLERANCE = 1e-2


@pytest.mark.parametrize("kind", ["vit", "resnet"])
@pytest.mark.parametrize("projector", [PointCLIPProjector, RealisticProjector])
def test_float16_gpu_tokens_agree_with_float32_cpu(tiny_checkpoints, planted, kind, projector):
    cpu = load_clip(tiny_checkpoints[kind], device="cpu")
    gpu = load_clip(tiny_checkpoints[kind], device="cuda")
    assert gpu.precision == "float16" and cpu.precision == "float32"
    proj = projector()
    points = planted.points["test"][:8]
    g32, s32 = cpu.encode_images(proj(points).flatten(0, 1))
    g16, s16 = gpu.encode_images(proj(points.cuda()).flatten(0, 1))
    assert g16.device.type == "cuda"
    worst = max((g16.cpu() - g32).abs().max().item(), (s16.cpu() - s32).abs().max().item())
    print(f"{kind} {projector.__name__}: max |fp16 - fp32| token difference {worst:.2e}")
    assert worst < TOKEN_TOLERANCE


def test_float16_gpu_predictions_agree_on_the_planted_dataset(tiny_checkpoints, planted):
    b2, b3 = P.planted_betas()
    preds = {}
    for device in ("cpu", "cuda"):
        model = PointCALIP(load_clip(tiny_checkpoints["vit"], device=device), P.CLASSES,
                           PointCLIPProjector(), templates=P.TEMPLATES, beta2=b2, beta3=b3, view_weights=P.WEIGHTS)
        preds[device] = model(planted.points["test"].to(device)).argmax(-1).cpu().numpy()
    agree = (preds["cpu"] == preds["cuda"]).mean()
    print(f"top-1 agreement fp16 GPU vs fp32 CPU: {100 * agree:.1f}%")
    assert agree >= 0.95
    assert (preds["cuda"] == planted.labels["test"]).mean() >= 0.9


def test_cuda_extractions_store_identical_pieces(tiny_checkpoints, planted, tmp_path):
    backbone = load_clip(tiny_checkpoints["resnet"], device="cuda")
    dataset = ModelNet40(planted.root, "test", num_points=1024)
    projector = RealisticProjector()
    arrays = []
    for run in ("a", "b"):
        store = FeatureStore(tmp_path / run).open(dataset, projector, backbone)
        feats = extract(store, dataset, None, projector, backbone, batch_size=8)
        assert feats.stats.encoded == len(dataset)
        arrays.append(store.read(np.arange(len(dataset))))
    for a, b in zip(*arrays):
        assert a.tobytes() == b.tobytes()
