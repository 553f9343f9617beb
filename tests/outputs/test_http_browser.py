"""The live page in a real browser: headless Debian chromium against HttpSink."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time

import cv2
import numpy as np
import pytest

from edgecam.config.schema import HttpConfig
from edgecam.camera.frame import Frame
from edgecam.result import Classification
from edgecam.outputs.http import HttpSink
from edgecam.stats import Stats

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")

RECT_BGR = (255, 0, 255)  # magenta: nothing else on the page has this colour
LABELS = ["golden retriever", "tabby cat", "zebra"]


@pytest.fixture
def served(tmp_path):
    """A started sink on a free port, fed frames and results from a thread."""
    token = tmp_path / "token"
    token.write_text("browser-token")
    stats = Stats()
    sink = HttpSink(HttpConfig(port=0, token_file=str(token)), stats)
    sink.start()
    stop = threading.Event()

    def feed():
        img = np.full((480, 640, 3), 40, np.uint8)
        cv2.rectangle(img, (120, 90), (520, 390), RECT_BGR, -1)
        i = 0
        while not stop.is_set():
            t = time.monotonic()
            stats.frame_captured(t)
            r = Classification(np.array([0.15, 0.8, 0.05], np.float32), LABELS, model="synthetic",
                               frame_index=i, capture_time=t, wall_time=time.time(), result_time=t,
                               inference_ms=4.0)
            stats.result_ready(4.0, t, r.top.name, r.top.score)
            sink.on_result(r)
            sink.on_frame(Frame(img, i, t, time.time()), img.copy(), r)
            i += 1
            stop.wait(0.05)

    thread = threading.Thread(target=feed, name="test-feeder", daemon=True)
    thread.start()
    yield sink
    stop.set()
    thread.join(5)
    sink.close()


def chromium(tmp_path, url: str, *action: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "profile"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--window-size=800,700", "--virtual-time-budget=3000", *action, url]
    # The endless MJPEG stream does not keep --screenshot or --dump-dom from
    # finishing once the virtual time budget is spent; the timeout is a guard.
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("mode", ["", "&snapshot=1"], ids=["stream", "snapshot"])
def test_page_shows_the_live_picture(served, tmp_path, mode):
    shot = tmp_path / "shot.png"
    url = f"http://127.0.0.1:{served.port}/?token=browser-token{mode}"
    proc = chromium(tmp_path, url, f"--screenshot={shot}")
    assert shot.exists(), f"chromium wrote no screenshot (rc={proc.returncode}): {proc.stderr[-2000:]}"
    img = cv2.imread(str(shot), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[:2] == (700, 800)
    magenta = np.all(np.abs(img.astype(int) - RECT_BGR) <= 40, axis=2)
    # The rectangle covers 40 % of a picture that is ~97 % of the page width.
    assert magenta.mean() > 0.10, f"rectangle colour covers only {magenta.mean():.1%} of the screenshot"


def test_page_lists_the_latest_labels(served, tmp_path):
    proc = chromium(tmp_path, f"http://127.0.0.1:{served.port}/?token=browser-token", "--dump-dom")
    dom = proc.stdout
    assert "<li>" in dom, f"no labels rendered (rc={proc.returncode}): {dom[-1500:]} {proc.stderr[-1500:]}"
    # Best first, with scores, as fetched from /api/latest.
    assert dom.index("tabby cat") < dom.index("golden retriever") < dom.index("zebra")
    assert "80.0 %" in dom
    assert "inferences/s" in dom


def test_page_without_token_is_refused(served, tmp_path):
    proc = chromium(tmp_path, f"http://127.0.0.1:{served.port}/", "--dump-dom")
    assert "401 unauthorized" in proc.stdout


def test_the_this_is_button_saves_the_regions_crop(tmp_path):
    """A person's path: open the page, see each region's crop, press "this is: open"; the crop is on disk."""
    from edgecam.result import RegionState
    from edgecam.outputs.base import RegionInfo
    from tests.cdp import Browser

    (tmp_path / "token").write_text("browser-token")
    stats = Stats()
    infos = (RegionInfo("garage", (0.25, 0.25, 0.75, 0.75), ("closed", "open"), "open"),)
    sink = HttpSink(HttpConfig(port=0, token_file=str(tmp_path / "token")), stats, regions=infos,
                    examples_dir=str(tmp_path / "examples"))
    sink.start()
    img = np.full((480, 640, 3), 40, np.uint8)
    cv2.rectangle(img, (120, 90), (520, 390), RECT_BGR, -1)
    t = time.monotonic()
    states = {"garage": RegionState("garage", infos[0].box, "closed", 0.9, 0, 1, time.time(), True)}
    r = Classification(np.zeros(0, np.float32), (), model="garage", frame_index=1, capture_time=t,
                       wall_time=time.time(), result_time=t, regions=states)
    stats.frame_captured(t)
    stats.regions_ready(3.0, t, states, 1)
    sink.on_result(r)
    sink.on_frame(Frame(img, 1, t, time.time()), img.copy(), r)
    try:
        with Browser(CHROMIUM, tmp_path, f"http://127.0.0.1:{sink.port}/?token=browser-token") as page:
            page.wait_for("document.querySelectorAll('#region-garage button').length == 2", "the region's buttons")
            page.wait_for("document.querySelector('#region-garage img').naturalWidth == 320", "the region's crop")
            page.wait_for("document.querySelector('#region-garage .state').textContent.startsWith('closed')",
                          "the region's state")
            labels = page.evaluate("[...document.querySelectorAll('#region-garage button')].map(b => b.textContent)")
            assert labels == ["this is: closed", "this is: open"]
            page.evaluate("document.querySelector('#region-garage button[data-label=open]').click()")
            note = page.wait_for("document.querySelector('#region-garage .note').textContent", "the answer")
            assert note == "saved: 1 examples of open"
    finally:
        sink.close()
    saved = list((tmp_path / "examples" / "garage" / "open").glob("*.png"))
    assert len(saved) == 1
    crop = cv2.imread(str(saved[0]))
    assert crop.shape == (240, 320, 3) and np.array_equal(crop, img[120:360, 160:480])


def test_the_grid_shows_each_camera_and_a_click_opens_its_page(tmp_path):
    """Two cameras on one HttpHub: a tile each with its name and label; clicking one opens that camera's page."""
    from edgecam.config import schema as config_mod
    from edgecam.outputs.http_hub import HttpHub
    from tests.cdp import Browser

    (tmp_path / "token").write_text("browser-token")
    hub = HttpHub(HttpConfig(enabled=True, port=0, token_file=str(tmp_path / "token")))
    cfg = config_mod.from_dict({"examples_dir": str(tmp_path / "examples")})
    scores = {"door": [0.15, 0.8, 0.05], "yard": [0.1, 0.1, 0.8]}  # tabby cat at the door, a zebra in the yard
    cams = {name: (hub.sink(name, cfg, stats := Stats()), stats) for name in scores}
    hub.start()
    stop = threading.Event()

    def feed():
        img = np.full((480, 640, 3), 40, np.uint8)
        i = 0
        while not stop.is_set():
            for name, (view, stats) in cams.items():
                t = time.monotonic()
                stats.frame_captured(t)
                r = Classification(np.array(scores[name], np.float32), LABELS, model="synthetic", frame_index=i,
                                   capture_time=t, wall_time=time.time(), result_time=t, inference_ms=4.0)
                stats.result_ready(4.0, t, r.top.name, r.top.score)
                view.on_result(r)
                view.on_frame(Frame(img, i, t, time.time()), img.copy(), r)
            i += 1
            stop.wait(0.05)

    thread = threading.Thread(target=feed, name="test-feeder", daemon=True)
    thread.start()
    tiles = "[...document.querySelectorAll('#grid a.tile')]"
    try:
        with Browser(CHROMIUM, tmp_path, f"http://127.0.0.1:{hub.port}/?token=browser-token") as page:
            labelled = f"{tiles}.every(a => a.querySelector('.label').textContent.includes('%'))"
            page.wait_for(f"{tiles}.length == 2 && {labelled}", "two tiles with a label each")
            shown = page.evaluate(f"{tiles}.map(a => [a.querySelector('.name').textContent, "
                                  "a.querySelector('.label').textContent])")
            assert shown == [["door", "tabby cat 80 %"], ["yard", "zebra 80 %"]]
            page.wait_for(f"{tiles}.every(a => a.querySelector('img').naturalWidth == 640)", "each tile's picture")
            page.evaluate("document.querySelector('#grid a[data-camera=yard]').click()")
            page.wait_for("location.pathname == '/camera/yard/' && document.querySelectorAll('#labels li').length == 3",
                          "the yard's own page with its labels")
            assert page.evaluate("document.getElementById('camera-name').textContent") == "yard"
            assert page.evaluate("document.querySelector('#labels li b').textContent") == "zebra"
            assert page.evaluate("location.search") == "?token=browser-token"
            page.wait_for("document.getElementById('status').textContent.includes('inferences/s')", "its status line")
    finally:
        stop.set()
        thread.join(5)
        hub.close()
