"""One reading of the board: :class:`BoardHealth`, read by :class:`BoardReader`.

Where each figure comes from (all under ``$EDGECAM_HOST_ROOT``, default ``/``):

- temperature: ``/sys/class/thermal/thermal_zone*/{type,temp}`` (millidegrees C), the CPU's zone
  (``cpu-thermal`` on a Pi, ``x86_pkg_temp`` on a PC) or else the first; ``vcgencmd measure_temp`` when
  there is no zone;
- the firmware's throttling flags: ``get_throttled`` of the Raspberry Pi firmware driver
  (``/sys/devices/platform/soc/soc:firmware/get_throttled``, hexadecimal without ``0x``), else
  ``vcgencmd get_throttled`` (``throttled=0x50005``); the ``rpi_volt`` hwmon device's ``in0_lcrit_alarm``
  (under-voltage seen at its last poll) where the kernel has it;
- the ARM clock: ``/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq`` (kHz);
- memory and CMA (the camera's buffers): ``/proc/meminfo``;
- bytes written by this process: ``/proc/self/io`` ``write_bytes``; by the SD card:
  ``/sys/block/mmcblk0/stat`` field 7 (sectors written, 512 bytes each);
- free space: ``statvfs`` of the folders the log and the events go to.

What a machine lacks is ``None`` (a laptop has thermal zones and no throttling flags), never a guess.
``vcgencmd`` is asked only with the real root: a replayed tree never reaches the real firmware.
"""

from __future__ import annotations

import enum
import logging
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

ROOT_ENV = "EDGECAM_HOST_ROOT"
#: Thermal zone types that are the CPU's, in order of preference (Pi 4/5, other SoCs, Intel, AMD laptops).
CPU_ZONES = ("cpu-thermal", "cpu_thermal", "soc_thermal", "x86_pkg_temp", "k10temp", "acpitz")
THROTTLED_FILES = ("sys/devices/platform/soc/soc:firmware/get_throttled",
                   "sys/devices/platform/soc@*/soc@*:firmware/get_throttled",
                   "sys/devices/platform/*firmware*/get_throttled")
SECTOR_BYTES = 512  # /sys/block/<dev>/stat counts 512-byte sectors whatever the device's own size


class Flag(enum.Enum):
    """A firmware throttling flag: ``bit`` is set while it holds, ``bit + 16`` once it has since boot."""

    UNDER_VOLTAGE = ("under_voltage", 0, "UNDER-VOLTAGE")
    ARM_FREQUENCY_CAPPED = ("arm_frequency_capped", 1, "frequency capped")
    THROTTLED = ("throttled", 2, "throttled")
    SOFT_TEMPERATURE_LIMIT = ("soft_temperature_limit", 3, "soft temperature limit")

    def __init__(self, key: str, bit: int, text: str):
        self.key = key  # metrics label, MQTT key
        self.bit = bit
        self.text = text  # systemctl status

    @property
    def now_mask(self) -> int:
        return 1 << self.bit

    @property
    def since_boot_mask(self) -> int:
        return 1 << (self.bit + 16)


@dataclass(frozen=True)
class DiskSpace:
    """Free space where edgecam writes (``path``: a folder it was asked about)."""

    path: str
    free_bytes: int
    total_bytes: int


