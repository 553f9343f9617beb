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
LOAD_CHANGE = 0.5  # load average per core: a cached choice measured further from now's is measured again


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
                 min_gap_s: float = MIN_GAP_S):
        self.calibration = calibration
        self.current = calibration.layout if calibration is not None else layout
        self.expected_fps = expected_fps
        self.new_calibration = new_calibration
        self.clock = clock
        self.window_s, self.fall, self.patience, self.min_gap_s = window_s, fall, patience, min_gap_s
        self.rechecks = 0
        self.results_seen = 0
        self._window_start: float | None = None
        self._window_results = 0
        self._slow = 0
        self._last_recheck = -float("inf")

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
        """A calibration just chose: its layout and rate are what later windows are held to."""
        cal = self.calibration
        self.current = cal.chosen
        m = cal.summary().get(cal.chosen)
        self.expected_fps = m.fps if m is not None else self.expected_fps
        self._window_start, self._slow = None, 0

    def _watch(self):
        now = self.clock()
        if self._window_start is None:
            self._window_start, self._window_results = now, 0
            return None
        self._window_results += 1
        elapsed = now - self._window_start
        if elapsed < self.window_s:
            return None
        rate = self._window_results / elapsed
        self._window_start, self._window_results = now, 0
        if not self.expected_fps or rate >= self.fall * self.expected_fps:
            self._slow = 0
            return None
        self._slow += 1
        if self._slow < self.patience or now - self._last_recheck < self.min_gap_s:
            return None
        return self._start(now, rate)

    def _start(self, now: float, rate: float):
        self._last_recheck, self._slow = now, 0
        self.rechecks += 1
        self.calibration = self.new_calibration()
        logger.warning("threads auto: %.1f results/s for %.0f s, below %.0f%% of the %.1f/s %s was measured at; "
                       "measuring the layouts again", rate, self.patience * self.window_s, self.fall * 100,
                       self.expected_fps, self.current)
        first = self.calibration.layout
        return first if first != self.current else None


def other_load(record: dict, cores: int) -> bool:
    """Whether the cached choice was measured under another load than now's (then it is measured again).

    Load average per core, 1 minute: more than :data:`LOAD_CHANGE` apart (half a core busy
    elsewhere now and not then, or the other way round) is another machine as far as layouts go.
    """
    then = record.get("load_average_1min")
    if then is None or not hasattr(os, "getloadavg"):
        return False
    now = os.getloadavg()[0]
    if abs(now - then) / max(1, cores) <= LOAD_CHANGE:
        return False
    logger.info("threads auto: the cached choice was measured at load %.2f, it is %.2f now; measuring again",
                then, now)
    return True
