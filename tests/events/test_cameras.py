"""Several cameras' events in one folder (issue 25): one history through an EventsHub, each row its camera's,
each snapshot and clip from its own camera's frames; the camera filter of the CLI, the API and the page.

Two cameras with a rule on the same label, fed side by side from two threads (as their output loops run);
the door camera sees red, the yard camera blue.
"""

from __future__ import annotations

import csv
import io
import json
import re
import threading
import time

import cv2
import numpy as np
import pytest

from edgecam.camera.frame import Frame
from edgecam.config.events import EventRuleConfig, EventsConfig
from edgecam.config.schema import HttpConfig
from edgecam.events.history import History, connect_reader, query_events
from edgecam.events.hub import EventsHub
from edgecam.events.sink import EventsSink
from edgecam.outputs.http import HttpSink
from edgecam.result import Classification, Extra
from edgecam.stats import Stats
from tests.commands.test_learn import command
from tests.e2e import http_get
from tests.events.test_web import CHROMIUM, browser

LABELS = ("background", "ibex")
COLOURS = {"door": (0, 0, 255), "yard": (255, 0, 0)}  # BGR: red, blue
# frames at 10 fps in which each camera sees an ibex: door twice, yard once (overlapping door's first)
SEEN = {"door": (range(2, 6), range(12, 15), 20), "yard": (range(4, 10), 15)}
TOKEN = "cameras-token"


def ibex_rule(**kw) -> EventRuleConfig:
    return EventRuleConfig(**{"for_s": 0, "name": "ibex", "label": "ibex", "cooldown_s": 0, **kw})


def feed(sink: EventsSink, camera: str, t0: float) -> list[dict]:
    """The camera's output loop: a result and its frame (all of the camera's colour) at 10 fps; returns the
    starts' and ends' JSON the outputs after it got (MQTT, the log)."""
    *spans, frames = SEEN[camera]
    said = []
    image = np.full((120, 160, 3), COLOURS[camera], np.uint8)
    for i in range(frames):
        seen = any(i in span for span in spans)
        scores = np.array([0.1, 0.9] if seen else [0.9, 0.1], np.float32)
        result = Classification(scores, LABELS, frame_index=i, wall_time=t0 + i / 10)
        sink.on_result(result)
        sink.on_frame(Frame(image, i, i / 10, t0 + i / 10), image.copy(), result)
        said += [e.payload for e in result.extra.get(Extra.RULE_EVENTS, [])]
        time.sleep(0.002)  # the two cameras' loops interleave
    return said


class File:
    """A video file read unpaced at 10 fps: every frame goes into the clips (none skipped)."""

    live, realtime, fps = False, False, 10.0


