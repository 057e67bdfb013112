"""The top-level surface: every exported name imports, is documented, and is the module's own."""

import importlib
import subprocess
import sys

import pytest

import latentnav


@pytest.mark.parametrize("name", latentnav.__all__)
def test_every_exported_name_imports_and_is_documented(name):
    value = getattr(latentnav, name)
    assert value is getattr(importlib.import_module(latentnav._EXPORTS[name]), name)
    if callable(value):
        assert (value.__doc__ or "").strip(), f"{name} has no docstring"


def test_star_import_and_unknown_names():
    assert sorted(latentnav.__all__) == sorted(latentnav._EXPORTS)
    namespace: dict = {}
    exec("from latentnav import *", namespace)
    assert {"AAE", "Navigator", "LatentDiffusion", "export_video"} <= set(namespace)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = latentnav.Nope


def test_import_is_cheap():
    """``import latentnav`` loads no torch: the names load on first use."""
    code = "import sys, latentnav; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
