"""The layout the code promises: no import cycle between edgecam's modules or packages, no file or function
that grew too big, a short package root, imports at the top of the file."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHECK = REPO / "tools" / "import_cycles.py"

#: Files allowed over MAX_LINES, and why they are one file (the issue-10 note says more).
LONG_FILES: dict[str, str] = {
}
MAX_LINES = 450

#: Functions allowed over MAX_FUNCTION_LINES ("path::Class.function"), each with why it reads better whole.
LONG_FUNCTIONS: dict[str, str] = {
}
MAX_FUNCTION_LINES = 60
MAX_ROOT_MODULES = 12  # edgecam/*.py: the rest lives in packages that say what they hold


def _check(root: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(root / "tools" / "import_cycles.py")], capture_output=True,
                          text=True, timeout=60)


def test_no_import_cycle_between_edgecam_modules():
    proc = _check()
    assert "import cycle:" not in proc.stdout, proc.stdout + proc.stderr
    assert " 0 cycle(s)" in proc.stdout, proc.stdout + proc.stderr


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


def _functions(tree: ast.AST, prefix: str = ""):
    """(qualified name, node) of every function in ``tree``, methods as Class.method, nested ones as f.g."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = prefix + node.name
            if not isinstance(node, ast.ClassDef):
                yield name, node
            yield from _functions(node, name + ".")
        else:
            yield from _functions(node, prefix)


def _edgecam_files():
    for path in sorted((REPO / "edgecam").rglob("*.py")):
        yield path.relative_to(REPO).as_posix(), path.read_text(encoding="utf-8")


def test_no_function_in_edgecam_is_over_60_lines():
    long = {}
    for rel, text in _edgecam_files():
        for name, node in _functions(ast.parse(text)):
            n = node.end_lineno - node.lineno + 1
            if n > MAX_FUNCTION_LINES and f"{rel}::{name}" not in LONG_FUNCTIONS:
                long[f"{rel}::{name}"] = n
    assert not long, f"split these, or say in LONG_FUNCTIONS why each reads better whole: {long}"


def test_the_long_function_allow_list_names_functions_that_exist_and_says_why():
    found = {f"{rel}::{name}" for rel, text in _edgecam_files() for name, _ in _functions(ast.parse(text))}
    assert set(LONG_FUNCTIONS) <= found, set(LONG_FUNCTIONS) - found
    assert all(reason.strip() for reason in LONG_FUNCTIONS.values())


def test_the_function_check_measures_from_def_to_last_line():
    text = "class A:\n    def f(self):\n" + "        x = 1\n" * 60 + "\n\ndef g():\n    def h():\n        pass\n"
    sizes = {name: node.end_lineno - node.lineno + 1 for name, node in _functions(ast.parse(text))}
    assert sizes == {"A.f": 61, "g": 3, "g.h": 2}


def test_at_most_a_dozen_modules_at_the_package_root():
    root = sorted(p.name for p in (REPO / "edgecam").glob("*.py"))
    assert len(root) <= MAX_ROOT_MODULES, f"{len(root)} modules at edgecam/: {root}; move some into a package"


def _imports_in_functions(text: str):
    """(line number, source line) of each import inside a function that has no comment saying why: on its
    line(s), on the line above, or on the line above the run of imports it belongs to."""
    lines = text.splitlines()
    for _, fn in _functions(ast.parse(text)):
        for node in ast.walk(fn):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            first = node.lineno - 1
            while first > 0 and lines[first - 1].strip().startswith(("import ", "from ")):
                first -= 1  # a run of imports shares the comment above it
            span = lines[first - 1 if first else 0: node.end_lineno]
            if not any("#" in line for line in span):
                yield node.lineno, lines[node.lineno - 1].strip()


def test_the_import_check_wants_a_comment_on_each_import_inside_a_function():
    text = ("import os\n\n\ndef f():\n    import json\n\n\ndef g():\n    # optional: only on a Pi\n"
            "    import picamera2\n    from picamera2 import x\n\n\ndef h():\n    import cv2  # import cost\n")
    assert list(_imports_in_functions(text)) == [(5, "import json")]


def test_every_import_inside_a_function_says_why_in_a_comment():
    # Imports go at the top of the file; one inside a function is for an optional dependency (picamera2, paho,
    # a runtime) or a measured import cost (`python -X importtime -m edgecam --help`), and a comment says which.
    bare = {f"{rel}:{n}": line for rel, text in _edgecam_files() for n, line in _imports_in_functions(text)}
    assert not bare, f"{len(bare)} imports inside functions without a comment saying why: {bare}"
