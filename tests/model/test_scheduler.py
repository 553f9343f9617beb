"""One inference stage for several cameras: fair shares under overload, no starvation, results back to their camera.

The fairness tests run on a virtual clock: cameras make frames at their rates,
one interpreter takes a fixed time per frame, and every step is an event in
time order, so the shares are exact and the same on every machine.
"""

from __future__ import annotations

import heapq
import threading
from collections import Counter

import numpy as np
import pytest

from edgecam.camera.frame import Frame
from edgecam.model.inference import InferenceStage
from edgecam.model.scheduler import SharedFrames

PIXEL = np.zeros((1, 1, 3), np.uint8)


def frame(index: int, t: float) -> Frame:
    return Frame(PIXEL, index, t, t)


def simulate(rates: dict[str, float], service_s: float, duration_s: float = 60.0, files: tuple = ()):
    """Cameras (latest frame) at ``rates`` and ``files`` (every frame, read as fast as there is room) feed one
    interpreter that takes ``service_s`` per frame. Returns (served, the shared frames, waits per camera):
    ``served`` lists (camera, capture time, service start) in order; a wait is how many frames of other
    cameras were served while a camera had a frame pending."""
    shared = SharedFrames()
    served: list[tuple[str, float, float]] = []
    lanes = {name: shared.lane(name, "latest", lambda r, f: None) for name in rates}
    lanes.update({name: shared.lane(name, "every_frame", lambda r, f: None) for name in files})
    index = Counter()
    events: list = []
    for i, (name, rate) in enumerate(rates.items()):
        heapq.heappush(events, (i * 0.001, 1, name))  # a capture; cameras slightly out of phase
    heapq.heappush(events, (0.0005, 2, None))  # the interpreter is free
    pending_since: dict[str, int] = {}
    waits: dict[str, list[int]] = {n: [] for n in lanes}

    def read_files(now):
        for name in files:  # a file reader puts while its queue has room: the new frame is captured now
            while len(lanes[name]._items) < lanes[name].capacity:
                lanes[name].put((frame(index[name], now), None, 0.0))
                index[name] += 1

    while events:
        now, kind, name = heapq.heappop(events)
        if now > duration_s:
            break
        read_files(now)
        if kind == 1:
            lanes[name].put((frame(index[name], now), None, 0.0))
            index[name] += 1
            heapq.heappush(events, (now + 1 / rates[name], 1, name))
            continue
        for n, lane in lanes.items():  # who has a frame waiting now, since which service
            if lane._items and n not in pending_since:
                pending_since[n] = len(served)
        item = shared.get(timeout=0)
        if item is None:
            heapq.heappush(events, (now + 0.001, 2, None))
            continue
        f = item[0]
        lane = shared._owner[id(f)]
        served.append((lane.name, f.timestamp, now))
        waits[lane.name].append(len(served) - 1 - pending_since.pop(lane.name, len(served) - 1))
        shared.deliver(None, f)
        heapq.heappush(events, (now + service_s, 2, None))
    return served, shared, waits


@pytest.mark.parametrize("cameras, service_s", [
    (2, 0.025),  # 2 x 30 fps offered, 40 fps served
    (3, 0.020),  # 3 x 30 fps offered, 50 fps served
    (4, 0.050),  # 4 x 30 fps offered, 20 fps served: heavy overload
])
def test_cameras_of_one_rate_get_equal_shares_under_overload(cameras, service_s):
    rates = {f"cam{i}": 30.0 for i in range(cameras)}
    served, shared, waits = simulate(rates, service_s)
    shares = Counter(name for name, _, _ in served)
    equal = len(served) / cameras
    assert len(shares) == cameras
    assert all(abs(n - equal) <= 0.10 * equal for n in shares.values()), shares
    assert all(max(w) <= cameras - 1 for w in waits.values()), {n: max(w) for n, w in waits.items()}
    counters = shared.counters()
    assert sum(c.inferred for c in counters.values()) == len(served)
    assert all(c.dropped > 0 for c in counters.values())  # overload: each camera drops, none is starved


def test_a_slow_camera_gets_every_frame_and_the_fast_ones_share_the_rest():
    served, shared, waits = simulate({"door": 30.0, "yard": 30.0, "gate": 5.0}, service_s=1 / 45)
    counters = shared.counters()
    assert counters["gate"].dropped == 0 and counters["gate"].inferred >= counters["gate"].offered - 1
    assert abs(counters["door"].inferred - counters["yard"].inferred) <= 0.10 * counters["door"].inferred
    assert max(max(w) for w in waits.values()) <= 2


