"""The Coral backend in-process: the real ai-edge-litert loads a libedgetpu.so.1 built from
tests/fakes/edgetpu/fake_edgetpu.c (a real TFLite external delegate: it claims the real
``_edgetpu.tflite``'s edgetpu-custom-op node) and runs the real model file through it.

Not checked against a Coral: the TPU itself, the real libedgetpu's messages
and timings; the fake answers from a reply table made with the CPU twin.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgecam.model.backends import edgetpu
from edgecam.model.backends.edgetpu import EdgeTpuClassifier, load_edgetpu, probe
from edgecam.model.classifier import Classifier
from edgecam.config.schema import ModelConfig
from edgecam.errors import ModelError, RuntimeMissingError, SourceError
from tests.model.backends.conftest import reply_table
from tests.fakes.machine import Machine


@pytest.fixture
def tpu(fake_libedgetpu, monkeypatch, tmp_path):
    """The fake library in $EDGECAM_EDGETPU_LIBRARY, its mode "ok", and its event log; returns the log path."""
    log = tmp_path / "tpu.log"
    monkeypatch.setenv("EDGECAM_EDGETPU_LIBRARY", str(fake_libedgetpu))
    monkeypatch.setenv("EDGECAM_FAKE_EDGETPU", "ok")
    monkeypatch.setenv("EDGECAM_FAKE_EDGETPU_LOG", str(log))
    for var in ("EDGECAM_FAKE_EDGETPU_REPLIES", "EDGECAM_FAKE_EDGETPU_CLASS", "EDGECAM_FAKE_EDGETPU_FAIL_AFTER"):
        monkeypatch.delenv(var, raising=False)
    return log


def tpu_cfg(model_cache) -> ModelConfig:
    return ModelConfig(name="mobilenet_v1_edgetpu", backend="edgetpu", dir=str(model_cache))


@pytest.fixture(scope="module")
def edgetpu_model(model_cache, shared_dir):
    from edgecam import registry

    registry.fetch("mobilenet_v1_edgetpu", dest_dir=model_cache, mirror=shared_dir / "models", progress=False)
    return model_cache


def test_the_real_edgetpu_model_runs_through_the_delegate_with_the_cpu_twins_answers(
        tpu, edgetpu_model, shared_dir, labels, tmp_path, monkeypatch):
    images = [cv2.imread(str(shared_dir / "images" / n)) for n in ("bird.bmp", "cat.bmp", "grace_hopper.bmp")]
    table = tmp_path / "replies.bin"
    outputs = reply_table(table, shared_dir / "models" / "mobilenet_v1_0.75_192_quant.tflite", labels, images)
    monkeypatch.setenv("EDGECAM_FAKE_EDGETPU_REPLIES", str(table))
    clf = load_edgetpu(tpu_cfg(edgetpu_model))
    assert isinstance(clf, EdgeTpuClassifier) and clf.backend == "edgetpu" and clf.runtime == "litert+edgetpu"
    assert clf.threads == 1 and clf.input_size == (192, 192) and clf.num_classes == 1001
    cpu = Classifier(shared_dir / "models" / "mobilenet_v1_0.75_192_quant.tflite", labels, threads=1)
    for image, raw in zip(images, outputs):
        got, want = clf.classify(image), cpu.classify(image)
        assert np.array_equal(got.scores, want.scores)  # the very output of the CPU twin, through the TPU path
        assert np.array_equal(got.scores, clf.scores(np.frombuffer(raw, np.uint8)))
    assert clf.classify(images[0]).top.name == "chickadee"
    events = tpu.read_text().splitlines()
    # the probe's process and this one: each created the delegate, which claimed the model's one node
    assert events.count("prepare claimed 1 node(s)") == 2
    assert "invoke reply 0" in events and "invoke reply 2" in events


def test_an_input_the_tpu_was_not_given_is_not_answered_silently(tpu, edgetpu_model, tmp_path, monkeypatch,
                                                                   shared_dir, labels):
    table = tmp_path / "replies.bin"
    reply_table(table, shared_dir / "models" / "mobilenet_v1_0.75_192_quant.tflite", labels,
                [cv2.imread(str(shared_dir / "images" / "cat.bmp"))])
    monkeypatch.setenv("EDGECAM_FAKE_EDGETPU_REPLIES", str(table))
    clf = load_edgetpu(tpu_cfg(edgetpu_model))  # the probe's invoke is not in the table either: it is a zero input
    with pytest.raises(SourceError, match="the TPU stopped answering .*not in the reply table"):
        clf.classify(np.zeros((100, 100, 3), np.uint8) + 7)


def test_the_cpu_interpreter_says_an_edge_tpu_build_needs_the_delegate_not_that_it_is_corrupt(edgetpu_model, labels):
    with pytest.raises(ModelError) as err:
        Classifier(edgetpu_model / "mobilenet_v1_0.75_192_quant_edgetpu.tflite", labels, threads=1)
    assert "compiled for the Coral Edge TPU" in err.value.message and "model.backend: edgetpu" in err.value.message
    assert "corrupt" not in err.value.message and err.value.exit_code == 2


def test_the_coral_found_on_the_bus_sets_the_device_option(tpu, edgetpu_model, tmp_path):
    machine = Machine(tmp_path / "root")
    assert edgetpu.device_options(machine.root) == ({}, [])
    machine.add_coral_usb()
    options, found = edgetpu.device_options(machine.root)
    assert options == {"device": "usb"} and found[0].kind == "usb"
    pcie = Machine(tmp_path / "root2")
    pcie.add_coral_pcie()
    assert edgetpu.device_options(pcie.root)[0] == {"device": "pci"}
    seconds = probe(edgetpu.library_path(), edgetpu_model / "mobilenet_v1_0.75_192_quant_edgetpu.tflite",
                    options, "litert", found)
    assert 0 < seconds < 60
    assert tpu.read_text().splitlines()[:2] == ["option device=usb", "create mode=ok device=usb"]


@pytest.mark.parametrize("mode, found, error, fragments", [
    ("nodevice", False, SourceError, ["found no Coral (no USB device 1a6e:089a or 18d1:9302, no /dev/apex_0)",
                                      "plug the Coral in"]),
    ("nodevice", True, SourceError, ["Coral USB Accelerator (18d1:9302, USB 1-1.2) is there, but",
                                     "another process is using it", "group plugdev"]),
    ("crash", False, RuntimeMissingError, ["crashed (SIGSEGV) while loading the delegate",
                                           "built for another TFLite runtime"]),
    ("crash-invoke", False, RuntimeMissingError, ["crashed (SIGSEGV)"]),
    ("prepare-error", False, RuntimeMissingError, ["loaded but failed on mobilenet_v1_0.75_192_quant_edgetpu.tflite",
                                                   "Package requires runtime version (14)"]),
])
def test_each_failure_of_the_library_is_one_error_with_its_exit_code(tpu, edgetpu_model, monkeypatch, tmp_path,
                                                                     mode, found, error, fragments):
    monkeypatch.setenv("EDGECAM_FAKE_EDGETPU", mode)
    machine = Machine(tmp_path / "root")
    if found:
        machine.add_coral_usb()
    options, coral = edgetpu.device_options(machine.root)
    with pytest.raises(error) as err:
        probe(edgetpu.library_path(), edgetpu_model / "mobilenet_v1_0.75_192_quant_edgetpu.tflite", options,
              "litert", coral)
    for f in fragments:
        assert f in err.value.message
    assert err.value.exit_code == (3 if error is SourceError else 6)


def test_no_library_is_exit_6_and_names_the_package(edgetpu_model, monkeypatch, tmp_path):
    monkeypatch.setenv("EDGECAM_EDGETPU_LIBRARY", str(tmp_path / "nowhere" / "libedgetpu.so.1"))
    with pytest.raises(RuntimeMissingError, match="does not exist; install it: sudo apt install libedgetpu1-std"):
        load_edgetpu(tpu_cfg(edgetpu_model))
    monkeypatch.delenv("EDGECAM_EDGETPU_LIBRARY")
    monkeypatch.setenv("LD_LIBRARY_PATH", str(tmp_path))
    assert edgetpu.library_path() in (None, "libedgetpu.so.1")  # found only if this machine has one installed
    (tmp_path / "libedgetpu.so.1").write_bytes(b"")
    assert edgetpu.library_path() == "libedgetpu.so.1"  # by its soname: the loader finds it there
