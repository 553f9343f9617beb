"""The Raspberry Pi OS Bookworm NumPy trap, played natively: `make install` with the system Python.

On Bookworm, apt's picamera2 imports apt's simplejpeg, built against apt's NumPy
1.24. The venv sees them (--system-site-packages); if pip puts NumPy 2 into it
(opencv-python >= 4.12 and ml_dtypes 0.6 require it), the venv's NumPy shadows
apt's and ``import picamera2`` fails: "numpy.dtype size changed, may indicate
binary incompatibility". This machine is Debian 12 too, so apt's python3-numpy
is that same 1.24.2: the test puts simplejpeg 1.6.6 (a wheel built against NumPy
1.x, as apt's is) and the fake picamera2 (which imports simplejpeg as the real
one does) where /usr/bin/python3 sees them, runs `make install` the way a Pi
user would, and asserts that picamera2 still imports and edgecam classifies.

The extension and the stand-in go into a user site (PYTHONUSERBASE in a temporary
folder) rather than /usr/lib/python3/dist-packages, so the test changes nothing
on the machine; a --system-site-packages venv sees the user site as it sees the
system's. NumPy itself is apt's, in /usr/lib/python3/dist-packages.

Slow (pip downloads OpenCV and the TFLite runtime), so marked ``install``:
``pytest -m "not install"`` skips it. It skips with the reason when the system
Python, apt's NumPy 1.x or python3-venv is missing, except where
$EDGECAM_REQUIRE_INSTALL_TEST=1 (CI) makes that a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.install

SYSTEM_PYTHON = os.environ.get("EDGECAM_SYSTEM_PYTHON", "/usr/bin/python3")
SIMPLEJPEG = "simplejpeg==1.6.6"  # its wheels are built against NumPy 1.x; 1.7.4 and later against 2.x
CAT = {"Egyptian cat", "tabby, tabby cat", "tiger cat"}
FAKES = REPO / "tests" / "fakes"


def _missing(why: str):
    if os.environ.get("EDGECAM_REQUIRE_INSTALL_TEST") == "1":
        pytest.fail(f"{why} (EDGECAM_REQUIRE_INSTALL_TEST=1: this test must run here; see .ci/run)")
    pytest.skip(why)


def _system(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([SYSTEM_PYTHON, "-c", code], capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def system_numpy() -> str:
    """apt's NumPy version, when the system Python has a NumPy 1.x (the trap needs one)."""
    if not Path(SYSTEM_PYTHON).is_file():
        _missing(f"{SYSTEM_PYTHON} not found (the system Python a Pi user's venv is made from)")
    p = _system("import numpy; print(numpy.__version__, numpy.__file__)")
    if p.returncode != 0:
        _missing(f"{SYSTEM_PYTHON} has no NumPy: apt-get install python3-numpy")
    version, where = p.stdout.split()
    if not version.startswith("1."):
        _missing(f"the system NumPy is {version}: the trap needs apt's NumPy 1.x (Debian 12 / Bookworm)")
    if _system("import ensurepip, venv").returncode != 0:
        _missing(f"{SYSTEM_PYTHON} cannot make venvs: apt-get install python3-venv")
    if shutil.which("make") is None:
        _missing("make not found")
    return version


