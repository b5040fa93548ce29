"""Small deterministic stand-ins for a dataset, a projector and a CLIP backbone, for testing
the feature store and extraction without CLIP."""
from __future__ import annotations

import faulthandler

import numpy as np
import torch

V, C, HW, N_POINTS = 3, 8, 4, 16


class FakeDataset:
    """``n`` random clouds [N_POINTS, 3] with labels 0, 1, 2, 0, ..."""

    name, split = "fake", "test"

    def __init__(self, n=10, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.clouds = torch.rand(n, N_POINTS, 3, generator=g) - 0.5
        self.labels = np.arange(n) % 3
        self.settings = {"name": "fake", "n": n, "seed": seed}

    def __len__(self):
        return len(self.clouds)

    def points(self, indices):
        return self.clouds[torch.as_tensor(np.asarray(indices))]


class FakeProjector:
    """Three 'views': the cloud scaled by 1, 2, 3, as tiny images [B, V, 3, 2, 2];
    raises KeyboardInterrupt on call number ``fail_after + 1``."""

    num_views = V

    def __init__(self, fail_after=None, tag="a"):
        self.calls, self.fail_after = 0, fail_after
        self.settings = {"name": "fake", "tag": tag}

    def __call__(self, points):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        flat = points[:, :4, :].reshape(points.shape[0], 1, 12)
        return torch.cat([flat * (v + 1) for v in range(V)], 1).reshape(-1, V, 3, 2, 2)


class FakeBackbone:
    """Deterministic 'encoder': a fixed random linear map of the 12 pixel values."""

    name, identity, precision, embed_dim, num_tokens, device = "fake", "fake-weights-1", "float32", C, HW, "cpu"

    def __init__(self):
        g = torch.Generator().manual_seed(1)
        self.w_g = torch.randn(12, C, generator=g)
        self.w_s = torch.randn(12, HW * C, generator=g)
        self.images_seen = 0

    def encode_images(self, images, return_norms=False):
        self.images_seen += images.shape[0]
        x = images.flatten(1)
        raw = x @ self.w_g
        g = torch.nn.functional.normalize(raw, dim=-1)
        s = torch.nn.functional.normalize((x @ self.w_s).view(-1, HW, C), dim=-1)
        return (g, s, raw.norm(dim=-1)) if return_norms else (g, s)


def fill_rows_in_child(root, rows, barrier, log_path, timeout_s):
    """A child process's work in tests/test_store.py: open the store at ``root`` and encode
    ``rows`` once both children are ready. Spawned children import this module, so it lives
    here and not in the test file. A child still running after ``timeout_s`` writes every
    thread's stack to ``log_path`` and exits, so a deadlock fails the test instead of hanging it."""
    from pointcalip.extract import extract
    from pointcalip.store import FeatureStore

    with open(log_path, "w") as log:
        faulthandler.dump_traceback_later(timeout_s, exit=True, file=log)
        print(f"rows {rows}: waiting for the other child", file=log, flush=True)
        barrier.wait(timeout_s)                   # both processes open and write at the same time
        print("opening the store and encoding", file=log, flush=True)
        ds = FakeDataset()
        store = FeatureStore(root).open(ds, FakeProjector(), FakeBackbone())
        extract(store, ds, rows, FakeProjector(), FakeBackbone(), batch_size=2)
        print("done", file=log, flush=True)
        faulthandler.cancel_dump_traceback_later()


def make_read_only(folder) -> None:
    """Take write permission away from ``folder`` and everything in it."""
    import os

    for top, dirs, files in os.walk(folder):
        for name in files:
            os.chmod(os.path.join(top, name), 0o444)
        os.chmod(top, 0o555)


def remove_tree(folder) -> None:
    """Delete ``folder`` even where :func:`make_read_only` took write permission away."""
    import os
    import shutil

    for top, _, _ in os.walk(folder):
        os.chmod(top, 0o755)
    shutil.rmtree(folder, ignore_errors=True)


def _drop_root_overrides() -> None:
    """In a child process run by root, before exec: drop the capabilities that let root
    write (and read) through file permissions (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):
        if libc.prctl(24, capability, 0, 0, 0) != 0:          # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def run_as_reader(argv, env=None, timeout=300):
    """Run ``argv`` so that read-only files really are read-only to it: as this user, or, when
    the tests run as root (who writes through permissions), as root without the capabilities
    that override them."""
    import os
    import subprocess

    drop = {"preexec_fn": _drop_root_overrides} if os.geteuid() == 0 else {}
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, **drop)