@dataclass(frozen=True)
class BoardHealth:
    """What the board said at one reading (``None``: this machine does not tell)."""

    at: float = 0.0  # time.monotonic() of the reading
    model: str | None = None  # "Raspberry Pi 5 Model B Rev 1.0" (device tree), None elsewhere
    temperatures: tuple[tuple[str, float], ...] = ()  # (thermal zone type, degrees C), every zone
    temperature_c: float | None = None  # the CPU's
    throttled: int | None = None  # the firmware's flags (Flag)
    throttled_from: str | None = None  # "sysfs" | "vcgencmd"
    under_voltage_alarm: bool | None = None  # the rpi_volt hwmon's in0_lcrit_alarm
    arm_hz: int | None = None
    arm_max_hz: int | None = None
    mem_total_bytes: int | None = None
    mem_available_bytes: int | None = None
    cma_total_bytes: int | None = None
    cma_free_bytes: int | None = None
    disks: tuple[DiskSpace, ...] = ()
    process_write_bytes: int | None = None  # by this process since it started
    sd_write_bytes: int | None = None  # by the SD card since boot
    errors: tuple[str, ...] = field(default=(), compare=False)  # files that exist but could not be read

    @property
    def is_pi(self) -> bool:
        return bool(self.model and self.model.startswith("Raspberry Pi"))

    def now(self, flag: Flag) -> bool | None:
        """Whether ``flag`` holds now (None: no flags on this machine)."""
        if flag is Flag.UNDER_VOLTAGE and self.throttled is None and self.under_voltage_alarm is not None:
            return self.under_voltage_alarm
        return None if self.throttled is None else bool(self.throttled & flag.now_mask)

    def since_boot(self, flag: Flag) -> bool | None:
        """Whether ``flag`` has held at some time since boot."""
        return None if self.throttled is None else bool(self.throttled & flag.since_boot_mask)

    @property
    def problems(self) -> tuple[Flag, ...]:
        """The flags that hold now, worst first."""
        return tuple(f for f in Flag if self.now(f))

    def summary(self) -> str:
        """One line: ``61.2 °C, 2.40 GHz, CMA 240 of 320 MB free, throttled 0x0`` (what this machine tells)."""
        parts = []
        if self.temperature_c is not None:
            parts.append(f"{self.temperature_c:.1f} °C")
        if self.arm_hz:
            parts.append(f"{self.arm_hz / 1e9:.2f} GHz")
        if self.mem_available_bytes is not None and self.mem_total_bytes:
            parts.append(f"memory {self.mem_available_bytes >> 20} of {self.mem_total_bytes >> 20} MB available")
        if self.cma_total_bytes:
            parts.append(f"CMA {self.cma_free_bytes >> 20} of {self.cma_total_bytes >> 20} MB free")
        if self.throttled is not None:
            flags = [f.text for f in self.problems]
            past = [f.text for f in Flag if self.since_boot(f) and not self.now(f)]
            text = f"throttled=0x{self.throttled:x}"
            if flags:
                text += f" ({', '.join(flags)} now)"
            if past:
                text += f" ({', '.join(past)} since boot)"
            parts.append(text)
        elif self.under_voltage_alarm:
            parts.append("UNDER-VOLTAGE")
        return ", ".join(parts) or "nothing to read on this machine"


def host_root() -> Path:
    """``$EDGECAM_HOST_ROOT`` (a recorded tree to replay), else ``/``."""
    return Path(os.environ.get(ROOT_ENV) or "/")


