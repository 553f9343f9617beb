"""FrameBuffer drop policies and the capture thread's recovery, with fake sources (no camera needed)."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest

from edgecam.camera.capture import CaptureThread, FrameBuffer
from edgecam.errors import SourceError
from edgecam.camera.frame import Frame
from edgecam.stats import Stats
from tests.doubles import FakeCamera

# The capture tests read as fast as they can, frames of 6x4.
UNPACED = {"pace": False, "size": (6, 4)}

JOIN_S = 10.0  # a generous bound for "the thread ended", not a speed requirement


def make_frame(i: int) -> Frame:
    return Frame(image=np.full((4, 6, 3), i % 256, np.uint8), index=i, timestamp=time.monotonic(),
                 wall_time=time.time())


def start_thread(target, *args) -> tuple[threading.Thread, dict]:
    out = {}

    def run():
        out["value"] = target(*args)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


# -- FrameBuffer ---------------------------------------------------------------


def test_latest_keeps_only_the_newest_and_counts_the_replaced():
    buf = FrameBuffer("latest")
    assert buf.capacity == 1
    dropped = [buf.put(make_frame(i)) for i in range(5)]
    assert dropped == [0, 1, 1, 1, 1]
    assert buf.get(timeout=0).index == 4
    assert buf.get(timeout=0.01) is None  # nothing older survived
    assert buf.put(make_frame(5)) == 0  # it was read: nothing dropped


def test_every_frame_blocks_the_writer_and_keeps_order():
    buf = FrameBuffer("every_frame", capacity=2)
    assert buf.put(make_frame(0)) == 0 and buf.put(make_frame(1)) == 0
    writer, _ = start_thread(buf.put, make_frame(2))
    writer.join(0.3)
    assert writer.is_alive(), "put() into a full every_frame buffer must wait for the reader"
    assert buf.get(timeout=1).index == 0
    writer.join(JOIN_S)
    assert not writer.is_alive()
    assert [buf.get(timeout=1).index for _ in range(2)] == [1, 2]


def test_every_frame_producer_consumer_loses_nothing():
    buf = FrameBuffer("every_frame", capacity=3)
    n = 200

    def produce():
        drops = sum(buf.put(make_frame(i)) for i in range(n))
        buf.close()
        return drops

    producer, out = start_thread(produce)
    got = []
    while (item := buf.get(timeout=5)) is not None:
        got.append(item.index)
    producer.join(JOIN_S)
    assert got == list(range(n))
    assert out["value"] == 0


def test_close_drains_then_ends():
    buf = FrameBuffer("every_frame", capacity=4)
    buf.put(make_frame(0))
    buf.put(make_frame(1))
    buf.close()
    assert not buf.ended  # closed, but frames still waiting
    assert buf.put(make_frame(2)) == 0  # refused after close
    assert [buf.get(timeout=0).index, buf.get(timeout=0).index] == [0, 1]
    assert buf.ended
    assert buf.get(timeout=None) is None  # returns at once: no wait on a closed buffer


def test_close_wakes_a_blocked_reader_and_a_blocked_writer():
    buf = FrameBuffer("every_frame", capacity=1)
    reader, out = start_thread(buf.get, None)  # waits forever for a frame
    reader.join(0.2)
    assert reader.is_alive()
    buf.close()
    reader.join(JOIN_S)
    assert not reader.is_alive() and out["value"] is None

    full = FrameBuffer("every_frame", capacity=1)
    full.put(make_frame(0))
    writer, out = start_thread(full.put, make_frame(1))
    writer.join(0.2)
    assert writer.is_alive()
    full.close()
    writer.join(JOIN_S)
    assert not writer.is_alive() and out["value"] == 0
    assert full.get(timeout=0).index == 0 and full.get(timeout=0) is None  # frame 1 was not added


def test_stop_event_releases_a_blocked_writer():
    buf = FrameBuffer("every_frame", capacity=1)
    buf.put(make_frame(0))
    stop = threading.Event()
    writer, out = start_thread(buf.put, make_frame(1), stop)
    writer.join(0.2)
    assert writer.is_alive()
    stop.set()
    writer.join(JOIN_S)
    assert not writer.is_alive() and out["value"] == 0


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="newest"):
        FrameBuffer("newest")


# -- CaptureThread -----------------------------------------------------------------


class FastForwardEvent(threading.Event):
    """A stop event whose first ``fast`` timed waits return at once (recording the timeout):
    back-off schedules can then be checked without sleeping through them. Later waits are real."""

    def __init__(self, fast: int = 10**9):
        super().__init__()
        self.fast = fast
        self.waits: list[float] = []
        self.waiting = threading.Event()  # set while a real (slow) wait is in progress

    def wait(self, timeout=None):
        if timeout is None:
            return super().wait()
        self.waits.append(timeout)
        if len(self.waits) <= self.fast:
            return self.is_set()
        self.waiting.set()
        return super().wait(timeout)


class Collector:
    """A consumer that stops the run after ``limit`` frames."""

    def __init__(self, stop: threading.Event, limit: int):
        self.frames: list[Frame] = []
        self.stop = stop
        self.limit = limit

    def __call__(self, frame):
        self.frames.append(frame)
        if len(self.frames) >= self.limit:
            self.stop.set()


def test_recovers_after_failed_reopens_with_increasing_indexes(caplog):
    caplog.set_level(logging.INFO, logger="edgecam.camera.capture")
    stop = FastForwardEvent()
    stats = Stats()
    first = FakeCamera("cam-a", fail_after=5, **UNPACED)
    attempts = []
    second = FakeCamera("cam-b", **UNPACED)

    def reopen():
        attempts.append(len(attempts))
        if len(attempts) <= 2:
            raise SourceError("/dev/video0: no such device")  # the same failure twice
        return second

    collect = Collector(stop, limit=12)
    ended = []
    t = CaptureThread(first, [collect], stats, stop, reopen=reopen, reconnect_max_s=1.5,
                      on_end=lambda: ended.append(True))
    t.start()
    t.join(JOIN_S)
    assert not t.is_alive()
    assert t.error is None
    assert [f.index for f in collect.frames] == list(range(12))  # no restart at 0 after the reconnect
    assert stats.frames_captured == 12
    assert stats.reconnects == 1 and len(attempts) == 3
    assert stats.source_state == "running"
    assert first.close_count >= 1 and second.close_count == 1  # the failed one released, the new one closed at the end
    assert ended == [True]
    # Exponential back-off from 0.5 s, capped by reconnect_max_s, slept on the stop event.
    assert stop.waits == [0.5, 1.0, 1.5]

    messages = [r.getMessage() for r in caplog.records if r.name == "edgecam.camera.capture"]
    assert sum("reconnecting" in m for m in messages) == 1
    assert sum("still cannot reopen" in m for m in messages) == 1  # not once per attempt
    assert sum("reconnected" in m for m in messages) == 1


def test_a_camera_that_reopens_but_never_delivers_keeps_backing_off(caplog):
    """Reopening works but no frame comes (a hung sensor): the back-off keeps growing across
    recoveries instead of starting at 0.5 s each time, and "reconnected" waits for a real frame."""
    caplog.set_level(logging.INFO, logger="edgecam.camera.capture")
    stop = FastForwardEvent()
    stats = Stats()
    reopened = []
    good = FakeCamera("cam-good")

    def reopen():
        reopened.append(1)
        return good if len(reopened) > 4 else FakeCamera("cam-silent", fail_after=0)

    collect = Collector(stop, limit=3)
    t = CaptureThread(FakeCamera("cam-a", fail_after=1), [collect], stats, stop, reopen=reopen, reconnect_max_s=4)
    t.start()
    t.join(JOIN_S)
    assert not t.is_alive() and t.error is None
    assert stop.waits == [0.5, 1.0, 2.0, 4.0, 4.0]  # one wait per recovery, growing to the ceiling
    assert [f.index for f in collect.frames] == [0, 1, 2]
    messages = [r.getMessage() for r in caplog.records if r.name == "edgecam.camera.capture"]
    assert sum("reopened" in m for m in messages) == 5
    reconnected = [m for m in messages if "reconnected" in m]
    assert len(reconnected) == 1 and "cam-good" in reconnected[0]  # only once frames came


def test_distinct_reopen_failures_are_each_logged(caplog):
    caplog.set_level(logging.WARNING, logger="edgecam.camera.capture")
    stop = FastForwardEvent()
    errors = iter(["busy", "busy", "permission denied"])

    def reopen():
        msg = next(errors, None)
        if msg:
            raise SourceError(msg)
        return FakeCamera("cam-b", **UNPACED)

    collect = Collector(stop, limit=3)
    t = CaptureThread(FakeCamera("fake-cam", fail_after=1, **UNPACED), [collect], Stats(), stop, reopen=reopen)
    t.start()
    t.join(JOIN_S)
    still = [r.getMessage() for r in caplog.records if "still cannot reopen" in r.getMessage()]
    assert len(still) == 2 and "busy" in still[0] and "permission denied" in still[1]


def test_backoff_never_exceeds_its_ceiling():
    stop = FastForwardEvent()
    calls = []

    def reopen():
        calls.append(1)
        if len(calls) < 6:
            raise SourceError("gone")
        return FakeCamera("fake-cam", **UNPACED)

    t = CaptureThread(FakeCamera("fake-cam", fail_after=0, **UNPACED), [Collector(stop, 1)], Stats(), stop, reopen=reopen,
                      reconnect_max_s=0.2)
    t.start()
    t.join(JOIN_S)
    assert len(stop.waits) == 6
    assert max(stop.waits) <= 0.2


def test_stop_during_backoff_returns_promptly():
    # Five instant waits grow the back-off to 16 s; the sixth is a real wait that stop() must cut short.
    stop = FastForwardEvent(fast=5)
    stats = Stats()
    calls = []

    def reopen():
        calls.append(1)
        raise SourceError("still unplugged")

    t = CaptureThread(FakeCamera("fake-cam", fail_after=0, **UNPACED), [], stats, stop, reopen=reopen, reconnect_max_s=3600)
    t.start()
    assert stop.waiting.wait(JOIN_S), "the capture thread never reached its back-off wait"
    assert stop.waits[-1] >= 16
    stop.set()
    t.join(5.0)  # far below the 16 s back-off
    assert not t.is_alive()
    assert len(calls) == 5  # no further attempt after stop
    assert t.error is None
    assert stats.source_state == "reconnecting"


def test_failure_without_reopen_ends_with_the_error(caplog):
    caplog.set_level(logging.ERROR, logger="edgecam.camera.capture")
    stop = threading.Event()
    stats = Stats()
    cam = FakeCamera("fake-cam", fail_after=3, **UNPACED)
    frames = []
    ended = []
    t = CaptureThread(cam, [frames.append], stats, stop, on_end=lambda: ended.append(True))
    t.start()
    t.join(JOIN_S)
    assert isinstance(t.error, SourceError)
    assert stop.is_set()  # the rest of the pipeline is told
    assert len(frames) == 3 and cam.close_count == 1 and ended == [True]
    assert stats.source_state == "failed"
    (record,) = [r for r in caplog.records if "stopped delivering" in r.getMessage()]
    assert record.exc_info is None  # a user-facing error: one line, no traceback


def test_finite_source_ends_cleanly():
    stop = threading.Event()
    stats = Stats()
    cam = FakeCamera("fake-cam", frames=4, **UNPACED)
    cam.live = False
    frames = []
    t = CaptureThread(cam, [frames.append], stats, stop, reopen=lambda: pytest.fail("must not reopen a file"))
    t.start()
    t.join(JOIN_S)
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert stats.source_state == "ended" and t.error is None and cam.close_count == 1
    assert not stop.is_set()


def test_live_source_that_ends_is_reopened():
    stop = FastForwardEvent()
    second = FakeCamera("cam-b", **UNPACED)
    stats = Stats()
    collect = Collector(stop, limit=6)
    t = CaptureThread(FakeCamera("cam-a", frames=2, **UNPACED), [collect], stats, stop, reopen=lambda: second)
    t.start()
    t.join(JOIN_S)
    assert [f.index for f in collect.frames] == list(range(6))
    assert stats.reconnects == 1 and second.count == 4


def test_index_gaps_of_a_source_that_skips_are_kept():
    # frame.py promises "gaps show drops": a camera that skipped sensor frames keeps its numbers.
    stop = threading.Event()
    cam = FakeCamera("fake-cam", frames=5, index_step=3, **UNPACED)  # the source says 0, 3, 6, ...
    frames = []
    t = CaptureThread(cam, [frames.append], Stats(), stop)
    t.start()
    t.join(JOIN_S)
    assert [f.index for f in frames] == [0, 3, 6, 9, 12]


def test_a_reopened_source_that_skips_continues_after_the_last_number():
    stop = FastForwardEvent()
    second = FakeCamera("cam-b", index_step=2, **UNPACED)  # 0, 2, 4, ... again from 0
    collect = Collector(stop, limit=7)
    t = CaptureThread(FakeCamera("cam-a", fail_after=3, index_step=5, **UNPACED), [collect], Stats(), stop,
                      reopen=lambda: second)
    t.start()
    t.join(JOIN_S)
    assert [f.index for f in collect.frames] == [0, 5, 10, 11, 13, 15, 17]


def test_consumer_exception_stops_the_run(caplog):
    caplog.set_level(logging.ERROR, logger="edgecam.camera.capture")
    stop = threading.Event()

    def broken(frame):
        raise RuntimeError("consumer bug")

    cam = FakeCamera("fake-cam", **UNPACED)
    t = CaptureThread(cam, [broken], Stats(), stop)
    t.start()
    t.join(JOIN_S)
    assert isinstance(t.error, RuntimeError) and stop.is_set() and cam.close_count == 1
    assert any(r.exc_info for r in caplog.records)  # an unexpected bug keeps its traceback in the log
