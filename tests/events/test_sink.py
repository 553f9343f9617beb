"""The events output inside a run's output loop: results in, history rows, snapshots and examples out."""

from __future__ import annotations

import time

import cv2
import numpy as np

from edgecam.config.events import EventRuleConfig, EventsConfig
from edgecam.events.history import connect_reader, query_events
from edgecam.events.sink import EventsSink
from edgecam.camera.frame import Frame
from edgecam.result import Classification, RegionState
from edgecam.outputs.base import RegionInfo

BOX = (0.5, 0.5, 1.0, 1.0)


def region_result(i: int, label: str, t: float) -> Classification:
    state = RegionState("door", BOX, label, 0.9, 0, i, t, True)
    return Classification(np.zeros(0, np.float32), (), frame_index=i, wall_time=t, regions={"door": state})


def test_a_region_event_saves_snapshots_and_the_crop_as_an_example(tmp_path):
    cfg = EventsConfig(rules=[EventRuleConfig(for_s=0, name="door_open", label="open", region="door", cooldown_s=0,
                                              collect=True)])
    sink = EventsSink(cfg, tmp_path / "events", tmp_path / "examples", (RegionInfo("door", BOX, ("open", "shut")),))
    assert sink.wants_frames
    sink.start()
    clean = np.zeros((200, 300, 3), np.uint8)
    clean[100:, 150:] = (0, 0, 255)  # the door's box is red
    annotated = clean.copy()
    cv2.putText(annotated, "open", (10, 40), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 255), 2)
    now = time.time()  # (older events would go at once: max_age_days)
    for i, label in enumerate(["shut", "shut", "open", "open", "shut"]):
        sink.on_result(region_result(i, label, now + i))
        sink.on_frame(Frame(clean, i, float(i), now + i), annotated, None)
    sink.close()
    rows, total = query_events(connect_reader(tmp_path / "events"))
    assert total == 1 and (rows[0]["rule"], rows[0]["label"], rows[0]["region"]) == ("door_open", "open", "door")
    assert (rows[0]["start_frame"], rows[0]["end_frame"], rows[0]["status"]) == (2, 4, "ended")
    shot = cv2.imread(str(tmp_path / "events" / rows[0]["snapshot"]))
    plain = cv2.imread(str(tmp_path / "events" / rows[0]["snapshot_clean"]))
    assert shot.shape == plain.shape == clean.shape
    assert np.abs(shot[:60, :150].astype(int) - plain[:60, :150]).mean() > 5  # the overlay's text is on one only
    examples = list((tmp_path / "examples" / "door" / "open").glob("*.png"))
    assert len(examples) == 1
    crop = cv2.imread(str(examples[0]))
    assert crop.shape == (100, 150, 3) and (crop == (0, 0, 255)).all()  # the region's crop, losslessly
    assert sink.started == {"door_open": 1} and sink.ended == {"door_open": 1}


def test_a_rule_naming_a_state_its_region_never_takes_is_refused_at_start(tmp_path):
    import pytest

    from edgecam.errors import ConfigError

    rules = [EventRuleConfig(for_s=0, name="a", labels=["open", "unknown"], region="door"),
             EventRuleConfig(for_s=0, name="b", label="ajar", region="door")]
    sink = EventsSink(EventsConfig(rules=rules), tmp_path / "ev", regions=(RegionInfo("door", BOX, ("open", "shut")),))
    with pytest.raises(ConfigError) as err:
        sink.start()
    assert err.value.problems == ["events.rules[1]: 'ajar' is not one of region door's states (open, shut, unknown); "
                                  "it could never start an event"]


def test_the_log_fed_after_the_events_output_carries_their_starts_and_ends(tmp_path):
    import json

    from edgecam.config.schema import Config, LogConfig
    from edgecam.outputs import FanOut, build_sinks

    cfg = Config(log=LogConfig(path=str(tmp_path / "log.jsonl"), mode="changes"))
    cfg.events = EventsConfig(dir=str(tmp_path / "ev"), rules=[EventRuleConfig(for_s=0, name="ibex", label="ibex",
                                                                               cooldown_s=0, snapshot=False)])
    sinks = build_sinks(cfg, None, lambda: None, False, 10.0)
    assert [s.name for s in sinks] == ["events", "log"]  # the events output is fed first
    fan = FanOut(sinks)
    fan.start()
    labels = ("background", "ibex")
    now = time.time()
    for i, seen in enumerate([False, True, True, False]):
        scores = np.array([0.1, 0.9] if seen else [0.9, 0.1], np.float32)
        fan.on_result(Classification(scores, labels, frame_index=i, wall_time=now + i))
    fan.close()
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [(line["frame"], line["rule_events"]) for line in lines] == [
        (1, [{"type": "start", "id": 1, "rule": "ibex", "label": "ibex", "region": None}]),
        (3, [{"type": "end", "id": 1, "rule": "ibex", "label": "ibex", "region": None}])]


def test_the_overlay_is_drawn_for_the_snapshot_only_when_no_other_output_wants_it(tmp_path):
    from edgecam.config.schema import Config
    from edgecam.outputs import FanOut, build_sinks
    from edgecam.stats import Stats

    cfg = Config()
    cfg.events = EventsConfig(dir=str(tmp_path / "ev"), rules=[EventRuleConfig(for_s=0, name="ibex", label="ibex",
                                                                               cooldown_s=0)])
    sinks = build_sinks(cfg, Stats(), lambda: None, False, 10.0, labels=("background", "ibex"))
    fan = FanOut(sinks)
    assert fan.wants_frames and not fan.wants_overlay  # the pipeline draws no overlay on every frame
    fan.start()
    labels = ("background", "ibex")
    image = np.full((240, 320, 3), 90, np.uint8)
    now = time.time()
    for i, seen in enumerate([False, True, False]):
        scores = np.array([0.1, 0.9] if seen else [0.9, 0.1], np.float32)
        r = Classification(scores, labels, frame_index=i, wall_time=now + i)
        fan.on_result(r)
        fan.on_frame(Frame(image, i, float(i), now + i), None, r)  # no annotated picture from the pipeline
    fan.close()
    rows, _ = query_events(connect_reader(tmp_path / "ev"))
    shot = cv2.imread(str(tmp_path / "ev" / rows[0]["snapshot"]))
    clean = cv2.imread(str(tmp_path / "ev" / rows[0]["snapshot_clean"]))
    assert np.abs(clean.astype(int) - 90).max() <= 3  # the clean one is the camera's picture
    assert np.abs(shot.astype(int) - clean).mean() > 2  # the snapshot has the overlay (drawn for it)


def test_the_events_output_mounts_its_pages_on_the_http_output_it_is_built_with(tmp_path):
    from edgecam.config.schema import Config, HttpConfig
    from edgecam.outputs import FanOut, build_sinks
    from edgecam.stats import Stats
    from tests.e2e import http_get

    def served(cfg) -> tuple[int, int]:
        fan = FanOut(build_sinks(cfg, Stats(), lambda: None, False, 10.0, labels=("background", "ibex")))
        fan.start()
        try:
            base = f"http://127.0.0.1:{next(s for s in fan.sinks if s.name == 'http').port}"
            return http_get(base + "/api/events")[0], http_get(base + "/events")[0]
        finally:
            fan.close()

    cfg = Config(http=HttpConfig(enabled=True, port=0))
    assert served(cfg) == (404, 404)  # no rule: no events output, nothing mounted
    cfg.events = EventsConfig(dir=str(tmp_path / "ev"), rules=[EventRuleConfig(for_s=0, name="ibex", label="ibex")])
    assert served(cfg) == (200, 200)