def test_every_frame_of_files_is_inferred_and_the_files_interleave():
    served, shared, waits = simulate({}, service_s=0.01, duration_s=10, files=("a", "b", "c", "d"))
    counters = shared.counters()
    inferred = [c.inferred for c in counters.values()]
    assert min(inferred) >= 0.9 * max(inferred), inferred
    assert all(c.dropped == 0 for c in counters.values())
    for name in "abcd":  # each file in order, none skipped
        times = [t for n, t, _ in served if n == name]
        assert times == sorted(times)
    assert max(max(w) for w in waits.values()) <= 3


def test_a_camera_beside_a_file_is_not_starved_by_its_backlog():
    served, shared, waits = simulate({"cam": 30.0}, service_s=0.02, duration_s=20, files=("clip",))
    shares = Counter(name for name, _, _ in served)
    assert abs(shares["cam"] - shares["clip"]) <= 0.10 * shares["clip"], shares
    assert max(waits["cam"]) <= 1


def test_the_staleness_is_the_age_of_the_newest_inferred_frame():
    shared = SharedFrames()
    lane = shared.lane("door", "latest", lambda r, f: None)
    assert shared.counters()["door"].staleness(5.0) is None
    lane.put((frame(0, 1.0), None, 0.0))
    item = shared.get(timeout=0)
    shared.deliver(None, item[0])
    assert shared.counters()["door"].staleness(1.25) == pytest.approx(0.25)


def test_two_lanes_may_not_share_a_name():
    shared = SharedFrames()
    shared.lane("door", "latest", lambda r, f: None)
    with pytest.raises(ValueError, match="door"):
        shared.lane("door", "every_frame", lambda r, f: None)


class TaggingClassifier:
    """Classifies a frame into its (camera tag, index), slowly enough that the lanes fill up."""

    def __init__(self):
        self.calls = 0

    def classify_prepared(self, tensor, frame, preprocess_ms):
        self.calls += 1
        threading.Event().wait(0.001)
        return (tensor, frame.index)


def test_one_stage_serves_three_cameras_and_each_gets_its_own_results_in_order():
    shared = SharedFrames()
    got = {name: [] for name in ("a", "b", "c")}
    ended = Counter()
    lanes = {name: shared.lane(name, "every_frame", lambda r, f, n=name: got[n].append(r),
                               on_end=lambda n=name: ended.update([n])) for name in got}
    stop = threading.Event()
    stage_ended = threading.Event()
    stage = InferenceStage(TaggingClassifier(), shared, shared.deliver, stop,
                           on_end=lambda: (shared.end_all(), stage_ended.set()))
    stage.start()
    counts = {"a": 40, "b": 25, "c": 60}

    def feed(name):
        for i in range(counts[name]):
            lanes[name].put((frame(i, float(i)), name, 0.0), stop)
        lanes[name].close()

    feeders = [threading.Thread(target=feed, args=(n,)) for n in got]
    for t in feeders:
        t.start()
    for t in feeders:
        t.join(10)
    assert stage_ended.wait(10)
    assert stage.error is None
    for name, results in got.items():
        assert results == [(name, i) for i in range(counts[name])]
    assert ended == Counter({"a": 1, "b": 1, "c": 1})  # each camera's end said once, after its last result
    assert shared.ended


def test_a_lane_that_ends_early_says_so_while_the_others_go_on():
    shared = SharedFrames()
    ended = []
    a = shared.lane("a", "every_frame", lambda r, f: None, on_end=lambda: ended.append("a"))
    b = shared.lane("b", "every_frame", lambda r, f: None, on_end=lambda: ended.append("b"))
    a.put((frame(0, 0.0), None, 0.0))
    a.close()
    b.put((frame(0, 0.5), None, 0.0))
    item = shared.get(timeout=0)
    assert ended == []  # a's frame is in flight: not ended yet
    shared.deliver(None, item[0])
    assert ended == ["a"]
    item = shared.get(timeout=0)
    shared.deliver(None, item[0])
    assert ended == ["a"] and not shared.ended
    b.close()
    assert shared.get(timeout=0) is None and ended == ["a", "b"] and shared.ended


def test_a_camera_back_from_a_stall_gets_its_turn_at_once_but_no_burst():
    shared = SharedFrames()
    lanes = {n: shared.lane(n, "latest", lambda r, f: None) for n in ("a", "b", "c")}
    t = 0.0

    def serve(rounds: int, feed: tuple) -> Counter:
        nonlocal t
        got = Counter()
        for _ in range(rounds):
            t += 0.01
            for n in feed:
                lanes[n].put((frame(int(t * 100), t), None, 0.0))
            item = shared.get(timeout=0)
            got[shared._owner[id(item[0])].name] += 1
            shared.deliver(None, item[0])
        return got

    assert serve(200, ("a", "b")) == Counter({"a": 100, "b": 100})  # c stalled: a and b share
    back = serve(3, ("a", "b", "c"))
    assert back["c"] == 1  # served within one turn of the others
    after = serve(60, ("a", "b", "c"))
    assert after == Counter({"a": 20, "b": 20, "c": 20})  # no catching up on the 200 frames it missed
