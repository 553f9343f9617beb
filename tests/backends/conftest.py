"""The accelerator harnesses' shared parts: the fake libedgetpu built from C, and what must not be skipped in CI.

$EDGECAM_REQUIRE_ACCEL_HARNESS=1 (CI, .ci/run) turns a missing piece (a C
compiler, the picamera2 release from PyPI) into a failure instead of a skip.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

FAKES = Path(__file__).resolve().parents[1] / "fakes"


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
        missing("no C compiler (cc) to build the fake libedgetpu.so.1")
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
    from edgecam.classifier import Classifier

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
