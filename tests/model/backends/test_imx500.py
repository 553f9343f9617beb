"""The AI Camera backend on picamera2's REAL ``devices/imx500/imx500.py`` (release 0.3.38 from PyPI).

Faked, and only that: the kernel and camera edge (tests/fakes/picamera2/imx500_kernel.py:
sysfs links laid out by tests/fakes/machine.py, the sub-device's ioctls recorded,
the debugfs upload progress; the fake picamera2's ``global_camera_info()``
and frames). The package parsing (the real ``.rpk`` from the AI Camera's
model repository), the network intrinsics and labels, the inference-crop
geometry and the metadata decoding are picamera2's own code. The network
on the sensor is played by its CPU twin (the shared MobileNetV2) on what the
sensor's crop sees, so accuracy through the whole path is real.

Not checked against an AI Camera: the sensor's own numbers and timings (the
DNN/DSP times here are made up), the real driver's upload and its errors.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecam.model import backends
from edgecam.model.backends import imx500 as backend
from edgecam.config.schema import ModelConfig, SourceConfig
from edgecam.errors import ConfigError, ModelError, RuntimeMissingError, SourceError
from edgecam.measure.evaluate import load_csv
from tests.fakes.machine import Machine

FAKES = Path(__file__).resolve().parents[2] / "fakes"
RPK = "imx500_network_mobilenet_v2.rpk"


def _drop_fake_modules() -> None:
    for name in list(sys.modules):
        if name.split(".")[0] in ("picamera2", "libcamera"):
            del sys.modules[name]


@pytest.fixture
def camera(real_picamera2, shared_dir, tmp_path, monkeypatch):
    """A Pi 5 with an AI Camera: the fake picamera2 and its kernel, the real imx500.py; yields the kernel."""
    machine = Machine(tmp_path / "root")
    machine.add_imx500()
    monkeypatch.setenv("EDGECAM_REAL_PICAMERA2", str(real_picamera2))
    monkeypatch.setenv("EDGECAM_FAKE_ROOT", str(machine.root))
    monkeypatch.setenv("EDGECAM_FAKE_IMX500_NETWORK", str(shared_dir / "models" / "mobilenet_v2_1.0_224_quant.tflite"))
    for var in ("EDGECAM_FAKE_IMX500_UPLOAD_FRAMES", "EDGECAM_FAKE_IMX500_INFO_SIZE", "EDGECAM_FAKE_IMX500_FAIL",
                "EDGECAM_FAKE_IMX500_NO_TENSOR_EVERY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.syspath_prepend(str(FAKES))
    _drop_fake_modules()
    import picamera2
    from picamera2 import imx500_kernel

    picamera2.fake_control.reset("pi5")
    picamera2.fake_control.set_sensor("imx500")
    imx500_kernel.kernel.reset()
    imx500_kernel.kernel.machine = machine
    yield imx500_kernel.kernel
    leaked = picamera2.fake_control.reset()
    _drop_fake_modules()
    assert not leaked, f"camera(s) {leaked} left open"


@pytest.fixture(scope="module")
def rpk_cache(model_cache, shared_dir):
    from edgecam import registry

    registry.fetch("imx500_mobilenet_v2", dest_dir=model_cache, mirror=shared_dir / "models" / "imx500", progress=False)
    return model_cache


def cfg(model_dir, **kw) -> ModelConfig:
    return ModelConfig(name="imx500_mobilenet_v2", backend="imx500", dir=str(model_dir), **kw)


SOURCE = SourceConfig(type="picamera2", width=640, height=480, timeout_s=5.0)


def test_the_package_goes_to_the_sensor_before_the_camera_opens(camera, rpk_cache, shared_dir):
    clf = backend.load_imx500(cfg(rpk_cache))
    data = (shared_dir / "models" / "imx500" / RPK).read_bytes()
    assert camera.firmware == (len(data), hashlib.sha256(data).hexdigest())  # read by the driver through its fd
    assert [(name, ctrl) for name, ctrl, _ in camera.ioctls[:2]] == [("S_CTRL", 0x00982901), ("S_EXT_CTRLS", 0x00982900)]
    assert camera.roi == (0, 0, 4056, 3040)  # the whole sensor until the camera opens
    # the package's 1001 "N:name" labels, without prefixes and without background for its 1000 outputs
    assert len(clf.labels) == 1000 and clf.labels[:2] == ("tench, Tinca tinca", "goldfish, Carassius auratus")
    assert (clf.backend, clf.input_size, clf.name) == ("imx500", (224, 224), "imx500_mobilenet_v2")
    with pytest.raises(ConfigError, match="classifies only what its own sensor sees"):
        clf.classify(np.zeros((10, 10, 3), np.uint8))
    clf.close()


def _thumb(image: np.ndarray) -> np.ndarray:
    return cv2.resize(image, (16, 12), interpolation=cv2.INTER_AREA).astype(np.float32)


def test_photos_through_the_sensor_are_classified_with_the_cpu_twins_accuracy(camera, rpk_cache, shared_dir, labels):
    import picamera2

    sample = shared_dir / "images" / "imagenet-sample"
    photos = load_csv(sample, sample / "expected.csv").photos
    expected = {}
    with open(sample / "expected.csv") as f:
        import csv

        expected = {row["file"]: row["label"] for row in csv.DictReader(f)}
    pictures = [cv2.imread(str(p.path)) for p in photos]
    thumbs = np.stack([_thumb(cv2.resize(p, (640, 480), interpolation=cv2.INTER_AREA)) for p in pictures])
    per_photo = 3  # frames each photo is in front of the camera
    picamera2.fake_control.set_source(lambda i: pictures[min(i // per_photo, len(pictures) - 1)])
    clf = backend.load_imx500(cfg(rpk_cache))
    source = clf.open_source(SOURCE)
    try:
        assert camera.roi == (508, 0, 3040, 3040)  # set_auto_aspect_ratio: the square middle of the sensor
        seen: dict[int, list] = {}
        while len(seen) < len(pictures) and camera.frames < per_photo * len(pictures) + 30:
            frame = source.read()
            result = clf.prepare(frame)
            if result is None:
                continue
            which = int(np.argmin(((thumbs - _thumb(frame.image)) ** 2).sum(axis=(1, 2, 3))))
            seen.setdefault(which, []).append(clf.classify_prepared(result, frame))
    finally:
        source.close()
        clf.close()
    assert len(seen) >= 0.9 * len(pictures), f"only {len(seen)} of {len(pictures)} photos came with a result"
    right = 0
    for which, results in seen.items():
        r = results[-1]
        # the sensor's 1000 scores, decoded by picamera2 and labelled by edgecam: the CPU twin's own label
        twin = camera.network(pictures[which])
        assert r.top.name == labels[int(np.argmax(twin)) + 1]
        assert r.extra == {"device_ms": 6.5, "device_dsp_ms": 1.4} and r.inference_ms == 6.5
        right += r.top.name == expected[photos[which].path.name]
    top1 = right / len(seen)
    assert top1 > 0.75, top1  # the CPU MobileNetV2 gets 0.86 (0.78-0.92) on these 100 photos


def test_the_first_upload_extends_the_start_timeout_and_says_how_far_it_is(camera, rpk_cache):
    camera.upload_frames = 20

    class Notifier:  # what Notifier.notify would send to systemd
        def __init__(self):
            self.sent = []

        def notify(self, message):
            self.sent.append(message)
            return True

    notifier = Notifier()
    clf = backend.load_imx500(cfg(rpk_cache))
    source = clf.open_source(SOURCE, notifier)
    try:
        assert source.tensorless == 20  # frames came during the upload, without a result
        first = source.read()
        assert first.sensor_result is not None  # the frame that ended the wait is not lost
        assert notifier.sent and all(m.startswith("EXTEND_TIMEOUT_USEC=60000000\nSTATUS=AI Camera: uploading the "
                                                  "network to the sensor: ") for m in notifier.sent)
        assert "%" in notifier.sent[0]
    finally:
        source.close()
    # the sensor keeps the package until power-off: opening the camera again waits for nothing
    source = clf.open_source(SOURCE, notifier)
    try:
        assert source.tensorless == 0
    finally:
        source.close()
        clf.close()


def test_a_frame_without_a_tensor_is_no_error(camera, rpk_cache):
    camera.no_tensor_every = 2
    clf = backend.load_imx500(cfg(rpk_cache))
    source = clf.open_source(SOURCE)
    try:
        results = [clf.prepare(source.read()) for _ in range(10)]
    finally:
        source.close()
        clf.close()
    assert 3 <= sum(r is None for r in results) <= 7


def _truncated(path: Path, tmp_path: Path, size: int) -> Path:
    out = tmp_path / "cut.rpk"
    out.write_bytes(path.read_bytes()[:size])
    return out


@pytest.mark.parametrize("cut, message", [
    (1_000_000, "an AI Camera package cut short (1000000 bytes, a block ends past it)"),
    (4_060_000, "an AI Camera package without its whole network archive (4060000 bytes: cut short?)"),
    (0, "not an AI Camera package (.rpk: no firmware header)"),
])
def test_a_damaged_package_is_refused_before_the_driver_sees_it(camera, shared_dir, tmp_path, cut, message):
    path = _truncated(shared_dir / "models" / "imx500" / RPK, tmp_path, cut) if cut else \
        shared_dir / "models" / "mobilenet_v2_1.0_224_quant.tflite"
    with pytest.raises(ModelError) as err:
        backend.load_imx500(ModelConfig(name=str(path), backend="imx500"))
    assert message in err.value.message and err.value.exit_code == 2
    assert camera.firmware is None


@pytest.mark.parametrize("setup, error, code, fragment", [
    ("no-camera", SourceError, 3, "AI Camera: not found (no V4L2 sub-device of the imx500 driver): check the ribbon"),
    ("refused", ModelError, 2, "the camera's driver refused imx500_network_mobilenet_v2.rpk ([Errno 22] Invalid argument)"),
    ("no-picamera2", RuntimeMissingError, 6, "picamera2's IMX500 support cannot be imported"),
    ("not-listed", SourceError, 3, "its sensor is there but libcamera does not list it"),
])
def test_each_failure_at_load_is_one_line_with_its_exit_code(camera, rpk_cache, monkeypatch, tmp_path, setup, error,
                                                             code, fragment):
    import picamera2

    if setup == "no-camera":
        camera.root = tmp_path / "bare"  # a Pi without an AI Camera
        Machine(camera.root)
    elif setup == "refused":
        camera.fail = "firmware"
    elif setup == "no-picamera2":
        monkeypatch.delenv("EDGECAM_REAL_PICAMERA2")
    else:
        picamera2.fake_control.set_sensor("imx708")  # libcamera lists another camera (/imx708@1a)
    with pytest.raises(error) as err:
        backend.load_imx500(cfg(rpk_cache))
    assert fragment in err.value.message and err.value.exit_code == code


def test_a_libcamera_picamera2_version_skew_is_exit_6(camera, rpk_cache):
    camera.info_size = 708  # libcamera's struct without frameCount
    clf = backend.load_imx500(cfg(rpk_cache))
    with pytest.raises(RuntimeMissingError) as err:
        clf.open_source(SOURCE)
    assert "tensor info length 708 does not match expected size 712" in err.value.message
    assert "sudo apt update && sudo apt full-upgrade" in err.value.message and err.value.exit_code == 6
    clf.close()


def test_photos_are_not_sent_to_the_ai_camera(tmp_path):
    with pytest.raises(ConfigError) as err:
        backends.choose(ModelConfig(name="imx500_mobilenet_v2", backend="auto"), camera=False,
                        root=Machine(tmp_path / "root").root)
    assert "classifies only what its own sensor sees" in err.value.message and err.value.exit_code == 2
    choice = backends.choose(ModelConfig(name="imx500_mobilenet_v2", backend="cpu"), camera=False)
    assert (choice.backend, choice.model.name) == ("cpu", "mobilenet_v2")


def test_picamera2s_own_lines_at_load_go_to_the_debug_log_not_stdout(camera, rpk_cache, capfd, caplog):
    # Without a readable debugfs (a service not running as root), picamera2's IMX500() prints
    # "IMX500 firmware update progress bar is not available" with print(): it went to stdout, between
    # edgecam's label changes (and into the journal).
    import shutil

    shutil.rmtree(camera.machine.root / "sys" / "kernel" / "debug")
    caplog.set_level("DEBUG", logger="edgecam.model.backends.imx500")
    clf = backend.load_imx500(cfg(rpk_cache))
    clf.close()
    out, err = capfd.readouterr()
    assert "progress bar" not in out + err
    assert any("IMX500 firmware update progress bar is not available" in r.getMessage() and r.levelname == "DEBUG"
               for r in caplog.records)
