"""``threads: auto`` after the choice: watch the throughput, and measure again when conditions change.

A layout measured (or read from the cache) on a quiet machine is not the best
one when another process takes a core, or when more cameras share the model.
:class:`Recheck` stands where the stage expects a
:class:`edgecam.model.calibration.Calibration` (``observe`` each result,
``layout``, ``done``): while a calibration runs it passes the results on; then
it counts results per second in windows of :data:`WINDOW_S`, and when
:data:`PATIENCE` windows in a row stay below :data:`FALL` of the rate the chosen
layout was measured at, it starts a new in-run calibration (every candidate
measured again, interleaved, under the new conditions) and keeps what that
one chooses. Re-measuring costs nothing but a few seconds of the other
layouts; it happens at most once per :data:`MIN_GAP_S`, so a camera that
simply slowed down (dusk, a long exposure) cannot make it measure over and over.

It also measures again when the other programs on the machine use a different
share of the CPU than they did while the layout in use was measured (a cached
choice made on a quiet machine, now beside a busy process, or the other way
round): :class:`OthersMeter` reads that share from ``/proc/stat`` (every
core's busy time less this process's own), over the first
:data:`FIRST_WINDOW_S` of the run and then each window. Not the load average:
it lags by a minute and counts edgecam's own threads, so a run started right
after another (a restart, a benchmark) looked busy and measured again for nothing.
"""

from __future__ import annotations

import logging
import os
import time

logger = logging.getLogger(__name__)

WINDOW_S = 10.0  # results are counted over windows this long
FALL = 0.75  # a window below this share of the expected rate is a slow one
PATIENCE = 3  # this many slow windows in a row start a new measurement
MIN_GAP_S = 600.0  # at most one new measurement per 10 minutes
# Cores: other programs' CPU use this far from what the layout was measured beside. A process spinning beside
# edgecam on 2 cores measured 0.5 (it shares its core with edgecam's threads); a quiet machine 0.0-0.1.
LOAD_CHANGE = 0.4
FIRST_WINDOW_S = 3.0  # with a cached choice, the first look at the other programs' CPU use, this soon


def busy_seconds() -> float | None:
    """Every core's busy time since boot (user, nice, system, irq, softirq), seconds; None without /proc/stat.

    Steal time is left out: a hypervisor's other guests are not programs this machine can see or measure.
    """
    try:
        with open("/proc/stat", "rb") as f:  # bytes: no codec needed (nor wanted) for a line of numbers
            fields = f.readline().split()
        user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[1:8])
    except (OSError, ValueError):
        return None
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


class OthersMeter:
    """How many cores the *other* programs kept busy over a span: every core's busy time less this process's.

    ``mark(name)`` starts a span, ``cores(name)`` ends it (None when unknown: no ``/proc/stat``, or too short
    a span to say). The three clocks are injectable for tests.
    """

    def __init__(self, busy=busy_seconds, own=time.process_time, clock=time.monotonic):
        self.busy, self.own, self.clock = busy, own, clock
        self._marks: dict[str, tuple] = {}

    def mark(self, name: str) -> None:
        self._marks[name] = (self.busy(), self.own(), self.clock())

    def cores(self, name: str) -> float | None:
        start = self._marks.get(name)
        busy, own, now = self.busy(), self.own(), self.clock()
        if start is None or start[0] is None or busy is None or now - start[2] < 0.5:
            return None
        return max(0.0, ((busy - start[0]) - (own - start[1])) / (now - start[2]))


