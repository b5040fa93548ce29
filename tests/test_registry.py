"""The extension-point registry: registration, declared metadata, discovery, unknown names."""
import sys

import pytest

from pointcalip.core.registry import Registry


def test_entries_keep_order_and_what_they_declared():
    reg = Registry("few-shot method")
    reg.register("tip", print, trains=False)

    @reg.register("adapter", trains=True)
    def run():
        return 3

    assert reg.names() == ["tip", "adapter"] and "adapter" in reg and len(reg) == 2
    assert reg["adapter"].target() == 3 and reg["adapter"].trains and not reg["tip"].trains
    with pytest.raises(AttributeError, match="declares no 'rank'"):
        reg["tip"].rank
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("tip", len)
    with pytest.raises(KeyError, match=r"unknown few-shot method 'tpi' \(did you mean 'tip'\?\); known: tip, adapter"):
        reg["tpi"]


def test_discovery_imports_every_module_of_its_package(tmp_path, monkeypatch):
    pkg = tmp_path / "probe_methods"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from pointcalip.core.registry import Registry\nREG = Registry('probe', discover='probe_methods')\n")
    (pkg / "one.py").write_text("from probe_methods import REG\nREG.register('one', 1)\n")
    (pkg / "two.py").write_text("from probe_methods import REG\nREG.register('two', 2)\n")
    (pkg / "_private.py").write_text("raise RuntimeError('never imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from probe_methods import REG
    assert "probe_methods.one" not in sys.modules
    assert sorted(REG.names()) == ["one", "two"] and REG["two"].target == 2


def test_lazy_attribute_imports_the_submodule_on_first_use(tmp_path, monkeypatch):
    from pointcalip.core.lazy import lazy_attribute

    pkg = tmp_path / "probe_lazy"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "heavy.py").write_text("VALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import probe_lazy  # noqa: F401

    assert "probe_lazy.heavy" not in sys.modules
    assert lazy_attribute("probe_lazy", {"VALUE": "heavy"}, "VALUE") == 42
    assert "probe_lazy.heavy" in sys.modules
    with pytest.raises(AttributeError, match="module 'probe_lazy' has no attribute 'OTHER'"):
        lazy_attribute("probe_lazy", {"VALUE": "heavy"}, "OTHER")
