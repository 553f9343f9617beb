"""The real-time pipeline with a slow fake model and fast fake cameras: drops, order, failures, stop."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time

import numpy as np
import pytest

from edgecam.config.schema import SmoothingConfig
from edgecam.errors import ModelError, NetworkError, SourceError
from edgecam.camera.frame import Frame
from edgecam.model.calibration import Plan
from edgecam.pipeline.live import LiveHolder, LiveSettings
from edgecam.pipeline.loop import OutputQueue, Pipeline, PipelineOptions
from edgecam.result import Classification
from edgecam.outputs import FanOut
from edgecam.outputs.base import Sink
from tests.doubles import FakeCamera

RUN_TIMEOUT_S = 30.0  # "no hang" bound, far above any run here; not a speed requirement
LABELS = ["background", "cat", "dog", "bird", "fish"]


class SlowClassifier:
    """Stands in for edgecam.model.classifier.Classifier: same calls, real Classification results.

    The top class of frame i is ``LABELS[1 + i % 4]`` with score 0.8. ``fail_at``: raise
    ``error`` when classifying that frame index or a later one.
    """

    name = "fake-model"
    runtime = "fake"
    input_size = (8, 8)

    def __init__(self, delay_s: float = 0.03, fail_at: int | None = None, error: BaseException | None = None):
        self.labels = list(LABELS)
        self.delay_s = delay_s
        self.fail_at = fail_at
        self.error = error or RuntimeError("interpreter exploded")
        self.prepared = 0

    def prepare(self, frame: Frame):
        self.prepared += 1
        return ("tensor", frame.index)

    def classify_prepared(self, tensor, frame: Frame, preprocess_ms: float) -> Classification:
        assert tensor == ("tensor", frame.index)  # the tensor prepared from this very frame
        t0 = time.perf_counter()
        time.sleep(self.delay_s)
        if self.fail_at is not None and frame.index >= self.fail_at:
            raise self.error
        scores = np.full(len(self.labels), 0.05, np.float32)
        scores[1 + frame.index % 4] = 0.8
        return Classification(scores=scores, labels=self.labels, model=self.name, frame_index=frame.index,
                              capture_time=frame.timestamp, wall_time=frame.wall_time,
                              result_time=time.monotonic(), inference_ms=(time.perf_counter() - t0) * 1000,
                              preprocess_ms=preprocess_ms)


class RecordingSink(Sink):
    """Remembers what it was given; can raise on its n-th result."""

    def __init__(self, name: str = "rec", wants_frames: bool = True, fail_on_result: int | None = None):
        self.name = name
        self.wants_frames = wants_frames
        self.fail_on_result = fail_on_result
        self.results: list[Classification] = []
        self.frames: list[tuple[int, np.ndarray | None, Classification | None]] = []
        self.calls: list[tuple[str, int]] = []
        self.events: list[dict] = []
        self.closed = 0
        self.got = threading.Condition()

    def on_result(self, result):
        if self.fail_on_result is not None and len(self.results) + 1 >= self.fail_on_result:
            raise RuntimeError(f"{self.name} is broken")
        with self.got:
            self.results.append(result)
            self.calls.append(("result", result.frame_index))
            self.got.notify_all()

    def on_frame(self, frame, annotated, result):
        self.frames.append((frame.index, annotated, result))
        self.calls.append(("frame", frame.index))

    def on_event(self, event):
        self.events.append(event)

    def close(self):
        self.closed += 1

    def wait_results(self, n: int, timeout: float = RUN_TIMEOUT_S) -> bool:
        with self.got:
            return self.got.wait_for(lambda: len(self.results) >= n, timeout)


def make_pipeline(classifier, source, sinks, policy, *, rules=None, layout=None, calibration=None,
                  **kw) -> Pipeline:
    """A started fan-out of ``sinks`` and a pipeline on it; ``kw``: PipelineOptions fields and Pipeline's own."""
    outputs = FanOut(sinks)
    outputs.start()
    fields = {f.name for f in dataclasses.fields(PipelineOptions)}
    options = PipelineOptions(policy=policy, **{k: v for k, v in kw.items() if k in fields})
    live = LiveHolder(LiveSettings(smoothing=SmoothingConfig(), rules=rules if rules is not None and rules.active
                                   else None))
    plan = None
    if calibration is not None:
        plan = Plan(calibration.layout, "measuring", calibration=calibration)
    elif layout is not None:
        plan = Plan(layout, "explicit")
    return Pipeline(classifier, source, outputs, options, live=live, plan=plan,
                    **{k: v for k, v in kw.items() if k not in fields})


