"""Two Pi camera modules in one run (a Pi 5's two connectors), on the fake picamera2 and the real model.

Each camera sees its own photo; a camera that stalls reconnects on its own
while the other keeps its rate.
"""

from __future__ import annotations

import threading
import time

import cv2
import pytest

from edgecam.config import schema as config_mod
from edgecam.pipeline.cameras import CamerasApp
from tests.camera.test_picamera2 import fake  # noqa: F401 (fixture)
from tests.pipeline.test_pipeline import RecordingSink


def pi_camera(num: int):
    return config_mod.from_dict({"source": {"type": "picamera2", "uri": str(num), "fps": 20, "timeout_s": 1.0,
                                            "reconnect_max_s": 1.0},
                                 "display": {"mode": "none"}, "model": {"threads": 1}})


def top_labels(sink: RecordingSink) -> set[str]:
    return {r.top_k(1)[0].name for r in sink.results}


def run_for(app: CamerasApp, seconds: float, during=None) -> int:
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("code", app.run()), daemon=True)
    t.start()
    if during is not None:
        during()
    time.sleep(seconds)
    app.stop()
    t.join(20)
    assert not t.is_alive(), "the run did not stop"
    return out["code"]


@pytest.fixture
def two_cameras(fake, shared_dir, model_env):
    fake.set_model("pi5")
    fake.set_cameras(2)
    fake.set_source([cv2.resize(cv2.imread(str(shared_dir / "images" / "cat.bmp")), (640, 480))], 0)
    fake.set_source([cv2.resize(cv2.imread(str(shared_dir / "images" / "bird.bmp")), (640, 480))], 1)
    return fake


def test_two_pi_cameras_each_classify_their_own_picture(two_cameras):
    sinks = {"door": RecordingSink("door"), "yard": RecordingSink("yard")}
    app = CamerasApp([("door", pi_camera(0)), ("yard", pi_camera(1))], sinks_for=lambda n: [sinks[n]])
    assert run_for(app, 3.0) == 0
    assert len(app.stages) == 1  # one model for both
    door, yard = top_labels(sinks["door"]), top_labels(sinks["yard"])
    assert len(sinks["door"].results) >= 10 and len(sinks["yard"].results) >= 10
    assert door and yard and not door & yard, (door, yard)  # a cat on one, a bird on the other


def test_a_stalled_camera_reconnects_while_the_other_keeps_going(two_cameras):
    sinks = {"door": RecordingSink("door"), "yard": RecordingSink("yard")}
    app = CamerasApp([("door", pi_camera(0)), ("yard", pi_camera(1))], sinks_for=lambda n: [sinks[n]])
    counts = {}

    def stall_yard():
        time.sleep(1.0)
        two_cameras.stall(1)
        counts["door_before"] = len(sinks["door"].results)
        time.sleep(3.0)  # yard silent for longer than its timeout: it reconnects
        counts["door_during"] = len(sinks["door"].results) - counts["door_before"]
        counts["status"] = app.status_text(time.monotonic())
        two_cameras.resume(1)
        counts["yard_after_resume"] = len(sinks["yard"].results)

    assert run_for(app, 3.0, during=stall_yard) == 0
    door_stats, yard_stats = (cam.stats.snapshot() for cam in app.cameras)
    assert counts["door_during"] >= 20  # ~20 fps: door went on through yard's stall
    assert "yard" in counts["status"] and "2 cameras" in counts["status"]
    assert yard_stats["reconnects"] >= 1 and door_stats["reconnects"] == 0
    assert len(sinks["yard"].results) > counts["yard_after_resume"]  # yard back after its reconnect
