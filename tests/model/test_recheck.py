"""threads: auto after the choice: a throughput that falls for a while makes the run measure the layouts again.

On fake clocks: the "machine" runs each layout at a cost the test sets, and
the test makes another process take a core by changing those costs.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from edgecam.config.schema import ModelConfig
from edgecam.model import calibration
from edgecam.model.calibration import Calibration, Layout
from edgecam.model.recheck import Recheck
from tests.model.test_calibration import FakeClocks

L11, L12, L21, L31 = Layout(1, 1), Layout(1, 2), Layout(2, 1), Layout(3, 1)


def feed(watch, clocks: FakeClocks, cost: dict, seconds: float) -> list:
    """Results as a stage running ``watch.layout`` at ``cost[layout]`` ms each would give, for ``seconds``;
    returns the layouts switched to."""
    switches, index, end = [], 0, clocks.wall + seconds
    while clocks.wall < end:
        ms = cost[watch.layout]
        clocks.wall += ms / 1000
        clocks.cpu += ms / 1000
        index += 1
        switch = watch.observe(SimpleNamespace(frame_index=index, latency_ms=ms + 1.0))
        if switch is not None:
            switches.append(switch)
    return switches


def new_watch(clocks, cost=None, **kw):
    def new_cal():
        return Calibration([L11, L12, L21], "every_frame", clock=clocks.clock, cpu_clock=clocks.cpu_clock)

    return Recheck(new_cal(), L11, None, new_cal, clock=clocks.clock, **kw)


def test_a_core_taken_by_another_process_makes_it_measure_again_and_keep_the_better_layout(caplog):
    caplog.set_level(logging.WARNING)
    clocks = FakeClocks()
    watch = new_watch(clocks)
    quiet = {L11: 8.0, L12: 5.0, L21: 5.5}  # two free cores: 1x2 is best
    feed(watch, clocks, quiet, 30)
    assert watch.done and watch.current == L12 and watch.expected_fps == pytest.approx(200, rel=0.01)
    assert feed(watch, clocks, quiet, 120) == [] and watch.rechecks == 0  # steady: nothing measured again
    busy = {L11: 9.0, L12: 14.0, L21: 12.0}  # a core taken: two threads now wait on each other
    switches = feed(watch, clocks, busy, 35)  # three slow windows of 10 s
    assert watch.rechecks == 1 and switches and "measuring the layouts again" in caplog.text
    feed(watch, clocks, busy, 60)
    assert watch.done and watch.current == L11  # the better one under the new conditions


def test_a_short_dip_is_not_a_reason_to_measure(caplog):
    clocks = FakeClocks()
    watch = new_watch(clocks)
    quiet = {L11: 8.0, L12: 5.0, L21: 5.5}
    feed(watch, clocks, quiet, 30)
    feed(watch, clocks, {L11: 30.0, L12: 30.0, L21: 30.0}, 15)  # 15 s slow: fewer than 3 windows
    feed(watch, clocks, quiet, 30)
    assert watch.rechecks == 0


def test_it_measures_again_at_most_once_per_gap():
    clocks = FakeClocks()
    watch = new_watch(clocks)
    feed(watch, clocks, {L11: 8.0, L12: 5.0, L21: 5.5}, 30)
    slow = {L11: 40.0, L12: 40.0, L21: 40.0}  # e.g. a camera that slowed at dusk: every layout alike
    feed(watch, clocks, slow, 300)
    assert watch.rechecks == 1  # measured once; the slow rate is the new normal
    feed(watch, clocks, slow, 600)
    assert watch.rechecks == 1  # and it stays the normal: no measuring over and over


@pytest.fixture
def model_file(tmp_path):
    f = tmp_path / "m.tflite"
    f.write_bytes(b"x" * 100)
    return f


def test_a_cached_choice_made_under_another_load_is_measured_again(model_file, monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    clf = SimpleNamespace(model_path=model_file, runtime="litert")
    clocks = FakeClocks()
    monkeypatch.setattr(calibration.os, "getloadavg", lambda: (0.2, 0.2, 0.2))
    first = calibration.plan(ModelConfig(), clf, "every_frame", cores=2, clock=clocks.clock,
                             cpu_clock=clocks.cpu_clock)
    feed(first.watch, clocks, {L11: 8.0, L12: 5.0, L21: 5.5, L31: 5.6}, 30)
    assert calibration.plan(ModelConfig(), clf, "every_frame", cores=2).how == "cached"
    monkeypatch.setattr(calibration.os, "getloadavg", lambda: (0.9, 0.9, 0.9))  # a bit busier: still cached
    cached = calibration.plan(ModelConfig(), clf, "every_frame", cores=2)
    assert cached.how == "cached" and cached.watch.expected_fps == pytest.approx(200, rel=0.01)
    monkeypatch.setattr(calibration.os, "getloadavg", lambda: (2.3, 2.3, 2.3))  # a core's worth more busy
    assert calibration.plan(ModelConfig(), clf, "every_frame", cores=2).how == "measuring"
    assert "measured at load 0.20, it is 2.30 now" in caplog.text