def run_cameras(folder, **rule) -> EventsHub:
    """Both cameras' events outputs on one hub, fed from two threads, closed; returns the (closed) hub."""
    hub = EventsHub(folder)
    sinks = {name: EventsSink(EventsConfig(rules=[ibex_rule(**rule)], clip_format="avi"), folder, hub=hub,
                              camera=name, labels=LABELS) for name in COLOURS}
    for sink in sinks.values():
        sink.start()
        sink.source_opened(File())
    t0 = time.time() - 60
    threads = [threading.Thread(target=feed, args=(sinks[name], name, t0)) for name in sinks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for sink in sinks.values():
        sink.close()  # a camera's output closes; the history stays open for the others
    assert hub.history.conn is not None
    hub.close()
    return hub


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("events")
    run_cameras(folder, clip=True, pre_s=0.2, post_s=0.1)
    return folder


def rows_of(folder) -> list[dict]:
    conn = connect_reader(folder)
    try:
        return query_events(conn, limit=100)[0]
    finally:
        conn.close()


def colour_of(picture) -> str:
    """Which camera's colour a (JPEG) picture is, checked to be near it everywhere."""
    for name, colour in COLOURS.items():
        if np.abs(picture.astype(int) - colour).max() <= 40:
            return name
    raise AssertionError(f"a picture of neither camera: mean {picture.reshape(-1, 3).mean(axis=0)}")


def clip_frames(path) -> list:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while (got := cap.read())[0]:
        frames.append(got[1])
    cap.release()
    return frames


def test_both_cameras_events_land_in_one_history_with_their_camera(folder):
    rows = rows_of(folder)
    got = sorted((r["camera"], r["rule"], r["start_frame"], r["end_frame"], r["status"]) for r in rows)
    assert got == [("door", "ibex", 2, 6, "ended"), ("door", "ibex", 12, 15, "ended"),
                   ("yard", "ibex", 4, 10, "ended")]
    assert sorted(r["id"] for r in rows) == [1, 2, 3]  # one sequence of ids for both cameras
    h = History(folder)  # the run let the folder go
    h.open()
    h.close()


def test_each_snapshot_and_clip_is_its_own_cameras_picture_and_names_it(folder):
    for row in rows_of(folder):
        camera = row["camera"]
        for column in ("snapshot", "snapshot_clean", "thumb", "clip"):
            assert f"-{camera}-ibex-" in row[column], row[column]
        for column in ("snapshot", "snapshot_clean", "thumb"):
            assert colour_of(cv2.imread(str(folder / row[column]))) == camera, (row["id"], column)
        frames = clip_frames(folder / row["clip"])
        assert len(frames) >= row["end_frame"] - row["start_frame"]
        assert {colour_of(f) for f in frames} == {camera}


def test_retention_counts_every_cameras_events_together(tmp_path):
    hub = EventsHub(tmp_path)
    door = EventsSink(EventsConfig(rules=[ibex_rule()]), tmp_path, hub=hub, camera="door", labels=LABELS)
    yard = EventsSink(EventsConfig(rules=[ibex_rule()]), tmp_path, hub=hub, camera="yard", labels=LABELS)
    door.start()
    yard.start()
    t0 = time.time() - 60
    said = feed(door, "door", t0)
    assert [(e["type"], e["camera"]) for e in said] == [("start", "door"), ("end", "door")] * 2
    assert hub.history.flush()
    first = rows_of(tmp_path)
    assert [r["camera"] for r in first] == ["door", "door"]
    # door's two events fit, with room for half of one more: yard's does not
    hub.history.max_bytes = sum(r["bytes"] for r in first) + first[0]["bytes"] // 2
    feed(yard, "yard", t0 + 10)
    door.close()
    yard.close()
    hub.close()
    rows = rows_of(tmp_path)
    # yard's event pushed out door's oldest: one limit over both cameras
    assert [(r["camera"], r["start_frame"]) for r in rows] == [("yard", 4), ("door", 12)]
    assert hub.history.deleted_by_retention == 1


def test_two_cameras_cannot_share_a_folder_with_different_retention_nor_a_name_that_is_no_file_name(tmp_path):
    from edgecam.config.schema import Config
    from edgecam.errors import ConfigError

    def cfg(folder, max_mb=1000.0):
        c = Config()
        c.events = EventsConfig(dir=str(folder), rules=[ibex_rule()], max_mb=max_mb)
        return c

    hubs = EventsHub.for_cameras([("door", cfg(tmp_path / "a")), ("yard", cfg(tmp_path / "a")),
                                  ("gate", cfg(tmp_path / "b")), ("none", Config())])
    assert hubs["door"] is hubs["yard"] and hubs["gate"] is not hubs["door"] and "none" not in hubs
    with pytest.raises(ConfigError) as err:
        EventsHub.for_cameras([("door", cfg(tmp_path / "a")), ("yard", cfg(tmp_path / "a", 5)),
                               ("../x", cfg(tmp_path / "a"))])
    first, second = err.value.problems
    assert first.startswith("cameras: yard and door keep their events in ") and "different retention" in first
    assert second.startswith("cameras: got '../x' as a camera's name, expected a name of letters")


def test_the_command_line_lists_and_exports_one_cameras_events(folder, capsys):
    assert command(["events", "list", "--dir", str(folder), "--camera", "yard"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and "[yard] ibex: ibex" in lines[0]
    assert command(["events", "export", "--dir", str(folder), "--json", "--camera", "door"]) == 0
    door = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["camera"], e["start_frame"]) for e in door] == [("door", 2), ("door", 12)]  # oldest first
    assert command(["events", "export", "--dir", str(folder)]) == 0
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out, newline="")))
    assert sorted(r["camera"] for r in table) == ["door", "door", "yard"]
    assert command(["events", "list", "--dir", str(folder), "--camera", "gate"]) == 0
    assert capsys.readouterr().out == ""
    assert command(["events", "show", str(door[0]["id"]), "--dir", str(folder)]) == 0
    assert re.search(r"^camera +door$", capsys.readouterr().out, re.M)


