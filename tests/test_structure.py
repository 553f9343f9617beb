"""The layout the code promises: no import cycle between edgecam's modules or packages, no file or function
that grew too big, a short package root, imports at the top of the file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHECK = REPO / "tools" / "import_cycles.py"

#: Files allowed over MAX_LINES, and why they are one file (the issue-10 note says more).
LONG_FILES = {
}
MAX_LINES = 460  # "about 450"


def _check(root: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(root / "tools" / "import_cycles.py")], capture_output=True,
                          text=True, timeout=60)


def test_no_import_cycle_between_edgecam_modules():
    proc = _check()
    assert "import cycle:" not in proc.stdout, proc.stdout + proc.stderr
    assert " 0 cycle(s)" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.xfail(strict=True, reason="config <-> events, config <-> health and events <-> outputs are untangled by "
                   "h22b, pipeline.app -> measure.calibration by h22c (the thread layout in one place); the lead removes "
                   "this mark after merging them")
def test_no_two_edgecam_packages_import_each_other():
    proc = _check()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " 0 package cycle(s)" in proc.stdout


def test_the_cycle_check_finds_a_cycle(tmp_path):
    # The check itself, on a package made for it: a -> b -> a (b's import inside a function counts).
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "import_cycles.py").write_text(CHECK.read_text())
    pkg = tmp_path / "edgecam"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from edgecam import b\n")
    (pkg / "b.py").write_text("def f():\n    from edgecam.a import x\n")
    (pkg / "c.py").write_text("import edgecam.a\n")
    proc = subprocess.run([sys.executable, str(tmp_path / "tools" / "import_cycles.py")], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1
    assert "import cycle: edgecam.a -> edgecam.b -> edgecam.a" in proc.stdout and " 1 cycle(s)" in proc.stdout


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "import_cycles.py").write_text(CHECK.read_text())
    for name, text in {"edgecam/__init__.py": "", **files}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_the_cycle_check_finds_packages_that_import_each_other_through_others(tmp_path):
    # No module cycle (low.a -> mid.b -> high.c -> low.d), but the packages low -> mid -> high -> low go round;
    # the root module edgecam.util is its own package and imported by all, which is no cycle.
    root = _package(tmp_path, {
        "edgecam/util.py": "",
        "edgecam/low/__init__.py": "",
        "edgecam/low/a.py": "from edgecam.mid import b\nfrom edgecam import util\n",
        "edgecam/low/d.py": "from edgecam import util\n",
        "edgecam/mid/__init__.py": "",
        "edgecam/mid/b.py": "from ..high import c\n",
        "edgecam/high/__init__.py": "",
        "edgecam/high/deep/__init__.py": "",
        "edgecam/high/deep/c.py": "",
        "edgecam/high/c.py": "def f():\n    from edgecam.low.d import x\n",
    })
    proc = _check(root)
    assert proc.returncode == 1
    assert " 0 cycle(s)" in proc.stdout and " 1 package cycle(s)" in proc.stdout, proc.stdout
    assert "package cycle: edgecam.high, edgecam.low, edgecam.mid import each other:" in proc.stdout
    # Each import that makes the cycle is named, so the reader knows which to move.
    for edge in ("edgecam.low -> edgecam.mid: edgecam.low.a -> edgecam.mid.b",
                 "edgecam.mid -> edgecam.high: edgecam.mid.b -> edgecam.high.c",
                 "edgecam.high -> edgecam.low: edgecam.high.c -> edgecam.low.d"):
        assert edge in proc.stdout
    assert "edgecam.util" not in proc.stdout.split("package cycle:")[1]


def test_the_cycle_check_passes_packages_that_import_one_way(tmp_path):
    root = _package(tmp_path, {
        "edgecam/low/__init__.py": "",
        "edgecam/low/a.py": "",
        "edgecam/high/__init__.py": "from edgecam.low import a\n",
        "edgecam/high/b.py": "from edgecam.low.a import x\nfrom edgecam.high import c\n",
        "edgecam/high/c.py": "",
    })
    proc = _check(root)
    assert proc.returncode == 0, proc.stdout
    assert " 0 cycle(s)" in proc.stdout and " 0 package cycle(s)" in proc.stdout


def test_no_file_in_edgecam_is_over_about_450_lines():
    long = {}
    for path in sorted((REPO / "edgecam").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > MAX_LINES and rel not in LONG_FILES:
            long[rel] = n
    assert not long, f"split these, or say in LONG_FILES why each must be one file: {long}"
