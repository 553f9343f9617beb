"""The Hailo backend: picamera2's REAL ``devices/hailo/hailo.py`` (0.3.38 from PyPI) against a FAKE
``hailo_platform`` (tests/fakes/hailo_platform), scripted for a busy device, a hang and a failure.

NOT checked against HailoRT or a Hailo device: the fake follows picamera2's
calls and HailoRT's published API, not captured behaviour. The network is
played by the CPU MobileNetV2 on the very picture edgecam sends (1000 scores,
no background, like apt's resnet_v1_50_h8l.hef), so what edgecam does around
it (preprocessing, labels, timeouts, errors) is checked for real.
"""

from __future__ import annotations

import json
import os
import sys

import cv2
import numpy as np
import pytest

from edgecam.model.backends import hailo as backend
from edgecam.model.classifier import Classifier
from edgecam.config.schema import ModelConfig
from edgecam.errors import ModelError, RuntimeMissingError, SourceError
from tests.model.backends.test_imx500 import FAKES, _drop_fake_modules
from tests.conftest import REPO, run_cli
from tests.doubles import Besides, one_error_line

V2 = "mobilenet_v2_1.0_224_quant.tflite"


@pytest.fixture
def hef(tmp_path):
    path = tmp_path / "resnet_v1_50_h8l.hef"
    path.write_bytes(b"\x01HEF" + bytes(60))  # no .hef exists here: the fake reads only its first bytes
    return path


@pytest.fixture
def hailo_env(real_picamera2, shared_dir, monkeypatch):
    monkeypatch.setenv("EDGECAM_REAL_PICAMERA2", str(real_picamera2))
    monkeypatch.setenv("EDGECAM_FAKE_HAILO_NETWORK", str(shared_dir / "models" / V2))
    monkeypatch.setenv("EDGECAM_FAKE_HAILO", "ok")
    monkeypatch.delenv("EDGECAM_FAKE_HAILO_FAIL_AFTER", raising=False)
    monkeypatch.syspath_prepend(str(FAKES))
    _drop_fake_modules()
    sys.modules.pop("hailo_platform", None)
    import hailo_platform

    hailo_platform.log.clear()
    yield hailo_platform
    _drop_fake_modules()
    sys.modules.pop("hailo_platform", None)


def cfg(hef, shared_dir) -> ModelConfig:
    return ModelConfig(name=str(hef), backend="hailo", labels=str(shared_dir / "models" / "imagenet_labels.txt"))


def test_photos_on_the_hailo_get_what_the_network_computes_from_edgecams_picture(hailo_env, hef, shared_dir, labels):
    clf = backend.load_hailo(cfg(hef, shared_dir))
    try:
        assert (clf.backend, clf.input_size, clf.num_classes, clf.labels[0]) == \
            ("hailo", (224, 224), 1000, "tench, Tinca tinca")  # 1000 classes: the labels file's background dropped
        cpu = Classifier(shared_dir / "models" / V2, labels, threads=1)
        for name in ("bird.bmp", "cat.bmp", "grace_hopper.bmp"):
            image = cv2.imread(str(shared_dir / "images" / name))
            got, want = clf.classify(image), cpu.classify(image)
            assert got.top.name == want.top.name
            assert np.allclose(got.scores, want.scores[1:], atol=1e-6)
            assert got.extra["device_ms"] > 0
    finally:
        clf.close()
    # picamera2's own set-up: round-robin scheduling on the shared VDevice, uint8 in, float32 out; released at close
    log = hailo_env.log
    assert log[:2] == ["HEF resnet_v1_50_h8l.hef", "VDevice scheduling=ROUND_ROBIN"]
    assert "configure input=UINT8 output=FLOAT32" in log and log[-1] == "release" and log.count("run") == 3


@pytest.mark.parametrize("mode, error, code, fragment", [
    ("busy", SourceError, 3, "Hailo: the device is in use by another process"),
    ("absent", SourceError, 3, "Hailo: cannot open the device (Failed to scan devices. "
                               "status=HAILO_DRIVER_NOT_INSTALLED(64))"),
])
def test_a_device_that_cannot_be_opened_is_exit_3(hailo_env, hef, shared_dir, monkeypatch, mode, error, code, fragment):
    monkeypatch.setenv("EDGECAM_FAKE_HAILO", mode)
    with pytest.raises(error) as err:
        backend.load_hailo(cfg(hef, shared_dir))
    assert fragment in err.value.message and err.value.exit_code == code


def test_a_file_hailort_cannot_read_is_exit_2(hailo_env, tmp_path, shared_dir):
    bad = tmp_path / "model.hef"
    bad.write_bytes(b"<html>not found</html>")
    with pytest.raises(ModelError) as err:
        backend.load_hailo(cfg(bad, shared_dir))
    assert "HailoRT cannot load it (Failed to parse HEF file" in err.value.message and err.value.exit_code == 2


def test_without_hailort_or_picamera2_it_is_exit_6(hailo_env, hef, shared_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "hailo_platform", None)  # import hailo_platform fails, as without hailo-all
    with pytest.raises(RuntimeMissingError) as err:
        backend.load_hailo(cfg(hef, shared_dir))
    assert "picamera2's Hailo support cannot be imported" in err.value.message and err.value.exit_code == 6
    assert "sudo apt install hailo-all" in err.value.message


