"""/events and /api/events on the real HTTP output, over a history made by the events output, in headless chromium."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import time

import cv2
import numpy as np
import pytest

from edgecam.config.schema import HttpConfig
from edgecam.config.events import EventRuleConfig, EventsConfig
from edgecam.events.sink import EventsSink
from edgecam.camera.frame import Frame
from edgecam.result import Classification
from edgecam.events.web import EventsWeb
from edgecam.outputs.http import HttpSink
from edgecam.stats import Stats
from tests.e2e import http_get

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LABELS = ("background", "ibex", "tabby")
TOKEN = "events-token"
# (label shown, frames): ibex twice, tabby once; each picture a colour of its own
TIMELINE = [("background", 5), ("ibex", 8), ("background", 5), ("tabby", 6), ("background", 4), ("ibex", 5),
            ("background", 3)]
COLOURS = {"background": (60, 60, 60), "ibex": (255, 0, 255), "tabby": (0, 200, 255)}


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """An events folder made by EventsSink from a 10 fps file-like run: ibex (clip), tabby (no clip)."""
    folder = tmp_path_factory.mktemp("events")
    rules = [EventRuleConfig(for_s=0, name="ibex", label="ibex", cooldown_s=0, clip=True, pre_s=0.3, post_s=0.2),
             EventRuleConfig(for_s=0, name="cat", label="tabby", cooldown_s=0)]
    sink = EventsSink(EventsConfig(rules=rules, clip_format="avi"), folder)
    sink.start()

    class File:
        live, realtime, fps = False, False, 10.0

    sink.source_opened(File())
    now, i = time.time(), 0
    for label, n in TIMELINE:
        image = np.full((240, 320, 3), COLOURS[label], np.uint8)
        for _ in range(n):
            scores = np.array([0.9 if label == name else 0.05 for name in LABELS], np.float32)
            sink.on_result(Classification(scores, LABELS, frame_index=i, wall_time=now + i / 10))
            sink.on_frame(Frame(image, i, i / 10, now + i / 10), image, None)
            i += 1
    sink.close()
    return folder


@pytest.fixture
def served(history, tmp_path):
    (tmp_path / "token").write_text(TOKEN)
    sink = HttpSink(HttpConfig(port=0, token_file=str(tmp_path / "token")), Stats())
    EventsWeb(history).mount_on(sink)
    sink.start()
    yield sink
    sink.close()


def get_json(sink, path):
    status, _, body = http_get(f"http://127.0.0.1:{sink.port}{path}", TOKEN)
    return status, json.loads(body)


def test_api_lists_newest_first_with_paging_and_filters(served):
    status, d = get_json(served, "/api/events")
    assert status == 200 and d["total"] == 3 and d["next"] is None
    assert [(e["rule"], e["start_frame"], e["end_frame"]) for e in d["events"]] == \
        [("ibex", 28, 33), ("cat", 18, 24), ("ibex", 5, 13)]
    assert d["rules"] == ["cat", "ibex"] and d["labels"] == ["ibex", "tabby"]
    status, page = get_json(served, "/api/events?limit=2")
    assert [e["id"] for e in page["events"]] == [e["id"] for e in d["events"][:2]]
    assert page["next"] == "/api/events?limit=2&offset=2"
    status, rest = get_json(served, page["next"])
    assert [e["id"] for e in rest["events"]] == [d["events"][2]["id"]] and rest["next"] is None
    status, cats = get_json(served, "/api/events?rule=cat")
    assert [e["label"] for e in cats["events"]] == ["tabby"] and cats["events"][0]["clip"] is None
    day = d["events"][0]["start"][:10]
    assert get_json(served, f"/api/events?day={day}")[1]["total"] == 3
    assert get_json(served, "/api/events?day=2001-01-01")[1]["total"] == 0
    assert get_json(served, "/api/events?day=monday")[0] == 400
    one = get_json(served, f"/api/events/{d['events'][1]['id']}")[1]
    assert one == d["events"][1]
    assert get_json(served, "/api/events/999")[0] == 404


def test_media_come_from_the_history_and_need_the_token(served):
    ev = get_json(served, "/api/events?rule=ibex")[1]["events"][-1]
    base = f"http://127.0.0.1:{served.port}"
    status, headers, body = http_get(base + ev["snapshot"], TOKEN)
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    picture = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert np.abs(picture.astype(int) - COLOURS["ibex"]).mean() < 8
    assert http_get(base + ev["snapshot"])[0] == 401
    assert http_get(base + ev["snapshot"] + "?token=" + TOKEN)[0] == 200  # <img> cannot send headers
    status, headers, body = http_get(base + ev["clip"], TOKEN)
    assert status == 200 and headers["Content-Type"] == "video/x-msvideo" and body[:4] == b"RIFF"
    for bad in ("/events/1/../../events.db", "/events/1/nothing.jpg", "/events/999/snapshot.jpg",
                "/events/x/clip"):
        assert http_get(base + bad, TOKEN)[0] == 404, bad


def test_an_avi_clip_plays_as_a_stream_of_its_frames_at_its_rate(served):
    ev = get_json(served, "/api/events?rule=ibex")[1]["events"][-1]  # frames 5-12, pre 0.3 s, post 0.2 s
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    conn.request("GET", ev["clip_stream"], headers={"Authorization": f"Bearer {TOKEN}"})
    t0 = time.monotonic()
    body = conn.getresponse().read()
    took = time.monotonic() - t0
    frames = [cv2.imdecode(np.frombuffer(part.split(b"\r\n\r\n", 1)[1][:-2], np.uint8), cv2.IMREAD_COLOR)
              for part in body.split(b"--edgecamframe")[1:-1]]
    shown = [min(COLOURS, key=lambda c: np.abs(f.astype(int) - COLOURS[c]).mean()) for f in frames]
    assert shown == ["background"] * 3 + ["ibex"] * 8 + ["background"] * 2  # frames 2..14
    assert took >= (len(frames) - 1) / 10 * 0.8  # paced at the clip's 10 fps (a lower bound: never too fast)


browser = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")


@browser
def test_the_page_lists_filters_and_plays_in_a_real_browser(served, tmp_path):
    from tests.cdp import Browser

    url = f"http://127.0.0.1:{served.port}/events?token={TOKEN}"
    with Browser(CHROMIUM, tmp_path, url) as page:
        page.wait_for("document.querySelectorAll('#events li').length == 3", "three events listed")
        page.wait_for("[...document.querySelectorAll('#events img')].every(i => i.naturalWidth == 320)",
                      "their thumbnails")
        titles = page.evaluate("[...document.querySelectorAll('#events b')].map(b => b.textContent)")
        assert titles == ["ibex", "cat: tabby", "ibex"]  # the rule's name only where it says more
        live = page.evaluate("document.getElementById('live').getAttribute('href')")
        assert live == f"/?token={TOKEN}"  # back to the live page, with the token
        page.evaluate("document.querySelector('select[name=rule]').value = 'cat';"
                      "document.querySelector('#filters button').click()")
        page.wait_for("document.querySelectorAll('#events li').length == 1", "the filtered list")
        page.evaluate("document.querySelector('#events a').click()")
        page.wait_for("location.pathname.match(/events\\/\\d+$/) && document.querySelector('#snapshot') &&"
                      " document.querySelector('#snapshot').naturalWidth == 320", "the detail view's snapshot")
        assert "no clip" in page.evaluate("document.getElementById('status').textContent")
    ibex = get_json(served, "/api/events?rule=ibex")[1]["events"][0]
    (tmp_path / "again").mkdir()  # a profile of its own (the first one's DevTools port file is stale)
    with Browser(CHROMIUM, tmp_path / "again", f"http://127.0.0.1:{served.port}/events/{ibex['id']}?token={TOKEN}") \
            as page:
        page.wait_for("document.querySelector('#clip') && document.querySelector('#clip').src.includes('clip.mjpg')"
                      " && document.querySelector('#clip').naturalWidth == 320", "the clip playing")
        assert "Motion-JPEG" in page.evaluate("document.getElementById('status').textContent")


@browser
def test_a_screenshot_of_the_list_shows_the_thumbnails(served, tmp_path):
    shot = tmp_path / "events.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=800,600", "--virtual-time-budget=4000",
                    f"--screenshot={shot}", f"http://127.0.0.1:{served.port}/events?token={TOKEN}"],
                   capture_output=True, timeout=120)
    img = cv2.imread(str(shot), cv2.IMREAD_COLOR)
    assert img is not None, "chromium wrote no screenshot"
    magenta = np.all(np.abs(img.astype(int) - COLOURS["ibex"]) <= 30, axis=2)
    # two ibex thumbnails, 160x120 CSS pixels each
    assert magenta.sum() > 2 * 160 * 120 * 0.8, magenta.sum()


def test_metrics_count_events_per_rule_and_the_bytes_on_disk(tmp_path):
    from tests.e2e import parse_metrics

    stats = Stats()
    rule = EventRuleConfig(for_s=0, name="ibex", label="ibex", cooldown_s=0, clip=True, pre_s=0.2, post_s=0)
    sink = EventsSink(EventsConfig(rules=[rule, EventRuleConfig(for_s=0, name="cat", label="tabby")], clip_format="avi"),
                      tmp_path / "ev", stats=stats)
    http = HttpSink(HttpConfig(port=0), stats)
    sink.start()
    http.start()
    try:
        now = time.time()
        for i, label in enumerate(["background", "ibex", "ibex", "background", "ibex", "background"]):
            scores = np.array([0.9 if label == name else 0.05 for name in LABELS], np.float32)
            sink.on_result(Classification(scores, LABELS, frame_index=i, wall_time=now + i / 10))
            image = np.full((120, 160, 3), COLOURS[label], np.uint8)
            sink.on_frame(Frame(image, i, i / 10, now + i / 10), image, None)
        sink.clips.close()
        assert sink.history.flush()
        m = parse_metrics(http.metrics_text())
        on_disk = sum(p.stat().st_size for p in (tmp_path / "ev").rglob("*") if p.is_file())
    finally:
        http.close()
        sink.close()
    assert m['edgecam_events_started_total{rule="ibex"}'] == 2 and m['edgecam_events_ended_total{rule="ibex"}'] == 2
    assert m['edgecam_events_started_total{rule="cat"}'] == 0
    assert m['edgecam_events_webhook_failures_total{rule="ibex"}'] == 0
    assert m["edgecam_events_bytes"] == on_disk  # media, database and its WAL
    assert m["edgecam_events_retention_deleted_total"] == 0 and m["edgecam_events_write_errors_total"] == 0
    assert m["edgecam_events_preroll_bytes"] > 0 and m["edgecam_events_clips_lost_total"] == 0


@browser
def test_a_webm_clip_plays_in_a_video_element(tmp_path):
    from edgecam.events.clips import can_write
    from tests.cdp import Browser

    if not can_write("webm"):
        pytest.skip("this OpenCV cannot write WebM (VP8)")
    folder = tmp_path / "ev"
    rule = EventRuleConfig(for_s=0, name="ibex", label="ibex", cooldown_s=0, clip=True, pre_s=0.2, post_s=0.2)
    sink = EventsSink(EventsConfig(rules=[rule], clip_format="webm"), folder)
    sink.start()
    sink.source_opened(type("File", (), {"live": False, "realtime": False, "fps": 10.0})())
    now = time.time()
    for i, label in enumerate(["background"] * 3 + ["ibex"] * 6 + ["background"] * 4):
        scores = np.array([0.9 if label == name else 0.05 for name in LABELS], np.float32)
        sink.on_result(Classification(scores, LABELS, frame_index=i, wall_time=now + i / 10))
        image = np.full((240, 320, 3), COLOURS[label], np.uint8)
        sink.on_frame(Frame(image, i, i / 10, now + i / 10), image, None)
    sink.close()
    http = HttpSink(HttpConfig(port=0), Stats())
    EventsWeb(folder).mount_on(http)
    http.start()
    try:
        status, ev = get_json(http, "/api/events/1")
        assert ev["clip_type"] == "video/webm" and ev["clip_stream"] is None
        cap = cv2.VideoCapture(str(folder / (connect := __import__("edgecam.events.history", fromlist=["x"]))
                                   .get_event(connect.connect_reader(folder), 1)["clip"]))
        n = 0
        while cap.read()[0]:
            n += 1
        assert n == 2 + 6 + 2  # pre_s 0.2 s, the event, post_s 0.2 s at 10 fps
        with Browser(CHROMIUM, tmp_path, f"http://127.0.0.1:{http.port}/events/1") as page:
            page.wait_for("document.querySelector('video#clip') && document.querySelector('video#clip').videoWidth"
                          " == 320 && document.querySelector('video#clip').readyState >= 2", "the WebM clip decoded")
    finally:
        http.close()


def test_a_clip_is_sent_in_byte_ranges_as_video_players_ask(served):
    ev = get_json(served, "/api/events?rule=ibex")[1]["events"][-1]
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)

    def get(rng=None):
        headers = {"Authorization": f"Bearer {TOKEN}", **({"Range": rng} if rng else {})}
        conn.request("GET", ev["clip"], headers=headers)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()

    status, headers, whole = get()
    assert status == 200 and headers["Accept-Ranges"] == "bytes" and len(whole) == int(headers["Content-Length"])
    status, headers, part = get("bytes=100-199")
    assert status == 206 and part == whole[100:200] and headers["Content-Range"] == f"bytes 100-199/{len(whole)}"
    assert get("bytes=-50")[2] == whole[-50:] and get(f"bytes={len(whole) - 10}-")[2] == whole[-10:]
    assert get(f"bytes={len(whole) + 5}-")[0] == 416
