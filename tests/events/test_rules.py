"""When events start and end: the rule state machine fed results at chosen times (no clock read)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from edgecam.config.events import EventRuleConfig
from edgecam.events.rules import RuleSet, RuleTracker, in_schedule, label_matcher
from edgecam.result import Classification, RegionState

LABELS = ("background", "tabby, tabby cat", "ibex, Capra ibex", "mobile home")


def whole(scores: dict[str, float]) -> Classification:
    s = np.zeros(len(LABELS), np.float32)
    for name, v in scores.items():
        s[LABELS.index(name)] = v
    return Classification(s, LABELS)


def region(label, score, name="garage") -> Classification:
    state = RegionState(name, (0, 0, 1, 1), label, score, 0, 0, 0.0, True)
    return Classification(np.zeros(0, np.float32), (), regions={name: state})


def run(rule: EventRuleConfig, seen: list[tuple[float, object]]) -> list[tuple[str, int, int | None, float]]:
    """Feed (time, result) pairs one per frame; returns (kind, start_frame, end_frame, peak) per change."""
    tracker = RuleTracker(rule)
    out = []
    for frame, (t, result) in enumerate(seen):
        for kind, e in tracker.update(result, t, frame, 1_700_000_000 + t):
            out.append((kind, e.start_frame, e.end_frame, round(e.peak_score, 2)))
    return out


IBEX, HOME = whole({"ibex, Capra ibex": 0.9}), whole({"mobile home": 0.9})
WEAK = whole({"ibex, Capra ibex": 0.4})


def frames(*steps: tuple[object, int], fps: float = 10.0) -> list[tuple[float, object]]:
    """A result per frame at ``fps``: (result, frames) steps -> (time, result) pairs."""
    results = [result for result, n in steps for _ in range(n)]
    return [(i / fps, r) for i, r in enumerate(results)]


CASES = [
    # (rule keys, timeline, changes)
    ({"cooldown_s": 0}, frames((HOME, 5), (IBEX, 10), (HOME, 5)),
     [("start", 5, None, 0.9), ("end", 5, 15, 0.9)]),
    # for_s: the event is reported once the label held that long, but starts where it appeared
    ({"for_s": 0.5, "cooldown_s": 0}, frames((HOME, 5), (IBEX, 10), (HOME, 5)),
     [("start", 5, None, 0.9), ("end", 5, 15, 0.9)]),
    # ...and a label shorter than for_s makes no event
    ({"for_s": 1.0, "cooldown_s": 0}, frames((HOME, 5), (IBEX, 5), (HOME, 5)), []),
    # cooldown: a gap shorter than it continues the event; the end is where the label went for good
    ({"cooldown_s": 1.0}, frames((IBEX, 5), (HOME, 5), (IBEX, 5), (HOME, 15)),
     [("start", 0, None, 0.9), ("end", 0, 15, 0.9)]),
    ({"cooldown_s": 0.3}, frames((IBEX, 5), (HOME, 5), (IBEX, 5), (HOME, 15)),
     [("start", 0, None, 0.9), ("end", 0, 5, 0.9), ("start", 10, None, 0.9), ("end", 10, 15, 0.9)]),
    # below min_score is no match
    ({"min_score": 0.5, "cooldown_s": 0}, frames((WEAK, 10)), []),
    ({"min_score": 0.3, "cooldown_s": 0}, frames((WEAK, 3), (IBEX, 3), (HOME, 1)),
     [("start", 0, None, 0.4), ("end", 0, 6, 0.9)]),
]


def test_by_default_a_flickering_label_makes_no_event_and_a_held_one_does():
    # issue 21: 0.3 s "events" of a label flickering on and off filled the /events list
    flicker = frames((HOME, 5), *[(IBEX, 3), (HOME, 2)] * 6, (HOME, 60))  # on 0.3 s, off 0.2 s, for 3 s
    assert EventRuleConfig().for_s == 1.0
    assert run(EventRuleConfig(name="r", label="ibex"), flicker) == []
    held = frames((HOME, 5), (IBEX, 15), (HOME, 60))  # 1.5 s: an event, starting where the label appeared
    assert run(EventRuleConfig(name="r", label="ibex"), held) == [("start", 5, None, 0.9), ("end", 5, 20, 0.9)]


@pytest.mark.parametrize("keys, timeline, changes", CASES)
def test_events_start_and_end_on_the_frames_the_rule_says(keys, timeline, changes):
    assert run(EventRuleConfig(name="r", label="ibex", **{"for_s": 0, **keys}), timeline) == changes


def test_a_region_rule_follows_the_region_state_not_the_picture():
    rule = EventRuleConfig(for_s=0, name="door", labels=["open", "ajar"], region="garage", cooldown_s=0, min_score=0.6)
    timeline = [(0.0, region("closed", 0.9)), (0.1, region("open", 0.7)), (0.2, region("ajar", 0.95)),
                (0.3, region("open", 0.5)), (0.4, region(None, 0.0))]
    assert run(rule, timeline) == [("start", 1, None, 0.7), ("end", 1, 3, 0.95)]


def test_a_label_is_named_whole_or_by_its_first_name():
    assert label_matcher(("tabby", "mobile home"), LABELS) == {1: "tabby", 3: "mobile home"}
    tracker = RuleTracker(EventRuleConfig(for_s=0, name="r", labels=["tabby", "unicorn"]))
    assert tracker.match(whole({"tabby, tabby cat": 0.8})) == ("tabby", pytest.approx(0.8))
    assert tracker.unknown_labels == ("unicorn",)


def test_a_region_state_is_named_whole_or_by_its_first_name_too():
    """Issue 24, item 13: a region with the model's classes as states; the rule names one by its first name."""
    tracker = RuleTracker(EventRuleConfig(name="r", label="hook", region="garage", min_score=0.5))
    assert tracker.match(region("hook, claw", 0.8)) == ("hook", pytest.approx(0.8))
    assert tracker.match(region("hookah", 0.9)) is None and tracker.match(region(None, 0.0)) is None
    assert RuleTracker(EventRuleConfig(name="r", label="hook, claw", region="garage")).match(
        region("hook, claw", 0.8)) == ("hook, claw", pytest.approx(0.8))