@pytest.fixture
def served(folder, tmp_path):
    """The hub's web view (as each camera's HTTP output mounts it), with both cameras' rules."""
    hub = EventsHub(folder)
    for name in COLOURS:
        EventsSink(EventsConfig(rules=[ibex_rule()]), folder, hub=hub, camera=name, labels=LABELS)
    (tmp_path / "token").write_text(TOKEN)
    http = HttpSink(HttpConfig(port=0, token_file=str(tmp_path / "token")), Stats())
    hub.web.mount_on(http)
    http.start()
    yield http
    http.close()


def get_json(http, path):
    status, _, body = http_get(f"http://127.0.0.1:{http.port}{path}", TOKEN)
    assert status == 200, body
    return json.loads(body)


def test_the_api_filters_by_camera_and_lists_each_cameras_rules(served):
    d = get_json(served, "/api/events")
    assert d["total"] == 3 and d["cameras"] == ["door", "yard"] and d["rules"] == ["ibex"]
    assert [(r["camera"], r["name"]) for r in d["active_rules"]] == [("door", "ibex"), ("yard", "ibex")]
    assert {e["camera"] for e in d["events"]} == {"door", "yard"}
    yard = get_json(served, "/api/events?camera=yard")
    assert yard["total"] == 1 and yard["events"][0]["camera"] == "yard" and yard["cameras"] == ["door", "yard"]
    page = get_json(served, "/api/events?camera=door&limit=1")
    assert page["total"] == 2 and page["next"] == "/api/events?camera=door&limit=1&offset=1"
    rest = get_json(served, page["next"])
    assert [e["camera"] for e in rest["events"]] == ["door"] and rest["next"] is None
    assert get_json(served, "/api/events?camera=gate")["total"] == 0
    assert get_json(served, f"/api/events/{yard['events'][0]['id']}")["camera"] == "yard"


@browser
def test_the_page_shows_each_events_camera_and_filters_by_it(served, tmp_path):
    from tests.cdp import Browser

    with Browser(CHROMIUM, tmp_path, f"http://127.0.0.1:{served.port}/events?token={TOKEN}") as page:
        page.wait_for("document.querySelectorAll('#events li').length == 3", "three events listed")
        metas = page.evaluate("[...document.querySelectorAll('#events .meta:not([class*=status])')]"
                              ".map(m => m.textContent.split(',')[0])")
        assert sorted(metas) == ["camera door", "camera door", "camera yard"]
        assert page.evaluate("document.querySelector('select[name=camera]').hidden") is False
        page.evaluate("document.querySelector('select[name=camera]').value = 'yard';"
                      "document.querySelector('#filters button').click()")
        page.wait_for("document.querySelectorAll('#events li').length == 1", "the yard camera's event")
        page.evaluate("document.querySelector('#events a').click()")
        page.wait_for("document.querySelector('#detail dd') && "
                      "document.querySelector('#detail dd').textContent == 'yard'", "the event's camera")


def test_one_camera_keeps_a_history_of_its_own_with_no_camera(tmp_path):
    from edgecam.config.schema import Config
    from edgecam.outputs import build_sinks

    cfg = Config()
    cfg.events = EventsConfig(dir=str(tmp_path), rules=[ibex_rule()])
    (sink,) = build_sinks(cfg, Stats(), lambda: None, False, 10.0, labels=LABELS)  # as `edgecam run` builds it
    assert sink.hub is None and sink.camera is None
    sink.start()
    said = feed(sink, "door", time.time() - 60)
    sink.close()
    assert len(said) == 4 and not any("camera" in e for e in said)  # the JSON as before
    rows = rows_of(tmp_path)
    assert [(r["camera"], r["start_frame"]) for r in rows] == [(None, 12), (None, 2)]
    assert all(row["snapshot"].endswith(f"/{row['id']}-ibex-snapshot.jpg") for row in rows)  # named as before
    conn = connect_reader(tmp_path)
    assert query_events(conn, camera="door") == ([], 0)
    conn.close()