def _copy_checkout(dest: Path) -> None:
    """The checkout's files as they are now (tracked and new, not ignored), without its venv."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True)
    if listed.returncode != 0:  # not a git checkout: everything but the build products
        shutil.copytree(REPO, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "*.egg-info", "__pycache__", ".pytest_cache"))
        return
    for name in filter(None, listed.stdout.decode().split("\0")):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


@pytest.fixture(scope="module")
def pi_like(tmp_path_factory, system_numpy):
    """A user site holding a NumPy-1 simplejpeg and the picamera2 stand-in, and a copy of the checkout."""
    root = tmp_path_factory.mktemp("pi-install")
    env = {**os.environ, "PYTHONUSERBASE": str(root / "userbase")}
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    usersite = Path(_system("import site; print(site.getusersitepackages())", env).stdout.strip())
    usersite.mkdir(parents=True)
    py = _system("import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')").stdout.strip()
    wheels = root / "wheels"
    got = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                          "--python-version", py, "--implementation", "cp", "-d", str(wheels), SIMPLEJPEG],
                         capture_output=True, text=True, timeout=600)
    if got.returncode != 0:
        pytest.fail(f"cannot download {SIMPLEJPEG} for Python {py}: {got.stderr[-2000:]}")
    (wheel,) = wheels.glob("simplejpeg-*.whl")
    with zipfile.ZipFile(wheel) as z:  # what installing it does; it has no scripts or data
        z.extractall(usersite)
    for package in ("picamera2", "libcamera"):
        shutil.copytree(FAKES / package, usersite / package, ignore=shutil.ignore_patterns("__pycache__"))
    # The stand-in imports where apt's does, with the system's NumPy: the trap is set.
    p = _system("import picamera2, simplejpeg, numpy; print(numpy.__version__)", env)
    assert p.returncode == 0 and p.stdout.split() == [system_numpy], p.stderr
    src = root / "edgecam"
    _copy_checkout(src)
    return {"env": env, "src": src, "venv": root / "venv", "root": root}


def test_make_install_keeps_the_system_numpy_so_picamera2_imports(pi_like, system_numpy, model_cache, shared_dir):
    env, src, venv = pi_like["env"], pi_like["src"], pi_like["venv"]
    make = ["make", "-C", str(src), f"PYTHON={SYSTEM_PYTHON}", f"VENV={venv}"]

    # The Makefile sees picamera2 where the system Python does, so the venv gets the system's packages.
    dry = subprocess.run([*make, "-n", "install"], env=env, capture_output=True, text=True, timeout=120)
    assert f"-m venv --system-site-packages {venv}" in dry.stdout, dry.stdout + dry.stderr

    done = subprocess.run([*make, "install"], env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]

    p = subprocess.run([str(venv / "bin" / "python"), "-c",
                        "import json, sys, numpy\n"
                        "result = {'numpy': numpy.__version__, 'numpy_file': numpy.__file__}\n"
                        "try:\n"
                        "    import picamera2\n"
                        "    result['picamera2'] = 'ok' if 'simplejpeg' in sys.modules else 'no simplejpeg'\n"
                        "except Exception as e:\n"
                        "    result['picamera2'] = f'{type(e).__name__}: {e}'\n"
                        "import cv2\n"
                        "from importlib import metadata\n"
                        "result['opencv'] = sorted(d.metadata['Name'] for d in metadata.distributions()\n"
                        "                          if d.metadata['Name'].lower().startswith('opencv'))\n"
                        "print(json.dumps(result))"],
                       env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    result = json.loads(p.stdout)
    assert result["picamera2"] == "ok", f"apt's picamera2 no longer imports in the venv: {result}"
    assert result["numpy"] == system_numpy, f"pip replaced the system's NumPy: {result}"
    assert result["numpy_file"].startswith("/usr/lib/python3/"), result
    assert len(result["opencv"]) == 1, f"more than one OpenCV installed: {result['opencv']}"

    # ... and edgecam classifies, from a photo and through the (stand-in) Pi camera.
    run_env = {**env, "EDGECAM_MODEL_DIR": str(model_cache), "EDGECAM_FAKE_PICAMERA2_PICTURES":
               str(shared_dir / "images" / "cat.bmp")}
    edgecam = str(venv / "bin" / "edgecam")
    p = subprocess.run([edgecam, "classify", str(shared_dir / "images" / "cat.bmp"), "--json"], env=run_env,
                       cwd=pi_like["root"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads(p.stdout)[0]["top_k"][0]["label"] in CAT, p.stdout

    log = pi_like["root"] / "camera.jsonl"
    proc = subprocess.Popen([edgecam, "run", "--source", "picamera2", "--display", "none", "--log", str(log)],
                            env=run_env, cwd=pi_like["root"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if log.is_file() and len(log.read_text().splitlines()) >= 10:
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    labels = [json.loads(line)["top_k"][0]["label"] for line in log.read_text().splitlines()]
    assert len(labels) >= 10 and set(labels) <= CAT, labels
