"""Which accelerators a machine has (``edgecam.model.backends.find_devices``) and where a model then runs (``choose``).

The machines are /sys and /dev trees laid out in a folder the way the drivers
lay them out (tests/fakes/machine.py); the registry is the real one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from edgecam.model import backends
from edgecam.config.schema import ModelConfig
from edgecam.errors import ConfigError
from tests.fakes.machine import Machine

FAKES = Path(__file__).resolve().parents[2] / "fakes"


@pytest.fixture
def machine(tmp_path):
    return Machine(tmp_path / "root")


def test_nothing_is_found_on_a_bare_machine(machine):
    machine.add_other_subdev(0)  # a Camera Module 3's sub-device is not an AI Camera
    machine.add_usb("046d", "0825", "1-1.3")  # a webcam is not a Coral
    assert backends.find_devices(machine.root) == []


def test_every_accelerator_is_found_in_the_order_auto_tries_them(machine):
    machine.add_coral_usb(firmware_loaded=False, bus="2-1")
    machine.add_coral_pcie()
    machine.add_hailo()
    machine.add_imx500(subdev=3)
    found = backends.find_devices(machine.root)
    assert [(d.backend, d.node, d.kind) for d in found] == [
        ("imx500", "/dev/v4l-subdev3", ""), ("hailo", "/dev/hailo0", ""), ("edgetpu", "2-1", "usb"),
        ("edgetpu", "/dev/apex_0", "pci")]
    assert found[2].what == "Coral USB Accelerator (firmware not loaded yet) (1a6e:089a, USB 2-1)"


def cfg(name="mobilenet_v1", backend="auto", **kw):
    return ModelConfig(name=name, backend=backend, **kw)


@pytest.fixture
def tpu_library(tmp_path, monkeypatch):
    """A file where $EDGECAM_EDGETPU_LIBRARY says libedgetpu is (choose only looks for it)."""
    lib = tmp_path / "libedgetpu.so.1"
    lib.write_bytes(b"\x7fELF")
    monkeypatch.setenv("EDGECAM_EDGETPU_LIBRARY", str(lib))
    return lib


def test_auto_on_a_bare_machine_is_the_cpu_quietly(machine):
    choice = backends.choose(cfg(), root=machine.root)
    assert (choice.backend, choice.model.name, choice.quiet) == ("cpu", "mobilenet_v1", True)
    assert choice.note == "backend auto: the CPU (no accelerator found)"


def test_auto_takes_the_edge_tpu_build_of_the_model_when_a_coral_is_ready(machine, tpu_library, tmp_path):
    machine.add_coral_usb()
    choice = backends.choose(cfg(dir=str(tmp_path / "models")), root=machine.root)
    assert (choice.backend, choice.model.name, choice.model.backend, choice.quiet) == \
        ("edgetpu", "mobilenet_v1_edgetpu", "edgetpu", False)
    assert choice.note == ("backend auto: Coral USB Accelerator (18d1:9302, USB 1-1.2): running mobilenet_v1_edgetpu, "
                           "its build of mobilenet_v1")


@pytest.mark.parametrize("model, library, reason", [
    ("mobilenet_v1", False, "libedgetpu is not installed (see edgecam doctor)"),
    ("mobilenet_v3_small", True, "mobilenet_v3_small has no build for it"),
    ("mobilenet_v2", True, "its build mobilenet_v2_edgetpu has no known checksum (edgecam models fetch "
                           "mobilenet_v2_edgetpu --trust-on-first-use, then it is used)"),
])
def test_auto_stays_on_the_cpu_and_says_why(machine, tmp_path, monkeypatch, model, library, reason):
    machine.add_coral_usb()
    if library:
        lib = tmp_path / "libedgetpu.so.1"
        lib.write_bytes(b"")
        monkeypatch.setenv("EDGECAM_EDGETPU_LIBRARY", str(lib))
    else:
        monkeypatch.setenv("EDGECAM_EDGETPU_LIBRARY", str(tmp_path / "none.so"))
    choice = backends.choose(cfg(model, dir=str(tmp_path / "models")), root=machine.root)
    assert (choice.backend, choice.model.name, choice.quiet) == ("cpu", model, False)
    assert choice.note == f"backend auto: the CPU (Coral USB Accelerator (18d1:9302, USB 1-1.2) found, but {reason})"


def test_auto_with_a_recorded_checksum_takes_that_build(machine, tpu_library, tmp_path):
    machine.add_coral_usb()
    models = tmp_path / "models"
    models.mkdir()
    (models / "mobilenet_v2_1.0_224_quant_edgetpu.tflite.sha256").write_text("0" * 64 + "  x\n")
    choice = backends.choose(cfg("mobilenet_v2", dir=str(models)), root=machine.root)
    assert (choice.backend, choice.model.name) == ("edgetpu", "mobilenet_v2_edgetpu")


def test_auto_sends_only_camera_pictures_to_the_ai_camera(machine, monkeypatch):
    machine.add_imx500()
    monkeypatch.syspath_prepend(str(FAKES))  # a picamera2 to find
    on_camera = backends.choose(cfg("mobilenet_v2"), root=machine.root)
    assert (on_camera.backend, on_camera.model.name) == ("imx500", "imx500_mobilenet_v2")
    photos = backends.choose(cfg("mobilenet_v2"), camera=False, root=machine.root)
    assert (photos.backend, photos.model.name) == ("cpu", "mobilenet_v2")


@pytest.mark.parametrize("name, own", [
    ("mobilenet_v1_edgetpu", "edgetpu"), ("imx500_mobilenet_v2", "imx500"), ("resnet_v1_50_h8l", "hailo"),
    ("/x/net.rpk", "imx500"), ("/x/net.hef", "hailo"),
])
def test_auto_runs_an_accelerator_build_where_it_was_built_for(machine, name, own):
    choice = backends.choose(cfg(name), root=machine.root)  # even with nothing plugged in: it says so at load
    assert (choice.backend, choice.model.name, choice.note) == (own, name, None)


def test_a_tflite_path_holding_the_edge_tpu_op_is_an_edge_tpu_build(tmp_path):
    shared = Path(__file__).resolve().parents[3].parent / "shared" / "models"
    if not (shared / "SHA256SUMS").is_file():
        pytest.skip("../shared not found: the real models are needed")
    from edgecam import registry

    reg = registry.load_registry()
    assert backends.built_for(str(shared / "mobilenet_v1_0.75_192_quant_edgetpu.tflite"), reg) == "edgetpu"
    assert backends.built_for(str(shared / "mobilenet_v1_0.75_192_quant.tflite"), reg) == "cpu"


@pytest.mark.parametrize("name, backend, runs, note", [
    ("mobilenet_v1", "edgetpu", "mobilenet_v1_edgetpu", "model.backend edgetpu: running mobilenet_v1_edgetpu, "
                                                        "the edgetpu build of mobilenet_v1"),
    ("mobilenet_v2", "imx500", "imx500_mobilenet_v2", "model.backend imx500: running imx500_mobilenet_v2, "
                                                      "the imx500 build of mobilenet_v2"),
    ("mobilenet_v1_edgetpu", "cpu", "mobilenet_v1", "model.backend cpu: running mobilenet_v1, the CPU model "
                                                    "mobilenet_v1_edgetpu was built from"),
    ("mobilenet_v1_edgetpu", "edgetpu", "mobilenet_v1_edgetpu", None),
    ("mobilenet_v3_small", "cpu", "mobilenet_v3_small", None),
])
def test_an_explicit_backend_takes_the_build_for_it(machine, name, backend, runs, note):
    choice = backends.choose(cfg(name, backend), root=machine.root)
    assert (choice.backend, choice.model.name, choice.note) == (backend, runs, note)


@pytest.mark.parametrize("name, backend, message", [
    ("mobilenet_v3_small", "edgetpu", "model.backend: edgetpu, but model mobilenet_v3_small has no build for a Coral "
                                      "Edge TPU; models that run there: mobilenet_v1_edgetpu, mobilenet_v2_edgetpu, "
                                      "inat_birds_edgetpu (or set model.backend: cpu)"),
    ("mobilenet_v3_small", "hailo", "model.backend: hailo, but model mobilenet_v3_small has no build for a Hailo "
                                    "accelerator; models that run there: resnet_v1_50_h8l, resnet_v1_50_h8"),
    ("resnet_v1_50_h8l", "cpu", "model.backend: cpu, but model resnet_v1_50_h8l is built for a Hailo accelerator "
                                "and runs only there; set model.backend: hailo (or auto)"),
    ("imx500_mobilenet_v2", "edgetpu", "model.backend: edgetpu, but model imx500_mobilenet_v2 is built for the "
                                       "Raspberry Pi AI Camera and runs only there"),
])
def test_a_model_that_cannot_run_on_the_backend_asked_for_is_a_config_error(machine, name, backend, message):
    with pytest.raises(ConfigError) as err:
        backends.choose(cfg(name, backend), root=machine.root)
    assert message in err.value.message and err.value.exit_code == 2


def test_fit_labels_drops_imagenets_background_for_a_1000_class_network():
    labels = ["background", "tench", "goldfish"]
    assert backends.fit_labels(labels, 2) == ["tench", "goldfish"]
    assert backends.fit_labels(labels, 3) == labels
    birds = ["a", "b", "background"]  # background last (the bird model) is a class like any other
    assert backends.fit_labels(birds, 2) == birds
    assert dataclasses.is_dataclass(backends.Choice)
