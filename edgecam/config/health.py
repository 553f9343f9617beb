"""The ``health:`` section of the config (docs/pi-health.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from edgecam.config.check import opt as _opt


@dataclass
class HealthConfig:
    """How the board is watched, and whether the work steps down when it is hot."""

    poll_s: float = _opt(5.0, min=0.5, max=3600.0)  # how often the board is read
    # auto: classify fewer frames before the soft temperature limit, more again when cool; off: never.
    # YAML reads an unquoted off as false (and on as true): those mean off and auto.
    thermal: Literal["auto", "off"] | bool = "auto"
    # the firmware's soft limit in degrees C: auto = 80 on a Raspberry Pi (4, 5), none elsewhere (thermal waits)
    soft_limit_c: float | Literal["auto"] = _opt("auto", min=30.0, max=120.0)
    margin_c: float = _opt(5.0, min=0.5, max=40.0)  # step the work down this far below the soft limit...
    hysteresis_c: float = _opt(5.0, min=0.5, max=40.0)  # ...and up again only this much cooler than that
    hold_s: float = _opt(30.0, min=0.0, max=3600.0)  # at least this long between two steps (heat is slow)
    max_every: int = _opt(8, min=2, max=100)  # at most every Nth frame classified at the lowest step

    @property
    def thermal_auto(self) -> bool:
        return self.thermal in ("auto", True)
