"""The thread that reads the board every ``health.poll_s`` and says what matters, once.

- one WARNING line when under-voltage or throttling starts (what it means, what to do), one INFO line
  when it ends; one WARNING at start when the firmware says it happened since boot;
- the newest :class:`edgecam.health.board.BoardHealth` for /metrics (:meth:`HealthMonitor.metrics`),
  ``systemctl status`` (:meth:`HealthMonitor.status_problem`), MQTT (the app hands it to the outputs);
- the thermal governor fed with each reading (``health.thermal: auto``).
"""

from __future__ import annotations

import logging
import threading
import time

from edgecam.health.board import COOLING_ADVICE, BoardHealth, BoardReader, Flag, supply_advice
from edgecam.health.thermal import PI_SOFT_LIMIT_C, ThermalGovernor

logger = logging.getLogger(__name__)

_HOT = (Flag.THROTTLED, Flag.ARM_FREQUENCY_CAPPED, Flag.SOFT_TEMPERATURE_LIMIT)


class HealthMonitor:
    """Reads the board on a thread of its own (``edgecam-health``), stopped by one event.

    Args:
        reader: a :class:`BoardReader`.
        poll_s: seconds between readings.
        governor: a :class:`ThermalGovernor`, or None (``health.thermal: off``, or no soft limit known).
        rate: callable giving the results per second now (for the governor's full rate).
    """

    def __init__(self, reader: BoardReader, poll_s: float = 5.0, governor: ThermalGovernor | None = None,
                 rate=None, clock=time.monotonic):
        self.reader = reader
        self.poll_s = poll_s
        self.governor = governor
        self.rate = rate or (lambda: None)
        self.clock = clock
        self.latest: BoardHealth | None = None
        self.seq = 0  # readings so far: a consumer notices a new one
        self._first: BoardHealth | None = None
        self._since: dict[Flag, float] = {}  # flags holding now -> since when
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_config(cls, cfg, disk_paths=(), rate=None) -> HealthMonitor:
        """From the ``health`` section; the governor only with ``thermal: auto`` and a soft limit."""
        reader = BoardReader(disk_paths=disk_paths)
        h = cfg.health
        governor = None
        if h.thermal_auto:
            limit = h.soft_limit_c if h.soft_limit_c != "auto" else (PI_SOFT_LIMIT_C if reader.is_pi else None)
            if limit is not None:
                governor = ThermalGovernor.from_config(h, limit)
            else:
                logger.debug("health: no soft temperature limit known for this machine; thermal waits "
                             "(set health.soft_limit_c to use it)")
        return cls(reader, h.poll_s, governor, rate)

    # ------------------------------------------------------------ thread

    def start(self) -> None:
        """One reading now (so the first warning comes at start-up), then one every ``poll_s``."""
        self._poll_safely()
        self._thread = threading.Thread(target=self._run, name="edgecam-health", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self._poll_safely()

    def _poll_safely(self) -> None:
        try:
            self.poll()
        except Exception:  # a board that cannot be read must never stop the camera
            logger.exception("health: reading the board failed; trying again in %.0f s", self.poll_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)

    # ----------------------------------------------------------- reading

    def poll(self) -> BoardHealth:
        """Read once, log what started or ended, feed the governor."""
        h = self.reader.read()
        now = self.clock()
        if self._first is None:
            self._first = h
            self._since_boot(h)
        self._transitions(h, now)
        if self.governor is not None:
            # The firmware's word counts as heat unless under-voltage explains the throttling.
            hot = bool(h.now(Flag.SOFT_TEMPERATURE_LIMIT) or (h.now(Flag.THROTTLED) and not h.now(Flag.UNDER_VOLTAGE)))
            self.governor.update(h.temperature_c, now, firmware_hot=hot, rate=self.rate())
        self.latest = h
        self.seq += 1
        return h

    def _since_boot(self, h: BoardHealth) -> None:
        past = [f for f in Flag if h.since_boot(f) and not h.now(f)]
        if not past:
            return
        what = ", ".join(f.text for f in past)
        advice = supply_advice(h.model) if Flag.UNDER_VOLTAGE in past else COOLING_ADVICE
        logger.warning("board: since boot this board has been %s (throttled=0x%x), not now; %s",
                       what, h.throttled, advice)

    def _transitions(self, h: BoardHealth, now: float) -> None:
        started = [f for f in h.problems if f not in self._since]
        ended = [f for f in self._since if f not in h.problems]
        temp = f" at {h.temperature_c:.1f} °C" if h.temperature_c is not None else ""
        flags = f" (throttled=0x{h.throttled:x})" if h.throttled is not None else ""
        if Flag.UNDER_VOLTAGE in started:
            logger.warning("board: UNDER-VOLTAGE%s: the supply gives less than the board needs, so the firmware "
                           "slows the CPU and the SD card may be corrupted; %s", flags, supply_advice(h.model))
        hot = [f for f in started if f in _HOT]
        if hot and not any(f in self._since for f in _HOT):  # one line per episode, however many flags
            cause = ("under-voltage (see above)" if h.now(Flag.UNDER_VOLTAGE) else "heat")
            logger.warning("board: %s%s%s: the firmware lowers the clock because of %s, so fewer frames are "
                           "classified; %s", ", ".join(f.text for f in hot), temp, flags, cause,
                           supply_advice(h.model) if cause != "heat" else COOLING_ADVICE)
        for f in started:
            self._since[f] = now
        for f in ended:
            lasted = now - self._since.pop(f)
            logger.info("board: no longer %s (it lasted %.0f s)", f.text, lasted)

    # ------------------------------------------------------------ outputs

    def status_problem(self) -> str | None:
        """What ``systemctl status`` should add, only when something is wrong: ``UNDER-VOLTAGE, throttled``."""
        h = self.latest
        parts = [f.text for f in h.problems] if h is not None else []
        if self.governor is not None and self.governor.every > 1:
            parts.append(f"hot: classifying {_short(self.governor.every)}")
        return ", ".join(parts) or None

    def metrics(self) -> list:
        """Its part of /metrics (base units: celsius, hertz, bytes)."""
        h = self.latest
        if h is None:
            return []
        out = []
        if h.temperatures:
            out.append(("edgecam_board_temperature_celsius", "gauge", "Board temperature per thermal zone.",
                        [(f'{{zone="{_label(z)}"}}', c) for z, c in h.temperatures]))
        if h.throttled is not None or h.under_voltage_alarm is not None:
            samples = []
            for f in Flag:
                if h.now(f) is not None:
                    samples.append((f'{{flag="{f.key}",when="now"}}', bool(h.now(f))))
                if h.since_boot(f) is not None:
                    samples.append((f'{{flag="{f.key}",when="since_boot"}}', bool(h.since_boot(f))))
            out.append(("edgecam_board_throttled", "gauge",
                        "The firmware's throttling flags (1: set), now and since boot.", samples))
        for name, value, help_ in (
                ("edgecam_board_arm_frequency_hertz", h.arm_hz, "ARM clock now."),
                ("edgecam_board_arm_frequency_max_hertz", h.arm_max_hz, "ARM clock at most."),
                ("edgecam_board_memory_available_bytes", h.mem_available_bytes, "Memory available (MemAvailable)."),
                ("edgecam_board_memory_total_bytes", h.mem_total_bytes, "Memory in all (MemTotal)."),
                ("edgecam_board_cma_free_bytes", h.cma_free_bytes, "Contiguous memory free (the camera's buffers)."),
                ("edgecam_board_cma_total_bytes", h.cma_total_bytes, "Contiguous memory in all."),
        ):
            if value is not None:
                out.append((name, "gauge", help_, [("", value)]))
        if h.disks:
            out.append(("edgecam_board_disk_free_bytes", "gauge", "Free space where the log and events go.",
                        [(f'{{path="{_label(d.path)}"}}', d.free_bytes) for d in h.disks]))
        if h.process_write_bytes is not None:
            out.append(("edgecam_process_written_bytes_total", "counter",
                        "Bytes this process caused to be written to storage (/proc/self/io write_bytes).",
                        [("", h.process_write_bytes)]))
        if h.sd_write_bytes is not None:
            out.append(("edgecam_board_sd_written_bytes_total", "counter",
                        "Bytes written to the SD card since boot, by every process (mmcblk0).",
                        [("", h.sd_write_bytes)]))
        if self.governor is not None:
            out += self.governor.metrics()
        return out


def _short(every: int) -> str:
    return f"1 frame in {every}"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