def run(p: Pipeline, timeout: float = RUN_TIMEOUT_S) -> int:
    """p.run() in a thread, so that a hang fails the test instead of blocking the suite."""
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("code", p.run()), name="test-run", daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        p.stop()
        t.join(5)
        pytest.fail(f"Pipeline.run() did not return within {timeout:.0f} s")
    assert not p._capture.is_alive() and not p._inference.is_alive(), "pipeline threads outlived run()"
    return out["code"]


def increasing(values) -> bool:
    return all(a < b for a, b in zip(values, values[1:]))


def test_latest_policy_drops_frames_the_slow_model_cannot_take():
    cam = FakeCamera(fps=200, frames=100)
    sink = RecordingSink()
    p = make_pipeline(SlowClassifier(0.03), cam, [sink], "latest")
    assert run(p) == 0
    s = p.stats.snapshot()
    assert s["frames_captured"] == 100
    assert s["frames_dropped"] > 0
    # Every captured frame was either classified or counted as dropped (the last may be in flight).
    assert 0 <= s["frames_captured"] - s["frames_inferred"] - s["frames_dropped"] <= 1
    assert s["frames_inferred"] < 100
    # The results logged are exactly the ones made, newest frames only, in order.
    assert len(sink.results) == s["frames_inferred"]
    assert increasing([r.frame_index for r in sink.results])
    # The display still gets every captured frame, less any the output loop shed when behind.
    assert s["frames_output"] + p._out.dropped == s["frames_captured"]
    assert len(sink.frames) == s["frames_output"]
    assert increasing([i for i, _, _ in sink.frames])
    assert all(a is not None and a.shape == (48, 64, 3) for _, a, _ in sink.frames)  # overlay drawn
    assert s["source_state"] == "ended" and cam.closed.is_set() and sink.closed == 1


def test_every_frame_policy_classifies_each_frame_in_order():
    cam = FakeCamera(fps=0, frames=40, live=False)
    sink = RecordingSink()
    clf = SlowClassifier(0.005)
    p = make_pipeline(clf, cam, [sink], "every_frame")
    assert run(p) == 0
    s = p.stats.snapshot()
    assert s["frames_dropped"] == 0
    assert s["frames_captured"] == s["frames_inferred"] == s["frames_output"] == 40
    assert [r.frame_index for r in sink.results] == list(range(40))
    assert [i for i, _, _ in sink.frames] == list(range(40))
    # Each frame travels with its own result, the result first.
    assert all(r is not None and r.frame_index == i for i, _, r in sink.frames)
    assert sink.calls == [c for i in range(40) for c in (("result", i), ("frame", i))]
    assert all(r.top.name == LABELS[1 + r.frame_index % 4] for r in sink.results)


def test_source_failing_without_reopen_ends_the_run_with_exit_3(caplog):
    caplog.set_level(logging.ERROR)
    cam = FakeCamera(fps=200, fail_after=20)
    sink = RecordingSink()
    p = make_pipeline(SlowClassifier(0.01), cam, [sink], "latest")
    assert run(p) == SourceError.exit_code == 3
    assert isinstance(p.error, SourceError)
    assert any("stopped delivering frames" in r.getMessage() for r in caplog.records)
    assert p.stats.frames_captured == 20 and cam.closed.is_set() and sink.closed == 1


@pytest.mark.parametrize("policy", ["latest", "every_frame"])
def test_classifier_crash_ends_the_run_with_exit_1(policy, caplog):
    caplog.set_level(logging.ERROR)
    cam = FakeCamera(fps=200 if policy == "latest" else 0, live=policy == "latest")
    sink = RecordingSink()
    p = make_pipeline(SlowClassifier(0.01, fail_at=5), cam, [sink], policy)
    assert run(p) == 1
    assert isinstance(p.error, RuntimeError)
    failed = [r for r in caplog.records if "inference thread failed" in r.getMessage()]
    assert len(failed) == 1 and failed[0].exc_info is not None  # a bug: logged with its traceback
    got = [r.frame_index for r in sink.results]
    if policy == "every_frame":
        assert got == list(range(5))  # every frame before the crash made it out
    else:
        assert got and all(i < 5 for i in got)
    assert cam.closed.is_set() and sink.closed == 1


