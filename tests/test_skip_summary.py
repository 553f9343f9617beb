"""`make test` ends with one line naming the system packages whose absence skipped tests (issue 21)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO, skip_packages


def test_skip_reasons_name_their_packages_in_one_convention():
    assert skip_packages("chromium not installed (apt-get install chromium)") == ["chromium"]
    assert skip_packages("mosquitto binary not found: apt-get install -y mosquitto") == ["mosquitto"]
    assert skip_packages("promtool not installed (apt-get install prometheus; .ci/run does)") == ["prometheus"]
    assert skip_packages("debootstrap not installed (apt install debootstrap systemd-container)") == \
        ["debootstrap", "systemd-container"]
    assert skip_packages("../shared not found: the real models are needed") == []


def test_the_run_ends_with_one_line_naming_the_missing_packages(tmp_path):
    # A run of its own, of two tests that skip as ours do for missing packages, and one that passes.
    (tmp_path / "conftest.py").write_text("from tests.conftest import pytest_unconfigure  # noqa: F401\n")
    (tmp_path / "test_fake.py").write_text(
        "import pytest\n"
        "def test_a():\n    pytest.skip('xdotool not found: apt-get install -y xdotool')\n"
        "def test_b():\n    pytest.skip('chromium not installed (apt-get install chromium)')\n"
        "def test_c():\n    pytest.skip('chromium not installed (apt-get install chromium)')\n"
        "def test_d():\n    pass\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last == ("skipped for want of system packages: chromium (2 tests), xdotool (1 test); "
                    "sudo apt-get install chromium xdotool (.ci/run installs them all)"), proc.stdout
