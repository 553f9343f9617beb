"""Several cameras' pipelines on one inference stage: one classifier, each camera its own results and its own end."""

from __future__ import annotations

import threading

import pytest

from edgecam.model.scheduler import SharedStage
from tests.pipeline.test_pipeline import FakeCamera, RecordingSink, SlowClassifier, increasing, make_pipeline

RUN_TIMEOUT_S = 30


def run_all(pipelines, stage) -> list[int]:
    """Every camera's output loop in a thread of its own, as the run does; returns their exit codes."""
    codes: dict[int, int] = {}
    threads = [threading.Thread(target=lambda i=i, p=p: codes.setdefault(i, p.run()), name=f"test-camera-{i}",
                                daemon=True) for i, p in enumerate(pipelines)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(RUN_TIMEOUT_S)
    if any(t.is_alive() for t in threads):
        for p in pipelines:
            p.stop()
        pytest.fail("a camera's run did not return")
    stage.thread.join(5)
    assert not stage.thread.is_alive(), "the shared stage outlived every camera"
    return [codes[i] for i in range(len(pipelines))]


class CountingClassifier(SlowClassifier):
    """A SlowClassifier that counts how many frames are in flight at once (one interpreter: never more than 1)."""

    def __init__(self, delay_s: float):
        super().__init__(delay_s)
        self.lock = threading.Lock()
        self.in_flight = self.most = self.calls = 0

    def classify_prepared(self, tensor, frame, preprocess_ms):
        with self.lock:
            self.in_flight += 1
            self.calls += 1
            self.most = max(self.most, self.in_flight)
        try:
            return super().classify_prepared(tensor, frame, preprocess_ms)
        finally:
            with self.lock:
                self.in_flight -= 1


def test_three_files_through_one_interpreter_each_get_every_frame_in_order():
    clf = CountingClassifier(0.002)
    stop = threading.Event()
    stage = SharedStage(clf, stop)
    counts = (30, 45, 20)
    sinks = [RecordingSink(f"cam{i}") for i in range(3)]
    pipelines = [make_pipeline(clf, FakeCamera(fps=0, frames=n, live=False), [sink], "every_frame",
                               stage=stage, camera=f"cam{i}") for i, (n, sink) in enumerate(zip(counts, sinks))]
    assert run_all(pipelines, stage) == [0, 0, 0]
    assert clf.most == 1 and clf.calls == sum(counts)  # one interpreter served all three
    for n, sink, p in zip(counts, sinks, pipelines):
        assert [r.frame_index for r in sink.results] == list(range(n))
        s = p.stats.snapshot()
        assert s["frames_captured"] == s["frames_inferred"] == s["frames_output"] == n
    lanes = stage.frames.counters()
    assert [lanes[f"cam{i}"].inferred for i in range(3)] == list(counts)


def test_cameras_over_the_models_rate_drop_frames_but_share_it_and_stay_in_order():
    clf = CountingClassifier(0.02)  # ~50 frames/s for 3 x 60 offered
    stop = threading.Event()
    stage = SharedStage(clf, stop)
    sinks = [RecordingSink(f"cam{i}") for i in range(3)]
    pipelines = [make_pipeline(clf, FakeCamera(fps=60, frames=120), [sink], "latest", stage=stage,
                               camera=f"cam{i}") for i, sink in enumerate(sinks)]
    assert run_all(pipelines, stage) == [0, 0, 0]
    inferred = [p.stats.snapshot()["frames_inferred"] for p in pipelines]
    assert min(inferred) >= 0.6 * max(inferred), inferred  # real threads and sleeps: a loose bound
    for p, sink in zip(pipelines, sinks):
        s = p.stats.snapshot()
        assert s["frames_dropped"] > 0
        assert increasing([r.frame_index for r in sink.results])


def test_a_failing_model_ends_every_camera_with_its_error():
    clf = SlowClassifier(0.001, fail_at=10)
    stop = threading.Event()
    stage = SharedStage(clf, stop)
    pipelines = [make_pipeline(clf, FakeCamera(fps=0, frames=50, live=False), [RecordingSink()], "every_frame",
                               stage=stage, camera=name) for name in ("a", "b")]
    codes = run_all(pipelines, stage)
    assert codes[0] == codes[1] != 0
    assert all(p.exit_code() == codes[0] for p in pipelines)
    assert "exploded" in str(stage.error)


def test_a_camera_that_ends_early_leaves_the_others_running():
    clf = SlowClassifier(0.002)
    stop = threading.Event()
    stage = SharedStage(clf, stop)
    short, long_ = RecordingSink("short"), RecordingSink("long")
    pipelines = [make_pipeline(clf, FakeCamera(fps=0, frames=5, live=False), [short], "every_frame", stage=stage,
                               camera="short"),
                 make_pipeline(clf, FakeCamera(fps=0, frames=80, live=False), [long_], "every_frame", stage=stage,
                               camera="long")]
    assert run_all(pipelines, stage) == [0, 0]
    assert len(short.results) == 5 and len(long_.results) == 80
