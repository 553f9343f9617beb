"""OpenCV missing or unloadable: one line saying which wheel to install (exit 6), not a traceback.

OpenCV is an extra ([gui] or [headless]); the GUI wheel does not load on Pi OS
Lite, which lacks libGL. Both cases are played in a subprocess: a cv2 package
that fails the way the real one does when libGL.so.1 is missing, and no cv2.
"""

from __future__ import annotations

import os
import subprocess
import sys

from edgecam.errors import EXIT_RUNTIME
from tests.conftest import REPO

BROKEN_CV2 = '''
# What opencv-python's cv2/__init__.py raises on a system without libGL (Pi OS Lite).
raise ImportError("libGL.so.1: cannot open shared object file: No such file or directory")
'''


def run(tmp_path, code: str, pythonpath: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*pythonpath, str(REPO)])}
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)


def test_opencv_that_cannot_load_says_to_use_the_headless_build(tmp_path):
    (tmp_path / "shadow" / "cv2").mkdir(parents=True)
    (tmp_path / "shadow" / "cv2" / "__init__.py").write_text(BROKEN_CV2)
    p = run(tmp_path, "import sys; from edgecam.cli import main; sys.exit(main(['classify', 'x.jpg']))",
            [str(tmp_path / "shadow")])
    assert p.returncode == EXIT_RUNTIME, p.stderr
    assert p.stderr.splitlines() == [
        "edgecam: OpenCV cannot load (libGL.so.1: cannot open shared object file: No such file or directory); "
        "without a desktop (Pi OS Lite) use the headless build: pip uninstall opencv-python && "
        "pip install opencv-python-headless (make install picks it)"]


def test_opencv_not_installed_names_the_extras(tmp_path):
    p = run(tmp_path, "import sys; sys.modules['cv2'] = None\n"
                      "from edgecam.cli import main; sys.exit(main(['run', '--source', 'x.mp4']))", [])
    assert p.returncode == EXIT_RUNTIME, p.stderr
    (line,) = p.stderr.splitlines()
    assert line.startswith("edgecam: OpenCV is not installed: pip install 'edgecam[gui]' on a desktop")
    assert "'edgecam[headless]'" in line


def test_commands_without_opencv_still_work(tmp_path):
    p = run(tmp_path, "import sys; sys.modules['cv2'] = None\n"
                      "from edgecam.cli import main; sys.exit(main(['models', 'list']))", [])
    assert p.returncode == 0, p.stderr
    assert "mobilenet_v3_small" in p.stdout


def test_other_import_errors_are_not_blamed_on_opencv():
    from edgecam.cli import opencv_problem

    try:
        import paho_mqtt_that_is_not_there  # noqa: F401
    except ImportError as e:
        assert opencv_problem(e) is None
    assert opencv_problem(ImportError("libfoo.so: cannot open shared object file", name="foo")) is None