class Recheck:
    """A calibration that re-measures when the throughput falls well below what its layout was measured at.

    ``calibration``: the one running now (None: the layout came from the cache
    or the config). ``layout``: the layout in use when nothing is measured.
    ``expected_fps``: what that layout was measured at (None: learnt from the
    first calibration). ``new_calibration()``: a fresh
    :class:`edgecam.model.calibration.Calibration` of every candidate.
    """

    def __init__(self, calibration, layout, expected_fps: float | None, new_calibration, *,
                 clock=time.monotonic, window_s: float = WINDOW_S, fall: float = FALL, patience: int = PATIENCE,
                 min_gap_s: float = MIN_GAP_S, others: OthersMeter | None = None, others_then: float | None = None):
        self.calibration = calibration
        self.current = calibration.layout if calibration is not None else layout
        self.expected_fps = expected_fps
        self.new_calibration = new_calibration
        self.clock = clock
        self.window_s, self.fall, self.patience, self.min_gap_s = window_s, fall, patience, min_gap_s
        #: the other programs' CPU use (cores) while the layout in use was measured, and the meter for now's
        self.others, self.others_then = others, others_then
        self.rechecks = 0
        self.results_seen = 0
        self._window_start: float | None = None
        self._window_results = 0
        self._window_len = FIRST_WINDOW_S if others_then is not None else window_s
        self._slow = 0
        self._last_recheck = -float("inf")
        if others is not None and calibration is not None:  # (a window's span starts at its first result)
            others.mark("calibration")

    # -- what the stage and bench read, as of a Calibration --------------------------------

    @property
    def layout(self):
        return self.calibration.layout if self.measuring else self.current

    @property
    def measuring(self) -> bool:
        return self.calibration is not None and not self.calibration.done

    @property
    def done(self) -> bool:
        """No measurement running (bench's steady state starts then)."""
        return not self.measuring

    @property
    def chosen(self):
        return self.current if not self.measuring else None

    def summary(self) -> dict:
        return self.calibration.summary() if self.calibration is not None else {}

    # -- each result -----------------------------------------------------------------------

    def observe(self, result):
        """Count one result; return the layout to switch to when it changes now."""
        self.results_seen += 1
        if self.measuring:
            switch = self.calibration.observe(result)
            if self.calibration.done:
                self._measured()
            return switch
        return self._watch()

    def _measured(self) -> None:
        """A calibration just chose: its layout and rate (and the others' CPU use then) are what later
        windows are held to."""
        cal = self.calibration
        self.current = cal.chosen
        m = cal.summary().get(cal.chosen)
        self.expected_fps = m.fps if m is not None else self.expected_fps
        if self.others is not None:
            self.others_then = self.others.cores("calibration")
        self._window_start, self._slow, self._window_len = None, 0, self.window_s

    def _watch(self):
        now = self.clock()
        if self._window_start is None:
            self._window_start, self._window_results = now, 0
            if self.others is not None:
                self.others.mark("window")
            return None
        self._window_results += 1
        elapsed = now - self._window_start
        if elapsed < self._window_len:
            return None
        rate = self._window_results / elapsed
        self._window_start, self._window_results, self._window_len = now, 0, self.window_s
        others = self.others.cores("window") if self.others is not None else None
        if self.others is not None:
            self.others.mark("window")
        if (others is not None and self.others_then is not None and abs(others - self.others_then) >= LOAD_CHANGE
                and now - self._last_recheck >= self.min_gap_s):
            why = (f"other programs use {others:.1f} cores, {self.others_then:.1f} when {self.current} "
                   "was measured")
            return self._start(now, why)
        if not self.expected_fps or rate >= self.fall * self.expected_fps:
            self._slow = 0
            return None
        self._slow += 1
        if self._slow < self.patience or now - self._last_recheck < self.min_gap_s:
            return None
        return self._start(now, f"{rate:.1f} results/s for {self.patience * self.window_s:.0f} s, below "
                                f"{self.fall * 100:.0f}% of the {self.expected_fps:.1f}/s {self.current} was measured at")

    def _start(self, now: float, why: str):
        self._last_recheck, self._slow = now, 0
        self.rechecks += 1
        self.calibration = self.new_calibration()
        if self.others is not None:
            self.others.mark("calibration")
        logger.warning("threads auto: %s; measuring the layouts again", why)
        first = self.calibration.layout
        return first if first != self.current else None
