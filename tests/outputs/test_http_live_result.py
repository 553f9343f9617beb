"""The live page lists the result drawn on the picture it shows (issue 21: the overlay said 23.4 %
and the list below 14.8 % for the same label, a result of another moment, in another label form)."""

from __future__ import annotations

import http.client
import json
import shutil
import threading
import time

import numpy as np
import pytest

from edgecam.config.schema import HttpConfig
from edgecam.camera.frame import Frame
from edgecam.result import Classification
from edgecam.outputs.http import HttpSink
from edgecam.stats import Stats
from tests.e2e import http_get

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LABELS = ["golden retriever", "tabby, tabby cat", "zebra"]


def result(i: int) -> Classification:
    """Frame i's result: tabby scores 0.30 + (i % 50) / 100, so every frame has its own score."""
    tabby = 0.30 + (i % 50) / 100
    return Classification(np.array([0.05, tabby, 0.95 - tabby], np.float32), LABELS, model="synthetic",
                          frame_index=i, wall_time=time.time(), result_time=time.monotonic())


def picture(i: int) -> np.ndarray:
    return np.full((120, 160, 3), i % 200 + 20, np.uint8)  # the frame number, as the picture's grey level


@pytest.fixture
def served():
    """Frames fed from a thread; the newest result (on_result) is always a frame ahead of the picture,
    as when the model finishes the next frame before the stream sends this one."""
    sink = HttpSink(HttpConfig(port=0, stream_fps=20), Stats())
    sink.start()
    stop = threading.Event()

    def feed():
        i = 0
        while not stop.is_set():
            sink.on_frame(Frame(picture(i), i, time.monotonic(), time.time()), picture(i), result(i))
            sink.on_result(result(i + 1))
            i += 1
            stop.wait(0.03)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    yield sink
    stop.set()
    thread.join(5)
    sink.close()


def test_each_stream_part_and_snapshot_names_the_result_drawn_on_it(served):
    import cv2

    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    conn.request("GET", "/stream.mjpg")
    body = conn.getresponse()
    parts = 0
    while parts < 10:
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += body.read(1)
        fields = dict(line.split(": ", 1) for line in head.decode().strip().splitlines()[1:])
        jpeg = body.read(int(fields["Content-Length"]))
        body.read(2)
        shown = json.loads(fields["X-Edgecam-Result"])
        grey = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE).mean()
        assert abs(grey - (shown["frame"] % 200 + 20)) < 2  # the result of this very picture
        assert shown["top_k"][0]["score"] == round(float(result(shown["frame"]).scores.max()), 4)
        parts += 1
    conn.close()
    status, headers, jpeg = http_get(f"http://127.0.0.1:{served.port}/snapshot.jpg")
    shown = json.loads(headers["X-Edgecam-Result"])
    grey = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE).mean()
    assert status == 200 and abs(grey - (shown["frame"] % 200 + 20)) < 2


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")
@pytest.mark.parametrize("mode", ["", "?snapshot=1"], ids=["stream", "snapshot"])
def test_the_page_lists_the_shown_pictures_result_in_the_overlays_label_form(served, tmp_path, mode):
    from tests.cdp import Browser

    with Browser(CHROMIUM, tmp_path, f"http://127.0.0.1:{served.port}/{mode}") as page:
        page.wait_for("document.querySelectorAll('#labels li').length == 3", "the list")
        for _ in range(5):
            frame, list_frame, first, score = page.evaluate(
                "[document.getElementById('view').dataset.frame, document.getElementById('labels').dataset.frame,"
                " document.querySelector('#labels li b').textContent,"
                " document.querySelector('#labels li i').textContent]")
            assert frame == list_frame  # the list and the picture: one frame
            expected = result(int(frame)).top_k(3)[0]
            assert (first, score) == (expected.name.split(",")[0], f"{100 * expected.score:.1f} %")
            time.sleep(0.2)
        titles = page.evaluate("[...document.querySelectorAll('#labels li b')].map(b => b.title)")
        assert "tabby, tabby cat" in titles  # the full label on hover
