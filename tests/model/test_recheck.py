"""threads: auto after the choice: a throughput that falls for a while makes the run measure the layouts again.

On fake clocks: the "machine" runs each layout at a cost the test sets, and
the test makes another process take a core by changing those costs.
"""

from __future__ import annotations

import logging
import os
from types import SimpleNamespace

import pytest

from edgecam.config.schema import ModelConfig
from edgecam.model import calibration
from edgecam.model.calibration import Calibration, Layout
from edgecam.model.recheck import OthersMeter, Recheck, busy_seconds
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


class FakeOthers:
    """A :class:`OthersMeter` on the test's clocks: ``load`` cores of other programs, as the wall clock moves."""

    def __init__(self, clocks: FakeClocks, load: float = 0.0):
        self.clocks, self.load, self.busy = clocks, load, 1000.0
        self._last = clocks.wall

    def _busy(self):
        self.busy += (self.clocks.wall - self._last) * self.load
        self._last = self.clocks.wall
        return self.busy

    def meter(self) -> OthersMeter:
        # own CPU stays put: what this process used is subtracted, and here it is what the fake clocks say
        return OthersMeter(busy=lambda: self._busy() + self.clocks.cpu, own=lambda: self.clocks.cpu,
                           clock=lambda: self.clocks.wall)


def test_a_cached_choice_made_beside_another_load_is_measured_again_within_seconds(model_file, caplog):
    caplog.set_level(logging.INFO)
    clf = SimpleNamespace(model_path=model_file, runtime="litert")
    clocks = FakeClocks()
    others = FakeOthers(clocks, load=0.1)  # a quiet machine
    first = calibration.plan(ModelConfig(), clf, "every_frame", cores=2, clock=clocks.clock,
                             cpu_clock=clocks.cpu_clock, others=others.meter())
    feed(first.watch, clocks, {L11: 8.0, L12: 5.0, L21: 5.5, L31: 5.6}, 30)
    record = calibration.load_cached(model_file, calibration.cache_key(model_file, "litert", "every_frame", cores=2))
    assert record["layout"] == "1x2" and record["other_cores"] == pytest.approx(0.1, abs=0.01)

    # The next run beside the same load keeps the cached choice.
    quiet = calibration.plan(ModelConfig(), clf, "every_frame", cores=2, clock=clocks.clock,
                             cpu_clock=clocks.cpu_clock, others=others.meter())
    assert quiet.how == "cached" and quiet.watch.others_then == pytest.approx(0.1, abs=0.01)
    quiet.watch.clock = clocks.clock
    assert feed(quiet.watch, clocks, {L12: 5.0}, 60) == [] and quiet.watch.rechecks == 0

    # A run started beside a process that keeps a core busy measures again after its first seconds,
    # though its own rate stays within what the slow-rate rule lets pass.
    others.load = 1.1
    busy = calibration.plan(ModelConfig(), clf, "every_frame", cores=2, clock=clocks.clock,
                            cpu_clock=clocks.cpu_clock, others=others.meter())
    busy.watch.clock = clocks.clock
    assert busy.how == "cached"
    switches = feed(busy.watch, clocks, {L11: 9.0, L12: 6.0, L21: 7.0, L31: 5.8}, 4)
    assert busy.watch.rechecks == 1 and switches
    assert "other programs use 1.1 cores, 0.1 when 1x2 was measured" in caplog.text
    feed(busy.watch, clocks, {L11: 9.0, L12: 6.0, L21: 7.0, L31: 5.8}, 30)
    assert busy.watch.done and busy.watch.current == L31
    again = calibration.load_cached(model_file, calibration.cache_key(model_file, "litert", "every_frame", cores=2))
    assert again["layout"] == "3x1" and again["other_cores"] == pytest.approx(1.1, abs=0.05)


def test_a_small_change_in_the_others_load_keeps_the_choice(model_file):
    clocks = FakeClocks()
    others = FakeOthers(clocks, load=0.2)
    watch = Recheck(None, L12, 200.0, lambda: None, clock=clocks.clock, others=others.meter(), others_then=0.0)
    assert feed(watch, clocks, {L12: 5.0}, 60) == [] and watch.rechecks == 0  # 0.2 cores more: noise


def test_busy_seconds_reads_this_machine():
    if not os.path.exists("/proc/stat"):
        pytest.skip("no /proc/stat here")
    a = busy_seconds()
    sum(i * i for i in range(200_000))  # some CPU of our own
    b = busy_seconds()
    assert a is not None and b is not None and b >= a > 0
    meter = OthersMeter(clock=lambda: 10.0)
    meter.mark("x")
    assert meter.cores("x") is None  # too short a span to say anything
    assert meter.cores("never marked") is None