@pytest.mark.parametrize("window, hour, minute, inside", [
    ((7 * 60, 19 * 60), 12, 0, True), ((7 * 60, 19 * 60), 19, 0, False), ((7 * 60, 19 * 60), 6, 59, False),
    ((22 * 60, 6 * 60), 23, 30, True), ((22 * 60, 6 * 60), 5, 59, True), ((22 * 60, 6 * 60), 12, 0, False),
    (None, 3, 0, True),
])
def test_schedule_windows_in_local_time_may_cross_midnight(window, hour, minute, inside):
    t = time.mktime((2026, 6, 1, hour, minute, 0, 0, 0, -1))
    assert in_schedule(window, t) is inside


def test_outside_its_schedule_a_rule_does_not_match_and_an_event_ends():
    rule = EventRuleConfig(for_s=0, name="night", label="ibex", cooldown_s=0, schedule="22:00-06:00")
    tracker = RuleTracker(rule)
    night, day = time.mktime((2026, 6, 1, 23, 0, 0, 0, 0, -1)), time.mktime((2026, 6, 2, 12, 0, 0, 0, 0, -1))
    assert tracker.update(IBEX, 0.0, 0, day) == []
    assert [k for k, _ in tracker.update(IBEX, 0.1, 1, night)] == ["start"]
    assert [k for k, _ in tracker.update(IBEX, 0.2, 2, day)] == ["end"]


def test_finish_ends_the_event_in_progress_where_its_label_went():
    rules = RuleSet([EventRuleConfig(for_s=0, name="a", label="ibex", cooldown_s=5), EventRuleConfig(for_s=0, name="b", label="tabby")])
    rules.update(IBEX, 0.0, 0, 0.0)
    rules.update(HOME, 1.0, 10, 1.0)
    ended = rules.finish(2.0, 20)
    assert [(e.rule, e.start, e.end, e.end_frame) for e in ended] == [("a", 0.0, 1.0, 10)]
    assert rules.finish(3.0, 30) == []
