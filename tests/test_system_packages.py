"""system_version: the system's copy of a package, seen from a --system-site-packages venv."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from importlib import metadata

import pytest

from tests.conftest import REPO

PROBE = "from edgecam.system_packages import system_version; print(system_version('pip'))"


@pytest.mark.parametrize("system_site", [True, False])
def test_only_a_venv_that_sees_the_system_finds_its_packages(tmp_path, system_site):
    # The base interpreter's own pip stands for apt's NumPy: outside the venv, visible or not.
    base = subprocess.run([sys._base_executable, "-c", "import pip; print(pip.__version__)"],
                          capture_output=True, text=True)
    if base.returncode != 0:
        pytest.skip("the base Python has no pip to look for")
    venv.EnvBuilder(system_site_packages=system_site, with_pip=False).create(tmp_path / "venv")
    p = subprocess.run([str(tmp_path / "venv" / "bin" / "python"), "-c", PROBE], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == (base.stdout.strip() if system_site else "None")


def test_outside_a_venv_nothing_is_the_systems(monkeypatch):
    from edgecam.system_packages import system_version

    monkeypatch.setattr(sys, "prefix", sys.base_prefix)
    assert system_version("pip") is None
    assert metadata.version("pip")  # though pip is there