@pytest.mark.parametrize("mode, fragment", [
    ("hang", "Hailo: no answer from the device in 0.5 s"),
    # picamera2's run_async first waits up to 10 s for a free slot (hailo.py: wait_for_async_ready(timeout_ms=10000)):
    # the bound covers that wait too, so a device that stops taking inferences is not a 10 s (or 15 s) hang.
    ("stuck", "Hailo: no answer from the device in 0.5 s"),
    ("exception", "Hailo: the inference failed (Inference failed. status=HAILO_STREAM_ABORT(62))"),
])
def test_an_inference_that_hangs_or_fails_is_exit_3_not_a_hung_process(hailo_env, hef, shared_dir, monkeypatch,
                                                                        mode, fragment):
    monkeypatch.setattr(backend, "RUN_TIMEOUT_S", 0.5)
    monkeypatch.setenv("EDGECAM_FAKE_HAILO", mode)
    monkeypatch.setenv("EDGECAM_FAKE_HAILO_FAIL_AFTER", "1")
    clf = backend.load_hailo(cfg(hef, shared_dir))
    image = cv2.imread(str(shared_dir / "images" / "bird.bmp"))
    try:
        assert clf.classify(image).top.name == "chickadee"
        with pytest.raises(SourceError) as err:
            clf.classify(image)
        assert fragment in err.value.message and err.value.exit_code == 3
    finally:
        clf.close()


def _env(model_env, real_picamera2, shared_dir, **more) -> dict:
    env = dict(model_env, PYTHONPATH=os.pathsep.join([str(FAKES), str(REPO)]), EDGECAM_REAL_PICAMERA2=str(real_picamera2),
               EDGECAM_FAKE_HAILO_NETWORK=str(shared_dir / "models" / V2), **more)
    env.pop("EDGECAM_FAKE_HAILO", None)
    return env


@pytest.mark.e2e
def test_eval_on_the_hailo_gives_the_networks_accuracy_and_a_hang_stops_a_run_with_exit_3(
        model_env, real_picamera2, hef, shared_dir, tmp_path):
    env = _env(model_env, real_picamera2, shared_dir)
    sample = shared_dir / "images" / "imagenet-sample"
    labels = str(shared_dir / "models" / "imagenet_labels.txt")
    args = ["eval", "--images", str(sample), "--expected", str(sample / "expected.csv"), "--json"]
    cpu = run_cli(args + ["--model", "mobilenet_v2", "--backend", "cpu"], env=env, cwd=tmp_path)
    on_hailo = run_cli(args + ["--model", str(hef), "--labels", labels], env=env, cwd=tmp_path, timeout=300)
    assert cpu.returncode == 0 and on_hailo.returncode == 0, cpu.stderr + on_hailo.stderr
    a, b = json.loads(cpu.stdout), json.loads(on_hailo.stdout)
    assert (b["runtime"], b["n"]) == ("hailo", 100)
    for k in ("top1", "top5"):  # background dropped, 1000 labels: the same answers as the CPU twin's
        assert a[k] == b[k], k

    video = shared_dir / "video" / "imagenet20_640x480_30fps.mp4"
    proc = run_cli(["run", "--source", str(video), "--model", str(hef), "--labels", labels, "--display", "none",
                    "--log", str(tmp_path / "log.jsonl")],
                   env=dict(env, EDGECAM_FAKE_HAILO="hang", EDGECAM_FAKE_HAILO_FAIL_AFTER="20"), cwd=tmp_path,
                   timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "Hailo: no answer from the device in 5 s" in errors[0], proc.stderr
    results = (tmp_path / "log.jsonl").read_text().splitlines()
    assert 15 <= len(results) <= 20


def test_a_model_for_another_chip_is_said_at_load(hailo_env, tmp_path, shared_dir):
    """one_error_line's CLI form: a .hef that is not one, through `edgecam classify`."""
    bad = tmp_path / "yolo.hef"
    bad.write_bytes(b"\x7fELF")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(FAKES), str(REPO)]))
    proc = run_cli(["classify", str(shared_dir / "images" / "bird.bmp"), "--model", str(bad), "--labels",
                    str(shared_dir / "models" / "imagenet_labels.txt")], env=env, cwd=tmp_path)
    one_error_line(proc, 2, "HailoRT cannot load it", besides=Besides.LOGS)


@pytest.mark.e2e
def test_bench_on_the_hailo_says_where_it_ran_and_the_devices_time(model_env, real_picamera2, hef, shared_dir, tmp_path):
    env = _env(model_env, real_picamera2, shared_dir)
    video = shared_dir / "video" / "imagenet20_640x480_30fps.mp4"
    proc = run_cli(["bench", "--source", str(video), "--frames", "40", "--json", "--model", str(hef), "--labels",
                    str(shared_dir / "models" / "imagenet_labels.txt")], env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert (res["backend"], res["runtime"], res["frames"], res["frames_without_result"]) == ("hailo", "hailo", 40, 0)
    assert res["device_ms_mean"] > 0 and res["layout_from"] == "classifier"  # no CPU thread calibration for it
    cpu = run_cli(["bench", "--source", str(video), "--frames", "40", "--json", "--model", "mobilenet_v2",
                   "--threads", "1"], env=env, cwd=tmp_path, timeout=300)
    assert json.loads(cpu.stdout)["backend"] == "cpu" and json.loads(cpu.stdout)["device_ms_mean"] is None
