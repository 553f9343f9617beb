"""The inference stage: two interpreters in flight with results in order, and layout switches in the run."""

from __future__ import annotations

import copy
import logging
import threading
from types import SimpleNamespace

import pytest

from edgecam.model.calibration import Calibration, Layout
from tests.pipeline.test_pipeline import FakeCamera, RecordingSink, SlowClassifier, increasing, make_pipeline, run

L11, L12, L21 = Layout(1, 1), Layout(1, 2), Layout(2, 1)


class LayoutClassifier(SlowClassifier):
    """A SlowClassifier that, like Classifier, can be rebuilt with other threads and replicated.

    All replicas share ``shared``: how many classifications are in flight at
    once (the most seen), and the builds asked for, in order.
    """

    def __init__(self, delay_s: float = 0.01, fail_at: int | None = None):
        super().__init__(delay_s, fail_at)
        self.threads = 1
        self.shared = SimpleNamespace(lock=threading.Lock(), in_flight=0, most=0, builds=[], replicas=0)

    def reconfigure(self, threads: int) -> None:
        self.shared.builds.append(("threads", threads))
        self.threads = threads

    def replica(self):
        self.shared.builds.append(("replica", self.threads))
        twin = copy.copy(self)
        self.shared.replicas += 1
        return twin

    def classify_prepared(self, tensor, frame, preprocess_ms):
        s = self.shared
        with s.lock:
            s.in_flight += 1
            s.most = max(s.most, s.in_flight)
        try:
            return super().classify_prepared(tensor, frame, preprocess_ms)
        finally:
            with s.lock:
                s.in_flight -= 1


def test_two_interpreters_keep_every_frame_in_order():
    clf = LayoutClassifier(0.01)
    sink = RecordingSink()
    p = make_pipeline(clf, FakeCamera(fps=0, frames=60, live=False), [sink], "every_frame", layout=L21)
    assert run(p) == 0
    assert clf.shared.most == 2  # two frames were in flight at once
    assert clf.shared.builds == [("replica", 1)]
    assert [r.frame_index for r in sink.results] == list(range(60))
    assert sink.calls == [c for i in range(60) for c in (("result", i), ("frame", i))]
    assert all(r.frame_index == i for i, _, r in sink.frames)
    s = p.stats.snapshot()
    assert s["frames_captured"] == s["frames_inferred"] == s["frames_output"] == 60


def test_two_interpreters_on_a_camera_never_show_an_older_result_after_a_newer_one():
    clf = LayoutClassifier(0.03)
    sink = RecordingSink()
    p = make_pipeline(clf, FakeCamera(fps=200, frames=100), [sink], "latest", layout=L21)
    assert run(p) == 0
    s = p.stats.snapshot()
    assert clf.shared.most == 2
    assert s["frames_dropped"] > 0 and 0 <= s["frames_captured"] - s["frames_inferred"] - s["frames_dropped"] <= 2
    assert len(sink.results) == s["frames_inferred"]
    assert increasing([r.frame_index for r in sink.results])


def test_a_crash_in_the_second_interpreter_ends_the_run_once(caplog):
    caplog.set_level(logging.ERROR)
    clf = LayoutClassifier(0.005, fail_at=7)
    sink = RecordingSink()
    p = make_pipeline(clf, FakeCamera(fps=0, frames=50, live=False), [sink], "every_frame", layout=L21)
    assert run(p) == 1
    assert isinstance(p.error, RuntimeError)
    assert sum("inference thread failed" in r.getMessage() for r in caplog.records) == 1
    got = [r.frame_index for r in sink.results]
    assert got == list(range(len(got))) and len(got) <= 7  # in order, nothing from the failed frames on
    assert not any(t.name.startswith("edgecam-inference") and t.is_alive() for t in threading.enumerate())


class ResultClock:
    """Wall and CPU clocks that move by a per-layout cost each time a result is delivered."""

    def __init__(self, cost: dict):
        self.cost = cost
        self.wall = 0.0
        self.cpu = 0.0

    def hook(self, pipeline):
        deliver = pipeline.inference.deliver
        stage = pipeline.inference

        def timed(result, frame):
            wall_ms, cpu_ms = self.cost[stage.layout]
            self.wall += wall_ms / 1000
            self.cpu += cpu_ms / 1000
            deliver(result, frame)

        stage.deliver = timed


@pytest.mark.parametrize("cost, expected", [
    ({L11: (8.1, 6.0), L12: (6.2, 6.9), L21: (7.0, 6.1)}, L12),
    ({L11: (4.0, 4.5), L12: (4.4, 5.5), L21: (2.6, 4.6)}, L21),
    ({L11: (3.5, 4.5), L12: (3.6, 5.5), L21: (3.5, 4.6)}, L11),
])
def test_the_pipeline_measures_each_layout_in_the_run_and_keeps_the_best(cost, expected):
    """Real threads and frames, fake clocks: the choice follows the measurements, not the machine's timing."""
    clf = LayoutClassifier(0.0)
    clocks = ResultClock(cost)
    done = []
    cal = Calibration([L11, L12, L21], "every_frame", clock=lambda: clocks.wall, cpu_clock=lambda: clocks.cpu,
                      on_done=done.append, min_window_s=0)  # windows of 20 results exactly
    sink = RecordingSink()
    frames = cal.frames_needed + 40
    p = make_pipeline(clf, FakeCamera(fps=0, frames=frames, live=False), [sink], "every_frame", calibration=cal)
    clocks.hook(p)
    assert run(p) == 0
    assert done == [cal] and cal.chosen == expected
    assert p.inference.layout == expected and clf.threads == expected.threads
    # Every frame classified once, in order, through all the switches.
    assert [r.frame_index for r in sink.results] == list(range(frames))
    assert {lay: len(ws) for lay, ws in cal.windows.items()} == {L11: 3, L12: 3, L21: 3}
    # Schedule 1x1 1x2 2x1 | 2x1 1x2 1x1 | 1x1 1x2 2x1, then the choice.
    switches = 6 + (expected != L21)
    assert p.inference.switches == switches
    # One replica for each stretch on two interpreters (2x1 twice in a row is one stretch; a 2x1
    # choice goes on with the last one).
    assert clf.shared.replicas == 2


def test_two_interpreters_failing_at_the_same_moment_log_one_error(monkeypatch, caplog):
    # Both threads reach _failed before either has set the error: only one may say so. The first log call
    # waits until the second thread has checked, which is the moment the unlocked check-then-set lost.
    from edgecam.model import inference

    caplog.set_level(logging.ERROR)
    stage = inference.InferenceStage(SlowClassifier(0.0), None, None, threading.Event())
    second_checked = threading.Event()
    real = inference.logger.exception

    def slow_exception(*args, **kwargs):
        second_checked.wait(0.5)
        real(*args, **kwargs)

    monkeypatch.setattr(inference.logger, "exception", slow_exception)
    threads = [threading.Thread(target=stage._failed, args=(RuntimeError(f"interpreter {i}"),)) for i in (1, 2)]
    threads[0].start()
    threads[1].start()
    threads[1].join(0.2)
    second_checked.set()
    for t in threads:
        t.join(5)
    assert sum("inference thread failed" in r.getMessage() for r in caplog.records) == 1
    assert stage.stop.is_set() and str(stage.error).startswith("interpreter")
