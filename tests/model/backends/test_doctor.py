"""``edgecam doctor`` on machines laid out in a folder (tests/fakes/machine.py) with the fake libedgetpu.so.1.

Run as root here, the group checks (plugdev, apex) are not exercised: root may open everything.
"""

from __future__ import annotations

import pytest

from edgecam.model.backends import cpu, edgetpu, hailo, imx500
from tests.conftest import run_cli
from tests.fakes.machine import Machine


@pytest.fixture
def machine(tmp_path):
    return Machine(tmp_path / "root")


def test_the_cpu_is_ready_with_the_installed_runtime():
    check = cpu.doctor()
    assert check.code == 0 and check.line.startswith("ok: TFLite runtime litert ")


def test_edge_tpu_without_its_library_says_which_package(machine, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECAM_EDGETPU_LIBRARY", str(tmp_path / "none" / "libedgetpu.so.1"))
    machine.add_coral_usb()
    check = edgetpu.doctor(machine.root)
    assert check.code == 6
    assert check.line == ("no libedgetpu.so.1; Coral USB Accelerator (18d1:9302, USB 1-1.2) is plugged in: install it: "
                          "sudo apt install libedgetpu1-std from Coral's apt repository, or a community build made "
                          "for your TFLite runtime")


def test_edge_tpu_with_its_library_and_no_coral_says_plug_it_in(machine, fake_libedgetpu, monkeypatch):
    monkeypatch.setenv("EDGECAM_EDGETPU_LIBRARY", str(fake_libedgetpu))
    check = edgetpu.doctor(machine.root)
    assert check.code == 3 and "is installed but no Coral is plugged in: plug the Coral in" in check.line


@pytest.mark.parametrize("mode, code, fragment", [
    ("ok", 0, "ok: Coral PCIe Edge TPU (apex_0); "),
    ("crash", 6, "crashed (SIGSEGV) while loading the delegate"),
    ("nodevice", 3, "Coral PCIe Edge TPU (apex_0) is there, but"),
])
def test_edge_tpu_probe_runs_a_model_in_a_child_process(machine, fake_libedgetpu, monkeypatch, model_cache,
                                                        shared_dir, mode, code, fragment):
    monkeypatch.setenv("EDGECAM_EDGETPU_LIBRARY", str(fake_libedgetpu))
    monkeypatch.setenv("EDGECAM_FAKE_EDGETPU", mode)
    machine.add_coral_pcie()
    assert edgetpu.doctor(machine.root).line == \
        f"ok: Coral PCIe Edge TPU (apex_0), {fake_libedgetpu} (edgecam doctor --probe runs a model on it)"
    check = edgetpu.doctor(machine.root, shared_dir / "models" / "mobilenet_v1_0.75_192_quant_edgetpu.tflite")
    assert check.code == code and fragment in check.line, check.line


def test_the_cli_exits_with_the_code_of_the_backend_asked_about(model_env, fake_libedgetpu, tmp_path):
    env = dict(model_env, LD_LIBRARY_PATH=str(fake_libedgetpu.parent))
    env.pop("EDGECAM_EDGETPU_LIBRARY", None)
    proc = run_cli(["doctor"], env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(None, 1) for line in proc.stdout.splitlines())
    assert list(lines) == ["cpu", "edgetpu", "imx500", "hailo", "board"]  # the board: said, not in the code
    assert lines["imx500"].startswith("picamera2's IMX500 support is not importable")  # no picamera2 here
    assert lines["cpu"].startswith("ok: ")
    # this machine has no Coral (a developer's with one would see "ok" here)
    assert lines["edgetpu"].startswith("libedgetpu.so.1 is installed but no Coral is plugged in")
    assert run_cli(["doctor", "--backend", "edgetpu"], env=env, cwd=tmp_path).returncode == 3
    assert run_cli(["doctor", "--backend", "cpu"], env=env, cwd=tmp_path).returncode == 0
    (tmp_path / "tpu.yaml").write_text("model:\n  backend: edgetpu\n")
    assert run_cli(["doctor", "--config", str(tmp_path / "tpu.yaml")], env=env, cwd=tmp_path).returncode == 3


def test_ai_camera_needs_picamera2_and_the_sensor(machine, real_picamera2, monkeypatch):
    import sys

    from tests.model.backends.test_imx500 import FAKES, _drop_fake_modules

    _drop_fake_modules()
    check = imx500.doctor(machine.root)  # this machine has no picamera2 (a Pi with one would pass this line)
    assert check.code == 6 and check.line.startswith("picamera2's IMX500 support is not importable (")
    assert "sudo apt install imx500-all python3-picamera2" in check.line
    monkeypatch.syspath_prepend(str(FAKES))
    monkeypatch.setenv("EDGECAM_REAL_PICAMERA2", str(real_picamera2))
    _drop_fake_modules()
    try:
        check = imx500.doctor(machine.root)
        assert check.code == 3 and check.line.startswith("no AI Camera found")
        machine.add_imx500()
        check = imx500.doctor(machine.root)
        assert (check.code, check.line) == (0, "ok: Raspberry Pi AI Camera (IMX500, /dev/v4l-subdev2), picamera2 "
                                               "with IMX500 support")
    finally:
        _drop_fake_modules()
        sys.modules.pop("picamera2", None)


def test_hailo_needs_hailort_and_the_device(machine, real_picamera2, monkeypatch):
    import sys

    from tests.model.backends.test_imx500 import FAKES, _drop_fake_modules

    _drop_fake_modules()
    check = hailo.doctor(machine.root)  # this machine has no picamera2 nor HailoRT
    assert check.code == 6 and check.line.startswith("picamera2's Hailo support is not importable (")
    monkeypatch.syspath_prepend(str(FAKES))
    monkeypatch.setenv("EDGECAM_REAL_PICAMERA2", str(real_picamera2))
    try:
        _drop_fake_modules()
        monkeypatch.setitem(sys.modules, "hailo_platform", None)  # picamera2 there, hailo-all not
        check = hailo.doctor(machine.root)
        assert check.code == 6 and "sudo apt install hailo-all" in check.line
        monkeypatch.delitem(sys.modules, "hailo_platform")
        _drop_fake_modules()
        check = hailo.doctor(machine.root)
        assert check.code == 3 and check.line.startswith("no Hailo found (no /dev/hailo0)")
        machine.add_hailo()
        check = hailo.doctor(machine.root)
        assert (check.code, check.line) == (0, "ok: Hailo accelerator (hailo0), HailoRT and picamera2's Hailo support")
    finally:
        _drop_fake_modules()
        sys.modules.pop("hailo_platform", None)


def _dpkg(machine, package: str, version: str) -> None:
    status = machine.root / "var/lib/dpkg/status"
    status.parent.mkdir(parents=True, exist_ok=True)
    status.write_text(f"Package: libc6\nStatus: install ok installed\nVersion: 2.36-9\n\n"
                      f"Package: {package}\nStatus: install ok installed\nArchitecture: arm64\nVersion: {version}\n")


@pytest.mark.parametrize("version, runtime, runtime_version, verdict", [
    ("16.0", "litert", "2.3.0", "crashes"),             # Coral's build, any runtime edgecam installs
    ("16.0", "tflite-runtime", "2.14.0", "crashes"),
    ("16.0", "tflite-runtime", "2.11.0", "works"),      # the newest it works with (edgetpu issue 812)
    ("16.0", "tflite-runtime", "2.5.0.post1", "works"),
    ("16.0tf2.13.1-1.bookworm", "tflite-runtime", "2.14.1", "works"),  # reported in edgetpu issue 812
    ("16.0tf2.13.1-1.bookworm", "tflite-runtime", "2.17.0", "unknown"),
    ("16.0tf2.17.1-1.bookworm", "litert", "2.3.0", "unknown"),  # litert's TFLite is only known to be 2.18+
    ("14.1", "litert", "2.3.0", "unknown"),
])
def test_the_libedgetpu_table(version, runtime, runtime_version, verdict):
    from edgecam.model.backends import edgetpu_compat

    assert edgetpu_compat.verdict(version, runtime, runtime_version)[0].value == verdict


def test_doctor_says_corals_libedgetpu_16_crashes_with_this_runtime_and_which_build_works(machine, fake_libedgetpu,
                                                                                          monkeypatch):
    from edgecam.model.runtime import runtime_version

    monkeypatch.delenv("EDGECAM_EDGETPU_LIBRARY", raising=False)
    monkeypatch.setenv("LD_LIBRARY_PATH", str(fake_libedgetpu.parent))
    machine.add_coral_usb()
    _dpkg(machine, "libedgetpu1-std", "16.0")
    check = edgetpu.doctor(machine.root)
    assert check.code == 6
    assert check.line == (f"libedgetpu1-std 16.0: Coral's build (for TensorFlow 2.5), crashes with TFLite newer than "
                          f"2.11, and this is litert {runtime_version('litert')} (TFLite of TensorFlow 2.18 or newer): "
                          "install a libedgetpu built for TensorFlow 2.18+ (feranick/libedgetpu releases, packages "
                          "16.0tfX.Y), then check with edgecam doctor --probe; or run the model's CPU build "
                          "(model.backend: cpu)")
    _dpkg(machine, "libedgetpu1-max", "16.0tf2.19.0-1.bookworm")
    check = edgetpu.doctor(machine.root)
    assert check.code == 0
    assert "libedgetpu1-max 16.0tf2.19.0-1.bookworm: a community build, for TensorFlow 2.19; with litert" in check.line
