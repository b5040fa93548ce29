"""Shared pytest settings: tests run on CPU, offline, with a private PointCALIP home."""
import pytest


@pytest.fixture(autouse=True)
def _private_home(tmp_path_factory, monkeypatch):
    """Never read or write the user's real ~/.cache/pointcalip during tests."""
    monkeypatch.setenv("POINTCALIP_HOME", str(tmp_path_factory.mktemp("pointcalip_home")))
