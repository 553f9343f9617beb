"""Clips as H.264 MP4 where OpenCV has the encoder: Debian's python3-opencv (built on Debian's FFmpeg,
with libx264), as on Raspberry Pi OS. The events output runs under the system Python with that OpenCV
(pip's wheels, in the venv, have no H.264 encoder); the clip is then read back and played in chromium."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import cv2
import pytest

from edgecam.config.schema import HttpConfig
from edgecam.events.web import EventsWeb
from edgecam.outputs.http import HttpSink
from edgecam.stats import Stats

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

SCRIPT = """
import sys, time
import numpy as np
from edgecam.config.events import EventRuleConfig, EventsConfig
from edgecam.events.sink import EventsSink
from edgecam.camera.frame import Frame
from edgecam.result import Classification
rule = EventRuleConfig(for_s=0, name="ibex", label="ibex", cooldown_s=0, clip=True, pre_s=0.3, post_s=0.2)
sink = EventsSink(EventsConfig(rules=[rule]), sys.argv[1])  # clip_format: auto
sink.start()
sink.source_opened(type("File", (), {"live": False, "realtime": False, "fps": 10.0})())
now = time.time()
for i, seen in enumerate([False] * 5 + [True] * 8 + [False] * 5):
    scores = np.array([0.05, 0.9] if seen else [0.9, 0.05], np.float32)
    sink.on_result(Classification(scores, ("background", "ibex"), frame_index=i, wall_time=now + i / 10))
    img = np.full((240, 320, 3), 200 if seen else 60, np.uint8)
    sink.on_frame(Frame(img, i, i / 10, now + i / 10), img, None)
sink.close()
print(sink.clip_format)
"""


@pytest.fixture(scope="module")
def system_opencv():
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import cv2, numpy; print(cv2.__version__)"], capture_output=True,
                           text=True)
    if probe.returncode != 0:
        pytest.skip(f"no OpenCV for {SYSTEM_PYTHON} (apt-get install python3-opencv): {probe.stderr.strip()[-200:]}")


def test_auto_writes_h264_mp4_where_opencv_can_and_browsers_play_it(system_opencv, tmp_path):
    from edgecam.events.history import connect_reader, get_event

    folder = tmp_path / "events"
    proc = subprocess.run([SYSTEM_PYTHON, "-c", SCRIPT, str(folder)], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    if proc.stdout.strip() != "mp4":
        pytest.skip(f"the system's OpenCV cannot write H.264 here (clip_format auto chose {proc.stdout.strip()})")
    row = get_event(connect_reader(folder), 1)
    clip = folder / row["clip"]
    assert clip.suffix == ".mp4" and clip.read_bytes()[4:8] == b"ftyp"
    cap = cv2.VideoCapture(str(clip))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(10.0)
    means = []
    while (frame := cap.read()[1]) is not None:
        means.append(float(frame.mean()))
    # pre_s 0.3 s (3 frames), the event (8), post_s 0.2 s (2): dark, bright, dark
    assert len(means) == 13 and all(abs(m - 60) < 8 for m in means[:3] + means[-2:])
    assert all(abs(m - 200) < 8 for m in means[3:11])
    if CHROMIUM is None:
        return
    from tests.cdp import Browser

    http = HttpSink(HttpConfig(port=0), Stats())
    EventsWeb(folder).mount_on(http)
    http.start()
    try:
        with Browser(CHROMIUM, tmp_path, f"http://127.0.0.1:{http.port}/events/1") as page:
            page.wait_for("document.querySelector('video#clip') && document.querySelector('video#clip').videoWidth"
                          " == 320 && document.querySelector('video#clip').readyState >= 2", "the H.264 clip decoded")
            assert page.evaluate("document.getElementById('status').textContent") == "clip: video/mp4"
    finally:
        http.close()
