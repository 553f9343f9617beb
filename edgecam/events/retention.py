"""Retention that a wrong clock cannot fool (docs/hardening.md, "The events history and webhooks").

Age: an event goes when it ended more than ``max_age_days`` ago by the wall
clock, which anyone can set and a Pi without a real-time clock gets from the
network some time after it booted. A clock moved back only makes events look
younger (retention keeps more: harmless; logged once). A clock moved forward
would delete at once what is not old, so :class:`AgeGuard` holds age retention
back for :data:`HOLD_S` of running time (the monotonic clock, which nobody
sets) when

* at start, the newest event is already over the age: every event would go at
  once, which a clock moved forward does (and a camera off for that long); or
* while running, the wall clock moved forward against the monotonic clock by
  more than :data:`STEP_S` (a step, not NTP's slewing).

A wrong clock put right within the hold deletes nothing; a right one (the
camera really was off) deletes a day later. Size retention does not look at
the clock at all: it deletes in the order events were stored (their ids), and
never the newest one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

logger = logging.getLogger(__name__)

HOLD_S = 86400.0  # running time age retention waits after a clock that moved forward
STEP_S = 600.0  # the wall clock moving this much against the monotonic clock is a step


def boottime() -> float:
    """Seconds of a clock nobody sets that goes on during a suspend (Linux's CLOCK_BOOTTIME), else monotonic."""
    if hasattr(time, "CLOCK_BOOTTIME"):
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    return time.monotonic()


def _when(t: float) -> str:
    return datetime.fromtimestamp(t).isoformat(sep=" ", timespec="minutes")


class AgeGuard:
    """The cutoff of age retention, or none while a forward clock is not trusted yet (module docstring).

    ``clock``: epoch seconds; ``monotonic``: running seconds (tests pass fake ones)."""

    def __init__(self, max_age_s: float, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = boottime):
        self.max_age_s = max_age_s
        self.clock, self.monotonic = clock, monotonic
        self._offset: float | None = None  # wall - monotonic at the last pass
        self._hold_until: float | None = None  # monotonic: age retention deletes nothing before
        self._why = ""
        self._warned_hold = False
        self._warned_behind = False

    def cutoff(self, newest: float | None, count_older: Callable[[float], int]) -> float | None:
        """Events that ended before the returned time go; None: none go by age now.

        ``newest``: the newest event's time (None: no events); ``count_older(t)``: how many ended before t."""
        if self.max_age_s <= 0:
            return None
        now, mono = self.clock(), self.monotonic()
        offset = now - mono
        if self._offset is None:
            if newest is not None and now - newest > self.max_age_s:
                self._hold(mono, f"the newest event ({_when(newest)}) is already over the age, so every event "
                                 "would go at once")
        elif offset - self._offset > STEP_S:
            self._hold(mono, f"the clock jumped {(offset - self._offset) / 86400:.1f} days forward while running")
        self._offset = offset
        if newest is not None and now < newest - STEP_S and not self._warned_behind:
            self._warned_behind = True
            logger.warning("events: the clock (%s) is behind the newest event (%s): is it right? Age retention "
                           "keeps events longer until it is", _when(now), _when(newest))
        cut = now - self.max_age_s
        if self._hold_until is not None:
            if mono < self._hold_until:
                spared = count_older(cut)
                if spared and not self._warned_hold:
                    self._warned_hold = True
                    logger.warning("events: the clock says %s and %s: age retention waits until %s (a day of "
                                   "running) before deleting the %d event(s) it makes old; if the clock is wrong, "
                                   "put it right and nothing is deleted", _when(now), self._why,
                                   _when(now + self._hold_until - mono), spared)
                return None
            self._hold_until = None
        return cut

    def _hold(self, mono: float, why: str) -> None:
        self._hold_until = mono + HOLD_S
        self._why = why
        self._warned_hold = False
