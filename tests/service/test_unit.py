"""The systemd unit: valid for systemd, well sandboxed, and the sandbox fits the runtime."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "edgecam.service"
SHARED = REPO / ".." / "shared"

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed (apt install systemd)"
)


def _testable_copy(tmp_path: Path) -> Path:
    """The unit with its edgecam paths pointed at an executable that exists here.

    `systemd-analyze verify` fails when an Exec*= binary does not exist, and
    /usr/local/bin/edgecam only exists once the service is installed. Its
    --root option does not help: it then wants a whole OS tree (sysinit.target,
    /bin/kill) under the root. So verify a copy in which the edgecam launcher
    is replaced by this interpreter; everything else is checked as shipped.
    """
    text = UNIT.read_text()
    assert "/usr/local/bin/edgecam " in text, "the unit no longer runs the installer's launcher"
    copy = tmp_path / "edgecam.service"
    copy.write_text(text.replace("/usr/local/bin/edgecam", sys.executable))
    return copy


@needs_analyze
def test_unit_passes_systemd_analyze_verify(tmp_path):
    copy = _testable_copy(tmp_path)
    r = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    # verify exits 0 on unknown or misspelt keys and only warns: catch those too.
    ours = [line for line in out.splitlines() if "edgecam.service" in line]
    assert r.returncode == 0 and not ours, out


@needs_analyze
@pytest.mark.parametrize("backend", ["edgetpu", "hailo", "imx500"])
def test_the_accelerator_dropins_pass_systemd_analyze_verify(tmp_path, backend):
    """The installer's drop-in (edgecam.model.backends.unit) beside the unit, where verify reads it (a typo there is caught)."""
    from edgecam.model.backends import unit

    copy = _testable_copy(tmp_path)
    text, _ = unit.dropin(backend, group_exists=lambda name: True)
    (tmp_path / "edgecam.service.d").mkdir()
    dropin = tmp_path / "edgecam.service.d" / unit.DROPIN_NAME
    for body, clean in ((text, True), (text.replace("[Service]", "[Service]\nDeviceAllo=x rw"), False)):
        dropin.write_text(body)
        r = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
        out = r.stdout + r.stderr
        ours = [line for line in out.splitlines() if "edgecam.service" in line]
        assert (r.returncode == 0 and not ours) if clean else "DeviceAllo" in out, out


@needs_analyze
def test_verify_catches_a_broken_unit(tmp_path):
    """Guard for the test above: the same check does fail on a typo."""
    copy = _testable_copy(tmp_path)
    copy.write_text(copy.read_text().replace("NoNewPrivileges=", "NoNewPrivilege="))
    r = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    assert "NoNewPrivilege" in r.stdout + r.stderr


@needs_analyze
def test_unit_security_exposure_is_low(tmp_path):
    copy = _testable_copy(tmp_path)
    r = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = r.stdout + r.stderr
    if "--offline" in out and ("unrecognized" in out or "Unknown option" in out):
        pytest.skip("systemd-analyze security --offline needs systemd >= 250")
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
    assert m, out
    assert float(m.group(1)) <= 2.5, out


def test_unit_keeps_the_promises_the_code_relies_on():
    """Settings other modules depend on (exit codes, notify, paths)."""
    from edgecam.errors import EXIT_CONFIG, EXIT_NETWORK, EXIT_RUNTIME, EXIT_SOURCE, EXIT_TEMPFAIL
    from edgecam.service.install import LAUNCHER, MODEL_DIR

    text = UNIT.read_text()
    settings = [line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#")]
    lines = dict(settings)
    assert lines["Type"] == "notify"
    assert lines["Restart"] == "on-failure"
    # Bad input fails once; a camera or a download that may come back is retried.
    no_restart = {int(code) for code in lines["RestartPreventExitStatus"].split()}
    assert {EXIT_CONFIG, EXIT_NETWORK, EXIT_RUNTIME} <= no_restart
    assert not {EXIT_SOURCE, EXIT_TEMPFAIL} & no_restart
    # RestartPreventExitStatus= does not cover ExecStartPre= (systemd issue 11868):
    # a failing check there would be restarted in a loop, so validation is run's job.
    assert not any(key.startswith("ExecStartPre") for key, _ in settings)
    reload = [value for key, value in settings if key == "ExecReload"]
    assert reload[0].startswith(f"/{LAUNCHER} check-config ") and reload[-1] == "/bin/kill -HUP $MAINPID"
    # XNNPACK needs /proc/cpuinfo; ProcSubset=pid hides it (4-5x slower inference).
    assert "ProcSubset" not in lines
    assert lines["StateDirectory"] == "edgecam"
    assert "EDGECAM_MODEL_DIR=/var/lib/edgecam/models" in text
    assert f"Environment=EDGECAM_MODEL_DIR=/{MODEL_DIR}" in text, "installer and unit disagree on the model folder"
    assert lines["ExecStart"].startswith(f"/{LAUNCHER} "), "installer and unit disagree on the launcher"


def _mdwe_supported() -> bool:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(66, 0, 0, 0, 0) >= 0  # PR_GET_MDWE, Linux >= 6.3


def test_tflite_runtime_runs_with_memory_deny_write_execute(tmp_path):
    """MemoryDenyWriteExecute=yes must not break inference (no JIT in the runtime).

    The kernel's PR_SET_MDWE (what systemd >= 253 uses for this setting)
    refuses writable+executable memory for the rest of the process; load and
    run a real model after switching it on.
    """
    # Edge TPU builds need their delegate (no device here): the CPU models are what the unit runs.
    models = sorted(p for p in (SHARED / "models").glob("*.tflite") if not p.stem.endswith("_edgetpu")) \
        if SHARED.is_dir() else []
    if not models:
        pytest.skip(f"../shared not found or holds no models: {SHARED.resolve()}")
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert not installed")
    if not _mdwe_supported():
        pytest.skip("kernel has no PR_SET_MDWE (needs Linux >= 6.3)")
    script = textwrap.dedent(
        """
        import ctypes, mmap, sys
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.prctl(65, 1, 0, 0, 0) == 0, ctypes.get_errno()  # PR_SET_MDWE, REFUSE_EXEC_GAIN
        try:  # prove the restriction is active
            mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
            sys.exit("W+X mapping was allowed: MDWE not in force")
        except OSError:
            pass
        import numpy as np
        from ai_edge_litert.interpreter import Interpreter
        for path in sys.argv[1:]:
            it = Interpreter(model_path=path, num_threads=2)
            it.allocate_tensors()
            d = it.get_input_details()[0]
            it.set_tensor(d["index"], np.full(d["shape"], 128, dtype=d["dtype"]))
            it.invoke()
            out = it.get_tensor(it.get_output_details()[0]["index"])
            assert out.size > 1, out.shape
        print("ok", len(sys.argv) - 1)
        """
    )
    r = subprocess.run(
        [sys.executable, "-c", script, *map(str, models)], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0 and f"ok {len(models)}" in r.stdout, r.stdout + r.stderr
