"""The /events page and /api/events explain themselves (issue 21): the active rules before any event,
the configured rules in the filter, clean thumbnails, short titles and a link back to the live page."""

from __future__ import annotations

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
from tests.events.test_web import CHROMIUM, COLOURS, LABELS, browser, get_json, history  # noqa: F401 (fixture)

RULES = [EventRuleConfig(name="ibex", label="ibex", clip=True),
         EventRuleConfig(name="night_cat", labels=["tabby", "tiger cat"], min_score=0.6, for_s=2,
                         schedule="22:00-06:00")]


def serve(folder, rules=RULES) -> HttpSink:
    sink = HttpSink(HttpConfig(port=0), Stats())
    EventsWeb(folder, rules).mount_on(sink)
    sink.start()
    return sink


@pytest.fixture
def empty(tmp_path):
    sink = serve(tmp_path / "events")  # the folder does not even exist before the first event
    yield sink
    sink.close()


def test_before_any_event_the_api_lists_the_configured_rules_and_what_fires_them(empty):
    status, d = get_json(empty, "/api/events")
    assert status == 200 and d["events"] == [] and d["total"] == 0  # was 503: no history yet
    assert d["rules"] == ["ibex", "night_cat"] and d["labels"] == []  # was [] with two rules configured
    ibex, night = d["active_rules"]
    assert ibex["name"] == "ibex" and ibex["labels"] == ["ibex"] and ibex["for_s"] == 1.0
    assert ibex["fires_when"] == ("'ibex' scores at least 50% for 1 s without a break; "
                                  "it ends 5 s after that stops (snapshot, clip)")
    assert night["fires_when"].startswith("'tabby' or 'tiger cat' scores at least 60% for 2 s without a break, "
                                          "between 22:00-06:00 (local time)")


def test_with_events_the_filter_has_the_configured_rules_too(history):  # noqa: F811
    sink = serve(history, [EventRuleConfig(name="ibex", label="ibex"), EventRuleConfig(name="dog", label="dog")])
    try:
        d = get_json(sink, "/api/events")[1]
    finally:
        sink.close()
    # "cat" has events but is no longer configured; "dog" is configured but never fired
    assert d["total"] == 3 and d["rules"] == ["cat", "dog", "ibex"]
    assert [r["name"] for r in d["active_rules"]] == ["ibex", "dog"]


def test_the_thumbnail_is_the_clean_frame_and_the_snapshot_keeps_the_overlay(tmp_path):
    folder = tmp_path / "ev"
    sink = EventsSink(EventsConfig(rules=[EventRuleConfig(name="ibex", label="ibex", for_s=0, cooldown_s=0)]),
                      folder)
    sink.start()
    sink.source_opened(type("File", (), {"live": False, "realtime": False, "fps": 10.0})())
    now = time.time()
    for i, label in enumerate(["background", "ibex", "ibex", "background"]):
        clean = np.full((240, 320, 3), COLOURS[label], np.uint8)
        shown = clean.copy()
        shown[:, :] = (0, 255, 0)  # the overlay's picture: green all over, to tell it apart
        scores = np.array([0.9 if label == name else 0.05 for name in LABELS], np.float32)
        sink.on_result(Classification(scores, LABELS, frame_index=i, wall_time=now + i / 10))
        sink.on_frame(Frame(clean, i, i / 10, now + i / 10), shown, None)
    sink.close()
    from edgecam.events.history import connect_reader, get_event

    row = get_event(connect_reader(folder), 1)
    thumb = cv2.imread(str(folder / row["thumb"]))
    snapshot = cv2.imread(str(folder / row["snapshot"]))
    assert np.abs(thumb.astype(int) - COLOURS["ibex"]).mean() < 8  # was the overlay's picture
    assert np.abs(snapshot.astype(int) - (0, 255, 0)).mean() < 8


@browser
def test_the_empty_page_lists_the_rules_and_links_back_to_the_live_page(empty, tmp_path):
    from tests.cdp import Browser

    with Browser(CHROMIUM, tmp_path, f"http://127.0.0.1:{empty.port}/events") as page:
        page.wait_for("document.getElementById('empty') && !document.getElementById('empty').hidden", "the empty state")
        items = page.evaluate("[...document.querySelectorAll('#rules li')].map(li => li.textContent)")
        assert items[0] == "ibex: fires when 'ibex' scores at least 50% for 1 s without a break; " \
                           "it ends 5 s after that stops (snapshot, clip)"
        assert items[1].startswith("night_cat: fires when 'tabby' or 'tiger cat'")
        assert page.evaluate("document.getElementById('live').getAttribute('href')") == "/"
        assert page.evaluate("document.getElementById('status').textContent") == "0 event(s)"
