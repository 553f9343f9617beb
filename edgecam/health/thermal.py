"""``health.thermal: auto``: less work before the firmware's soft temperature limit, more again when cool.

A Raspberry Pi 4 or 5 starts to lower its clock at the soft limit (80 °C): everything on the board slows,
with no word in edgecam's figures. The governor acts first, on what edgecam controls: how many frames
it classifies. At ``soft_limit - margin`` (75 °C by default) it steps down (every 2nd frame, then 3rd,
4th, 6th, 8th...), one step at most every ``hold_s`` (heat is slow: the last step needs time to show),
at once past the soft limit itself or while the firmware says it is throttling; below
``soft_limit - margin - hysteresis`` (70 °C) it steps back up, one step per ``hold_s``. Each step is one
log line and counted (``edgecam_thermal_steps_total``).

Decided here, not in the pipeline: the pipeline only applies the step as a shortest time between two
classified frames (:meth:`ThermalGovernor.interval_s`), which works whether the camera or the model is
the bottleneck (a skipped Nth frame would not lower the work of a model that already drops frames).
"""

from __future__ import annotations

import logging
import math

from edgecam.health.board import COOLING_ADVICE

logger = logging.getLogger(__name__)

#: Steps, as "classify every Nth frame" of the full rate; cut at ``max_every``.
STEPS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 100)
#: The Raspberry Pi 4 and 5 firmware's soft temperature limit (temp_soft_limit), degrees C.
PI_SOFT_LIMIT_C = 80.0
WARN_EVERY_S = 3600.0


def ordinal(n: int) -> str:
    return "every frame" if n == 1 else f"every {n}{'nd' if n == 2 else 'rd' if n == 3 else 'th'} frame"


class ThermalGovernor:
    """Chooses how much of the frame rate is classified from the temperature (see the module's text).

    Args:
        soft_limit_c: the firmware's soft limit; the governor keeps below it.
        margin_c / hysteresis_c / hold_s / max_every: see :class:`edgecam.config.health.HealthConfig`.
    """

    def __init__(self, soft_limit_c: float, margin_c: float = 5.0, hysteresis_c: float = 5.0,
                 hold_s: float = 30.0, max_every: int = 8):
        self.soft_limit_c = soft_limit_c
        self.down_at_c = soft_limit_c - margin_c
        self.up_below_c = self.down_at_c - hysteresis_c
        self.hold_s = hold_s
        self.steps = tuple(s for s in STEPS if s < max_every) + (max_every,)
        self.level = 0
        self.steps_down = 0
        self.steps_up = 0
        self.full_rate: float | None = None  # results per second at every frame, taken when first stepping down
        self.skipped = 0  # frames the pipeline did not classify because of it (written by the capture thread)
        self._changed_at = -math.inf
        self._warned_at = -math.inf

    @classmethod
    def from_config(cls, cfg, soft_limit_c: float) -> ThermalGovernor:
        return cls(soft_limit_c, cfg.margin_c, cfg.hysteresis_c, cfg.hold_s, cfg.max_every)

    @property
    def every(self) -> int:
        """Classify every Nth frame (of the rate measured before the first step)."""
        return self.steps[self.level]

    def interval_s(self) -> float:
        """The shortest time between two classified frames (0: no limit)."""
        if self.every == 1 or not self.full_rate:
            return 0.0
        # Half a frame short of N frame times: frames come with jitter, and N - 1 skipped is the aim.
        return (self.every - 0.5) / self.full_rate

    def update(self, temperature_c: float | None, now: float, firmware_hot: bool = False,
               rate: float | None = None) -> int | None:
        """Feed one reading; returns the new ``every`` when it changed, else None.

        ``firmware_hot``: the firmware says it throttles or is at its soft limit now.
        ``rate``: the results per second now (remembered as the full rate when leaving every frame).
        """
        if temperature_c is None and not firmware_hot:
            return None
        hot = firmware_hot or (temperature_c is not None and temperature_c >= self.soft_limit_c)
        since = now - self._changed_at
        waited = since >= self.hold_s
        t = f"{temperature_c:.1f} °C" if temperature_c is not None else "the firmware throttling"
        # Past the soft limit a step may follow the last one sooner: the clock is being cut already.
        warm = hot or temperature_c >= self.down_at_c
        if warm and self.level < len(self.steps) - 1 and (waited or (hot and since >= min(self.hold_s, 5.0))):
            if self.level == 0 and rate:
                self.full_rate = rate
            if not self.full_rate:
                return None  # nothing classified yet: nothing to step down from
            before = self.every
            self.level += 1
            self.steps_down += 1
            self._changed_at = now
            # Leaving every frame is the news: a WARNING with what to do, at most once an hour (a hot
            # afternoon goes up and down a step every few minutes); every other step is an INFO line.
            loud = before == 1 and now - self._warned_at >= WARN_EVERY_S
            if loud:
                self._warned_at = now
            logger.log(logging.WARNING if loud else logging.INFO,
                       "thermal: %s (soft limit %.0f °C): classifying %s, was %s%s", t, self.soft_limit_c,
                       ordinal(self.every), ordinal(before), f"; {COOLING_ADVICE}" if loud else "")
            return self.every
        if (not firmware_hot and temperature_c is not None and temperature_c < self.up_below_c and self.level > 0
                and waited):
            before = self.every
            self.level -= 1
            self.steps_up += 1
            self._changed_at = now
            logger.info("thermal: %.1f °C, below %.0f °C: classifying %s again, was %s",
                        math.floor(temperature_c * 10) / 10, self.up_below_c, ordinal(self.every), ordinal(before))
            return self.every
        return None

    def metrics(self) -> list:
        """Its part of /metrics."""
        return [
            ("edgecam_thermal_classify_every", "gauge",
             "Thermal governor: every Nth frame of the full rate is classified (1: all).", [("", self.every)]),
            ("edgecam_thermal_steps_total", "counter", "Thermal governor steps, down (less work) and up.",
             [('{direction="down"}', self.steps_down), ('{direction="up"}', self.steps_up)]),
            ("edgecam_thermal_frames_skipped_total", "counter",
             "Frames not classified to keep the board below its soft temperature limit.", [("", self.skipped)]),
        ]
