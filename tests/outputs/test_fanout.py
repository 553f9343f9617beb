"""FanOut: one failing output never stops the others."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from edgecam.errors import OutputError
from edgecam.camera.frame import Frame
from edgecam.result import Classification
from edgecam.outputs import FanOut
from edgecam.outputs.base import Sink
from edgecam.stats import Stats


class Probe(Sink):
    def __init__(self, name, wants_frames=False, fail_in=None, fail_close=False):
        self.name = name
        self.wants_frames = wants_frames
        self.fail_in = fail_in or set()
        self.fail_close = fail_close
        self.calls = []

    def _call(self, method):
        self.calls.append(method)
        if method in self.fail_in:
            raise (OutputError if method == "start" else ValueError)(f"{self.name} broke in {method}")

    def start(self):
        self._call("start")

    def on_result(self, result):
        self._call("on_result")

    def on_frame(self, frame, annotated, result):
        self._call("on_frame")

    def on_event(self, event):
        self._call("on_event")

    def close(self):
        self.calls.append("close")
        if self.fail_close:
            raise OSError("flush failed")


FRAME = Frame(image=np.zeros((4, 4, 3), np.uint8), index=0, timestamp=0.0, wall_time=0.0)
RESULT = Classification(scores=np.array([0.2, 0.8], np.float32), labels=["a", "b"])


def drive(fan: FanOut, n: int = 3):
    for _ in range(n):
        fan.on_result(RESULT)
        fan.on_frame(FRAME, None, RESULT)
        fan.on_event({"label": "b"})


@pytest.mark.parametrize("method", ["on_result", "on_frame", "on_event"])
def test_a_raising_sink_is_switched_off_once_and_the_others_go_on(method, caplog):
    caplog.set_level(logging.ERROR)
    stats = Stats()
    bad = Probe("bad", wants_frames=True, fail_in={method})
    good = Probe("good", wants_frames=True)
    fan = FanOut([bad, good], stats)
    fan.start()
    drive(fan)
    assert good.calls == ["start"] + ["on_result", "on_frame", "on_event"] * 3
    assert bad.calls.count(method) == 1 and bad.calls[-1] == "close"  # closed when switched off, never called again
    assert fan.sinks == [good]
    assert stats.sink_errors == {"bad": f"ValueError: bad broke in {method}"}
    assert sum("switched off" in r.getMessage() for r in caplog.records) == 1
    fan.close()
    assert bad.calls.count("close") == 1  # not closed twice
    assert good.calls[-1] == "close"


def test_wants_frames_follows_the_sinks_left():
    frames = Probe("window", wants_frames=True, fail_in={"on_frame"})
    log = Probe("log")
    fan = FanOut([frames, log])
    assert fan.wants_frames
    fan.on_frame(FRAME, None, RESULT)
    assert not fan.wants_frames  # no one left to draw the overlay for


def test_start_failure_closes_the_sinks_already_started():
    first, second, third = Probe("first"), Probe("second", fail_in={"start"}), Probe("third")
    fan = FanOut([first, second, third])
    with pytest.raises(OutputError, match="second broke in start"):
        fan.start()
    assert first.calls == ["start", "close"]
    assert second.calls == ["start"] and third.calls == []


def test_close_goes_on_after_a_failing_close(caplog):
    caplog.set_level(logging.ERROR)
    a, b = Probe("a", fail_close=True), Probe("b")
    fan = FanOut([a, b])
    fan.close()
    assert a.calls == ["close"] and b.calls == ["close"]
    assert any("a failed to close" in r.getMessage() for r in caplog.records)


class Recorder(Sink):
    """A recording that cannot encode at the first frame (as RecordSink does for a size its codec refuses)."""

    name = "record"
    wants_frames = True

    def on_frame(self, frame, annotated, result):
        raise OutputError("record out.mp4: OpenCV cannot encode 'mp4v' at 4x4; try record.fourcc: MJPG")


def test_a_user_facing_error_switches_the_output_off_in_one_line_and_is_the_runs_failure(caplog):
    # issue 9 #2: a recording that failed was a traceback in the log and exit 0.
    caplog.set_level(logging.ERROR)
    other = Probe("log")
    fan = FanOut([Recorder(), other])
    fan.start()
    drive(fan)
    fan.close()
    (record,) = [r for r in caplog.records if "record" in r.getMessage()]
    assert record.exc_info is None and "switched off: record out.mp4: OpenCV cannot encode" in record.getMessage()
    assert fan.failure is not None and fan.failure.exit_code == 4
    assert other.calls.count("on_result") == 3  # the others went on


def test_a_failed_output_gives_the_pipeline_its_exit_code():
    from edgecam.pipeline.loop import Pipeline, PipelineOptions
    from tests.pipeline.test_pipeline import FakeCamera, SlowClassifier, run

    fan = FanOut([Recorder()])
    fan.start()
    p = Pipeline(SlowClassifier(0.0), FakeCamera(fps=0, frames=5, live=False), fan,
                 PipelineOptions(policy="every_frame"))
    assert run(p) == 4  # the file ended normally, but the recording asked for was lost