class BoardReader:
    """Reads :class:`BoardHealth` from a root (``$EDGECAM_HOST_ROOT`` by default).

    Args:
        root: the tree to read; None: :func:`host_root`.
        disk_paths: folders whose free space is reported (the log's, the events').
        vcgencmd: the command for what sysfs lacks; None: found on PATH, and only with the real root.
    """

    def __init__(self, root: Path | str | None = None, disk_paths=(), vcgencmd: str | None = None):
        self._errors: list[str] = []
        self.root = Path(root) if root is not None else host_root()
        self.disk_paths = tuple(str(p) for p in disk_paths)
        real = self.root.resolve() == Path("/")
        self.vcgencmd = vcgencmd if vcgencmd is not None else (shutil.which("vcgencmd") if real else None)
        self._throttled_file = self._first(THROTTLED_FILES)
        self._volt_alarm = self._hwmon("rpi_volt", "in0_lcrit_alarm")
        self._model = self._text("proc/device-tree/model") or self._text("sys/firmware/devicetree/base/model")

    @property
    def is_pi(self) -> bool:
        """A Raspberry Pi, by its device tree's model."""
        return bool(self._model and self._model.startswith("Raspberry Pi"))

    # -------------------------------------------------------------- files

    def _path(self, rel: str) -> Path:
        return self.root / rel

    def _first(self, patterns) -> Path | None:
        for pattern in patterns:
            found = sorted(self.root.glob(pattern))
            if found:
                return found[0]
        return None

    def _hwmon(self, name: str, attr: str) -> Path | None:
        for d in sorted(self.root.glob("sys/class/hwmon/hwmon*")):
            if (self._read(d / "name") or "").strip() == name and (d / attr).exists():
                return d / attr
        return None

    def _read(self, path: Path) -> str | None:
        try:
            return path.read_text(errors="replace")
        except FileNotFoundError:
            return None
        except OSError as e:
            self._errors.append(f"{path}: {e.strerror or e}")
            return None

    def _text(self, rel: str) -> str | None:
        text = self._read(self._path(rel))
        return text.strip("\0\n ") or None if text is not None else None

    def _int(self, path: Path | None, base: int = 10) -> int | None:
        text = self._read(path) if path is not None else None
        try:
            return int(text.strip(), base) if text is not None else None
        except ValueError:
            self._errors.append(f"{path}: not a number ({text.strip()[:40]!r})")
            return None

    def _vcgencmd(self, *args: str) -> str | None:
        if not self.vcgencmd:
            return None
        try:
            out = subprocess.run([self.vcgencmd, *args], capture_output=True, text=True, timeout=2.0)
        except (OSError, subprocess.TimeoutExpired) as e:
            self._errors.append(f"vcgencmd {' '.join(args)}: {e}")
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    # ------------------------------------------------------------- pieces

    def temperatures(self) -> tuple[tuple[str, float], ...]:
        zones = []
        for d in sorted(self.root.glob("sys/class/thermal/thermal_zone*"), key=lambda p: _number(p.name)):
            milli = self._int(d / "temp")
            if milli is not None:
                zones.append(((self._read(d / "type") or d.name).strip(), milli / 1000.0))
        if not zones:
            m = re.search(r"temp=([-\d.]+)", self._vcgencmd("measure_temp") or "")
            if m:
                zones.append(("vcgencmd", float(m.group(1))))
        return tuple(zones)

    def throttled(self) -> tuple[int | None, str | None]:
        if self._throttled_file is not None:
            value = self._int(self._throttled_file, 16)
            if value is not None:
                return value, "sysfs"
        m = re.search(r"throttled=(0x[0-9a-fA-F]+)", self._vcgencmd("get_throttled") or "")
        return (int(m.group(1), 16), "vcgencmd") if m else (None, None)

    def meminfo(self) -> dict[str, int]:
        out = {}
        for line in (self._read(self._path("proc/meminfo")) or "").splitlines():
            m = re.match(r"(\w+):\s+(\d+)\s*kB", line)
            if m:
                out[m.group(1)] = int(m.group(2)) * 1024
        return out

    def process_write_bytes(self) -> int | None:
        m = re.search(r"^write_bytes:\s*(\d+)", self._read(self._path("proc/self/io")) or "", re.M)
        return int(m.group(1)) if m else None

    def sd_write_bytes(self) -> int | None:
        fields = (self._read(self._path("sys/block/mmcblk0/stat")) or "").split()
        return int(fields[6]) * SECTOR_BYTES if len(fields) > 6 and fields[6].isdigit() else None

    def disks(self) -> tuple[DiskSpace, ...]:
        out = []
        for path in self.disk_paths:
            p = Path(path)
            while not p.exists() and p != p.parent:  # not made yet: the disk it will be on
                p = p.parent
            try:
                usage = shutil.disk_usage(p)
            except OSError:
                continue
            out.append(DiskSpace(path, usage.free, usage.total))
        return tuple(out)

    def read(self) -> BoardHealth:
        """One reading (a few small files; a vcgencmd call only where sysfs lacks the figure)."""
        self._errors = []
        zones = self.temperatures()
        by_type = dict(zones)
        cpu = next((by_type[t] for t in CPU_ZONES if t in by_type), zones[0][1] if zones else None)
        throttled, source = self.throttled()
        mem = self.meminfo()
        freq = "sys/devices/system/cpu/cpu0/cpufreq/"
        cur, top = self._int(self._path(freq + "scaling_cur_freq")), self._int(self._path(freq + "cpuinfo_max_freq"))
        alarm = self._int(self._volt_alarm)
        return BoardHealth(
            at=time.monotonic(), model=self._model, temperatures=zones, temperature_c=cpu,
            throttled=throttled, throttled_from=source, under_voltage_alarm=None if alarm is None else bool(alarm),
            arm_hz=cur * 1000 if cur is not None else None, arm_max_hz=top * 1000 if top is not None else None,
            mem_total_bytes=mem.get("MemTotal"), mem_available_bytes=mem.get("MemAvailable"),
            cma_total_bytes=mem.get("CmaTotal"), cma_free_bytes=mem.get("CmaFree"), disks=self.disks(),
            process_write_bytes=self.process_write_bytes(), sd_write_bytes=self.sd_write_bytes(),
            errors=tuple(self._errors),
        )


def _number(name: str) -> int:
    m = re.search(r"(\d+)$", name)
    return int(m.group(1)) if m else 0


def supply_advice(model: str | None) -> str:
    """What to do about under-voltage on this board (the official supply for its model)."""
    if model and "Raspberry Pi 5" in model:
        supply = "the official 27 W USB-C supply (5.1 V, 5 A)"
    elif model and "Raspberry Pi 4" in model:
        supply = "the official 15 W USB-C supply (5.1 V, 3 A)"
    else:
        supply = "the official supply for this board"
    return f"use {supply} and a short, thick cable, not a phone charger; under-voltage corrupts SD cards"


COOLING_ADVICE = "give the board a heatsink or a fan (the Pi 5 Active Cooler), or more air around the case"


def doctor_line(h: BoardHealth) -> str:
    """``edgecam doctor``'s line for the board: what it reads and, when something is wrong, what to do."""
    line = f"{h.model + ': ' if h.model else ''}{h.summary()}"
    if h.now(Flag.UNDER_VOLTAGE) or h.since_boot(Flag.UNDER_VOLTAGE):
        return f"{line}; {supply_advice(h.model)}"
    hot = (Flag.THROTTLED, Flag.ARM_FREQUENCY_CAPPED, Flag.SOFT_TEMPERATURE_LIMIT)
    if any(h.now(f) or h.since_boot(f) for f in hot):
        return f"{line}; {COOLING_ADVICE}"
    return line