def test_user_error_from_the_model_keeps_its_exit_code(caplog):
    caplog.set_level(logging.ERROR)
    err = ModelError("model.tflite: the interpreter lost its delegate; reinstall ai-edge-litert")
    p = make_pipeline(SlowClassifier(0.0, fail_at=2, error=err), FakeCamera(fps=0, frames=10, live=False),
                      [RecordingSink()], "every_frame")
    assert run(p) == 2
    lines = [r for r in caplog.records if "lost its delegate" in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is None


def test_a_failing_sink_is_switched_off_and_the_others_go_on(caplog):
    caplog.set_level(logging.ERROR)
    good = RecordingSink("good")
    bad = RecordingSink("bad", fail_on_result=3)
    p = make_pipeline(SlowClassifier(0.002), FakeCamera(fps=0, frames=30, live=False), [bad, good], "every_frame")
    assert run(p) == 0
    assert len(bad.results) == 2 and bad.closed >= 1
    assert [r.frame_index for r in good.results] == list(range(30))
    assert len(good.frames) == 30
    assert "bad" in p.stats.sink_errors and "good" not in p.stats.sink_errors
    assert sum("switched off" in r.getMessage() for r in caplog.records) == 1


def test_a_sink_reporting_a_fatal_error_stops_the_run(caplog):
    caplog.set_level(logging.ERROR)
    sink = RecordingSink("mqtt")
    p = make_pipeline(SlowClassifier(0.005), FakeCamera(fps=200), [sink], "latest")
    assert sink.results == []

    def fail_later():
        sink.wait_results(3)
        sink.fatal_error = NetworkError("mqtt: the broker refused the credentials; check mqtt.username")

    threading.Thread(target=fail_later, daemon=True).start()
    assert run(p) == 5
    assert any("refused the credentials" in r.getMessage() for r in caplog.records)


def test_stop_from_another_thread_ends_everything():
    cam = FakeCamera(fps=200)  # never ends by itself
    sink = RecordingSink()
    p = make_pipeline(SlowClassifier(0.01), cam, [sink], "latest")

    def stop_after_results():
        if sink.wait_results(5):
            p.stop()

    stopper = threading.Thread(target=stop_after_results, daemon=True)
    stopper.start()
    assert run(p) == 0
    stopper.join(5)
    assert len(sink.results) >= 5
    assert cam.closed.is_set() and sink.closed == 1
    alive = [t.name for t in (p._capture, p._inference) if t.is_alive()]
    assert alive == []


def test_stall_and_recovery_are_logged_once_each(caplog):
    caplog.set_level(logging.WARNING, logger="edgecam.pipeline.loop")
    cam = FakeCamera(fps=100)
    sink = RecordingSink()
    p = make_pipeline(SlowClassifier(0.0), cam, [sink], "latest", stall_timeout_s=0.2)
    states = []
    p.tickers.append(lambda pipe, now: states.append(pipe.stats.source_state))

    def script():
        sink.wait_results(3)
        cam.flowing.clear()  # the camera hangs
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while "stalled" not in states and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # stay stalled for several more ticks
        n = len(sink.results)
        cam.flowing.set()
        sink.wait_results(n + 3)
        while states[-1] != "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        p.stop()

    threading.Thread(target=script, daemon=True).start()
    assert run(p) == 0
    assert "stalled" in states and states[-1] == "running"
    messages = [r.getMessage() for r in caplog.records]
    assert sum("no frame for" in m for m in messages) == 1
    assert sum("frames flowing again" in m for m in messages) == 1


def test_a_camera_that_never_delivers_is_flagged_stalled(caplog):
    caplog.set_level(logging.WARNING, logger="edgecam.pipeline.loop")
    cam = FakeCamera(fps=100)
    cam.flowing.clear()  # opened, but not one frame comes
    p = make_pipeline(SlowClassifier(0.0), cam, [RecordingSink()], "latest", stall_timeout_s=0.2)
    seen = []

    def on_tick(pipe, now):
        seen.append((pipe.stats.source_state, pipe.stats.frames_captured))
        if pipe.stats.source_state == "stalled":
            pipe.stop()
            cam.flowing.set()  # let the fake's blocked read() return (real sources time out)

    p.tickers.append(on_tick)
    assert run(p) == 0
    assert ("stalled", 0) in seen
    assert sum("no frame for" in r.getMessage() for r in caplog.records) == 1


class SlowStartCamera(FakeCamera):
    """A camera whose first frame takes a while after opening, as real ones do."""

    def __init__(self, warmup_s: float, **kw):
        super().__init__(**kw)
        self.warmup_s = warmup_s

    def read(self):
        if self.count == 0:
            time.sleep(self.warmup_s)
        return super().read()


def test_a_reconnect_restarts_the_stall_clock(caplog):
    caplog.set_level(logging.WARNING)
    first = FakeCamera(fps=100, fail_after=10)
    second = SlowStartCamera(0.2, fps=100)
    attempts = []

    def reopen():
        attempts.append(1)
        if len(attempts) < 4:  # unplugged for four back-off waits, longer than the stall timeout
            raise SourceError("fake-camera: no such device")
        return second

    sink = RecordingSink()
    p = make_pipeline(SlowClassifier(0.0), first, [sink], "latest", stall_timeout_s=0.35, reopen=reopen,
                      reconnect_max_s=0.1)
    states = []
    p.tickers.append(lambda pipe, now: states.append(pipe.stats.source_state))
    p.tickers.append(lambda pipe, now: second.count >= 10 and pipe.stop())
    assert run(p) == 0
    assert p.stats.reconnects == 1 and "reconnecting" in states
    # The old frame time must not count against the new camera while it warms up.
    assert "stalled" not in states
    assert not any("no frame for" in r.getMessage() for r in caplog.records)


def test_no_overlay_work_without_a_frame_sink():
    sink = RecordingSink(wants_frames=False)
    p = make_pipeline(SlowClassifier(0.0), FakeCamera(fps=0, frames=10, live=False), [sink], "every_frame",
                      timings=True)
    assert run(p) == 0
    assert len(sink.results) == 10 and sink.frames == []
    assert len(p.timings.overlay) == 0 and len(p.timings.invoke) == 10


def test_output_queue_sheds_old_frames_never_results():
    q = OutputQueue(max_frames=2)
    q.put_frame("f0")
    q.put_result("r0")
    q.put_frame("f1")
    q.put_frame("f2")  # a third waiting frame: the oldest goes
    q.put_result("r1")
    assert q.dropped == 1
    items = [q.get(0) for _ in range(4)]
    assert [(k, f if k == "frame" else r) for k, f, r in items] == [
        ("result", "r0"), ("frame", "f1"), ("frame", "f2"), ("result", "r1")]
    q.close()
    assert q.ended and q.get(None) is None


class WriterLog:
    """Wraps a Stats instance's attribute writes: which threads wrote each field after construction."""

    @staticmethod
    def watch(stats):
        from collections import defaultdict

        writers = defaultdict(set)

        class Watched(type(stats)):
            def __setattr__(self, name, value):
                writers[name].add(threading.current_thread().name)
                super().__setattr__(name, value)

        stats.__class__ = Watched
        return writers


def test_every_stats_field_has_one_writer_thread_through_a_stall_and_a_reconnect():
    # stats.py promises one writer per field; source_state had two (the capture thread set
    # "reconnecting", the output loop "stalled"), so a stall could overwrite a reconnect.
    from edgecam.stats import Stats

    stats = Stats()
    writers = WriterLog.watch(stats)
    first = FakeCamera(fps=100)
    second = FakeCamera(fps=100)
    sink = RecordingSink()
    p = make_pipeline(SlowClassifier(0.0), first, [sink], "latest", stall_timeout_s=0.2, reopen=lambda: second,
                      reconnect_max_s=0.1, stats=stats)
    states = []
    p.tickers.append(lambda pipe, now: states.append(pipe.stats.source_state))

    def script():
        sink.wait_results(3)
        first.flowing.clear()  # the camera hangs: stalled...
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while "stalled" not in states and time.monotonic() < deadline:
            time.sleep(0.02)
        first.fail_after = 0  # ...then fails: reconnect
        first.flowing.set()
        while (p.stats.reconnects < 1 or second.count < 5 or states[-1] != "running") and time.monotonic() < deadline:
            time.sleep(0.02)
        p.stop()

    threading.Thread(target=script, daemon=True).start()
    assert run(p) == 0
    assert "stalled" in states and p.stats.reconnects == 1
    assert "running" in states[states.index("stalled"):]  # running again after the reconnect
    several = {field: threads for field, threads in writers.items() if len(threads) > 1}
    assert several == {}, f"fields written by more than one thread: {several}"


def test_a_stall_seen_by_the_output_loop_never_hides_a_reconnect():
    # The capture thread says "reconnecting" while the output loop finds the source stalled in
    # the same moment: the state must say reconnecting (the output loop no longer writes it).
    from edgecam.stats import Stats

    cam = FakeCamera(fps=100)
    stats = Stats()
    p = make_pipeline(SlowClassifier(0.0), cam, [RecordingSink()], "latest", stall_timeout_s=0.2, stats=stats)
    stats.capture_state = "running"  # as the capture thread sets it
    p._tick(time.monotonic())  # the output loop starts the stall clock
    stats.capture_state = "reconnecting"  # the capture thread gives up on the source...
    p._tick(time.monotonic() + 1.0)  # ...as the output loop's clock runs out
    assert stats.source_state == "reconnecting"
    cam.close()
    p.outputs.close()
