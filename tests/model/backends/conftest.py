"""The accelerator harnesses' shared parts: the fake libedgetpu built from C, picamera2's real
release, and what must not be skipped in CI.

$EDGECAM_REQUIRE_ACCEL_HARNESS=1 (CI, .ci/run) turns a missing piece (a C
compiler, the picamera2 release from PyPI) into a failure instead of a skip.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

FAKES = Path(__file__).resolve().parents[2] / "fakes"
REPO = Path(__file__).resolve().parents[3]
#: The picamera2 release whose devices/imx500/imx500.py and devices/hailo/hailo.py the harnesses run
#: (byte-identical to picamera2's git tree at the time of issue 16).
PICAMERA2_RELEASE = "0.3.38"
#: What imx500.py imports from PyPI (picamera2's own requirements), installed beside it.
PICAMERA2_DEPS = ("videodev2", "libarchive-c", "OpenEXR", "jsonschema", "tqdm")


def missing(why: str):
    """Skip with ``why``, or fail where the harness must run (CI)."""
    if os.environ.get("EDGECAM_REQUIRE_ACCEL_HARNESS") == "1":
        pytest.fail(f"{why} (EDGECAM_REQUIRE_ACCEL_HARNESS=1: the accelerator harness must run here; see .ci/run)")
    pytest.skip(why)


@pytest.fixture(scope="session")
def fake_libedgetpu(tmp_path_factory) -> Path:
    """tests/fakes/edgetpu/fake_edgetpu.c built as a ``libedgetpu.so.1`` in a folder of its own."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        missing("no C compiler (cc) to build the fake libedgetpu.so.1 (apt-get install gcc libc6-dev)")
    out = tmp_path_factory.mktemp("libedgetpu") / "libedgetpu.so.1"
    proc = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(out),
                           str(FAKES / "edgetpu" / "fake_edgetpu.c")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return out


def reply_table(path: Path, model_path: Path, labels: list[str], images) -> list[bytes]:
    """Write the fake Edge TPU's reply table for ``images`` (BGR arrays) and return the outputs.

    For each picture: the input tensor edgecam's preprocessing makes for the
    CPU model ``model_path`` (the Edge TPU build's twin, with the same input
    quantization), and the raw output that CPU model computes from it. The
    fake TPU answers an input it finds in the table with that output.
    """
    from edgecam.model.classifier import Classifier

    cpu = Classifier(model_path, labels, threads=1)
    inp = cpu.interpreter.get_input_details()[0]["index"]
    out = cpu.interpreter.get_output_details()[0]["index"]
    records, outputs = [], []
    for image in images:
        cpu.set_input(image)
        x = cpu.interpreter.get_tensor(inp).tobytes()
        cpu.interpreter.invoke()
        y = cpu.interpreter.get_tensor(out).tobytes()
        records.append(x + y)
        outputs.append(y)
    path.write_bytes(struct.pack("<III", len(x), len(y), len(records)) + b"".join(records))
    return outputs


@pytest.fixture(scope="session")
def real_picamera2() -> Path:
    """A folder with picamera2 RELEASE from PyPI (``pip install --no-deps --target``; kept in build/).

    Not on ``sys.path``: the fake picamera2 (tests/fakes) loads only its
    ``devices/imx500/imx500.py`` and ``devices/hailo/hailo.py`` from it,
    through ``$EDGECAM_REAL_PICAMERA2``. What those import from PyPI
    (:data:`PICAMERA2_IMPORTS`) goes into its ``deps`` subfolder, which the
    fake appends to ``sys.path``: test-only packages stay out of edgecam's
    own install (``make install`` on a Pi).
    """
    target = REPO / "build" / f"picamera2-{PICAMERA2_RELEASE}"
    module = target / "picamera2" / "devices" / "imx500" / "imx500.py"
    deps = target / "deps"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    steps = []
    if not module.is_file():
        steps.append(pip + ["--no-deps", "--target", str(target), f"picamera2=={PICAMERA2_RELEASE}"])
    if not (deps / ".complete").is_file():
        steps.append(pip + ["--target", str(deps), *PICAMERA2_DEPS])
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            missing(f"cannot install {cmd[-1]} from PyPI for the AI Camera harness: {proc.stderr.strip()[-300:]}")
    (deps / ".complete").touch()
    return target
