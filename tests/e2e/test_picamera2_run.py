"""``edgecam run --source picamera2`` in a subprocess, against the fake picamera2 in tests/fakes.

``PYTHONPATH=tests/fakes:<repo>`` makes ``import picamera2`` find the fake; the
fake shows the camera ``$EDGECAM_FAKE_PICAMERA2_PICTURES`` (here the shared
cat photo), pretends to be a Pi 4 (lores must be YUV420) or a Pi 5 (RGB888
lores), and at exit writes ``$EDGECAM_FAKE_PICAMERA2_REPORT``: whether edgecam
closed the camera (see tests/fakes/README.md).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.e2e import REPO, Edgecam, env_with, read_log, write_config

FAKES = REPO / "tests" / "fakes"
CAT_CLASSES = {"Egyptian cat", "tabby, tabby cat", "tiger cat"}
LORES_FORMAT = {"pi4": "YUV420", "pi5": "RGB888"}


@pytest.fixture
def camera_env(model_env, shared_dir, tmp_path):
    """model_env with the fake picamera2 importable and showing cat.bmp."""
    if not (FAKES / "picamera2" / "_fake.py").is_file():
        pytest.skip(f"the fake picamera2 is missing from {FAKES}")
    cat = shared_dir / "images" / "cat.bmp"
    if not cat.is_file():
        pytest.skip(f"{cat} not found: the camera is shown the shared cat photo")

    def make(model: str, report: Path) -> dict:
        return env_with(model_env, PYTHONPATH=os.pathsep.join([str(FAKES), str(REPO)]),
                        EDGECAM_FAKE_PICAMERA2_MODEL=model, EDGECAM_FAKE_PICAMERA2_PICTURES=str(cat),
                        EDGECAM_FAKE_PICAMERA2_REPORT=str(report))

    return make


def run_camera(tmp_path: Path, env: dict, source: str, name: str, results: int = 30) -> tuple[list[dict], str, dict]:
    """Run until ``results`` results are logged, SIGTERM; returns (log lines, stderr, the fake's report)."""
    cfg = write_config(tmp_path / "cfg.yaml", {"model": {"top_k": 3}, "source": {"width": 640, "height": 480}})
    log = tmp_path / f"{name}.jsonl"
    report = Path(env["EDGECAM_FAKE_PICAMERA2_REPORT"])
    report.unlink(missing_ok=True)
    args = ["--config", str(cfg), "--source", source, "--display", "none", "--log", str(log)]
    with Edgecam(args, env, tmp_path, name=name) as app:
        app.wait_until(lambda: len(read_log(log)) >= results, f"{results} results from the camera")
        code = app.stop()
    err = app.stderr()
    assert code == 0, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert report.is_file(), f"the fake wrote no report at exit; stderr:\n{err[-3000:]}"
    return read_log(log), err, json.loads(report.read_text())


def assert_closed(report: dict, model: str) -> None:
    assert report["model"] == model
    (camera,) = report["cameras"]
    assert camera["frames_produced"] > 0
    assert not camera["open"], "the camera was left open at exit"
    assert camera["opened"] == camera["closed"] == 1, f"opened/closed by edgecam itself: {camera}"


@pytest.mark.parametrize("model", ["pi4", "pi5"])
def test_picamera2_sees_the_cat_and_releases_the_camera(tmp_path, camera_env, model):
    env = camera_env(model, tmp_path / "report.json")
    lines, err, report = run_camera(tmp_path, env, "picamera2", f"{model}-picamera2")

    # 256 = 224 / 0.875: the default centre crop of the lores picture is the model's input as it is
    assert f"lores (342, 256) {LORES_FORMAT[model]}" in err, err[-3000:]
    top1 = [line["top_k"][0]["label"] for line in lines]
    assert set(top1) <= CAT_CLASSES, f"top-1 labels of the cat photo through the {model} camera: {set(top1)}"
    frames = [line["frame"] for line in lines]
    assert frames == sorted(set(frames))
    assert_closed(report, model)

    # source auto picks the Pi camera when picamera2 lists one (a second run
    # right after the first; the report above shows that one closed the camera).
    lines, err, report = run_camera(tmp_path, env, "auto", f"{model}-auto")
    assert "running mobilenet_v3_small on picamera2:0" in err, err[-3000:]
    assert {line["top_k"][0]["label"] for line in lines} <= CAT_CLASSES
    assert_closed(report, model)


def test_picamera2_fed_the_shared_video(tmp_path, camera_env, shared_dir):
    video = shared_dir / "video" / "imagenet20_640x480_30fps.mp4"
    segments = shared_dir / "video" / "imagenet20_segments.csv"
    if not (video.is_file() and segments.is_file()):
        pytest.skip(f"{video} or {segments} not found")
    import csv

    with open(segments, newline="", encoding="utf-8") as f:
        expected = {row["label"] for row in csv.DictReader(f)}
    env = camera_env("pi5", tmp_path / "report.json")
    env["EDGECAM_FAKE_PICAMERA2_PICTURES"] = str(video)
    lines, _, report = run_camera(tmp_path, env, "picamera2", "video", results=90)
    # 90 results span six of the clip's 15-frame subjects; most are recognised.
    seen = {line["top_k"][0]["label"] for line in lines} & expected
    assert len(seen) >= 3, f"top-1 labels seen: {[line['top_k'][0]['label'] for line in lines]}"
    assert_closed(report, "pi5")


@pytest.mark.parametrize("source", ["picamera2", "auto"])
def test_a_picamera2_broken_by_numpy_is_named_with_what_to_do(tmp_path, camera_env, source):
    # What a Bookworm venv that pulled NumPy 2 over apt's NumPy 1.24 sees: apt's
    # picamera2 imports simplejpeg, built for NumPy 1, and the import fails.
    env = camera_env("pi4", tmp_path / "report.json")
    env["EDGECAM_FAKE_PICAMERA2_IMPORT_ERROR"] = "numpy-abi"
    with Edgecam(["--source", source, "--display", "none"], env, tmp_path, name=source) as app:
        code = app.wait(60)
    err = app.stderr()
    assert code == 3, err[-3000:]
    assert "Traceback" not in err
    (line,) = [l for l in err.splitlines() if l.startswith("edgecam: ")]
    assert "picamera2 cannot be imported (ValueError: numpy.dtype size changed" in line
    assert "make install" in line
