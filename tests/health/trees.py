"""Recorded host trees to replay under $EDGECAM_HOST_ROOT: a Raspberry Pi 5, a laptop.

The files and their formats are the kernel's (see edgecam/health/board.py for where each comes from):
the firmware driver's get_throttled is hexadecimal without 0x, thermal zones in millidegrees, cpufreq in
kHz, /proc/meminfo in kB, /sys/block/<dev>/stat with sectors written as its 7th field.
"""

from __future__ import annotations

from pathlib import Path

MEMINFO = """MemTotal:        8245180 kB
MemFree:         6120344 kB
MemAvailable:    7301220 kB
Buffers:           61504 kB
CmaTotal:         327680 kB
CmaFree:          245760 kB
"""


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def pi_tree(root: Path, throttled: str = "0", temp_c: float = 61.2, model: str = "Raspberry Pi 5 Model B Rev 1.0",
            volt_alarm: int | None = 0) -> Path:
    """A Raspberry Pi as its kernel shows it; ``throttled`` as the firmware driver's file holds it."""
    write(root, "proc/device-tree/model", model + "\0")
    write(root, "sys/class/thermal/thermal_zone0/type", "cpu-thermal\n")
    write(root, "sys/class/thermal/thermal_zone0/temp", f"{round(temp_c * 1000)}\n")
    write(root, "sys/devices/platform/soc/soc:firmware/get_throttled", throttled + "\n")
    if volt_alarm is not None:
        write(root, "sys/class/hwmon/hwmon1/name", "rpi_volt\n")
        write(root, "sys/class/hwmon/hwmon1/in0_lcrit_alarm", f"{volt_alarm}\n")
    write(root, "sys/class/hwmon/hwmon0/name", "cpu_thermal\n")
    write(root, "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq", "1500000\n")
    write(root, "sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", "2400000\n")
    write(root, "proc/meminfo", MEMINFO)
    write(root, "proc/self/io", "rchar: 100\nwchar: 200\nsyscr: 1\nsyscw: 2\nread_bytes: 0\n"
                                "write_bytes: 123456\ncancelled_write_bytes: 0\n")
    write(root, "sys/block/mmcblk0/stat",
          "   10457     4431   892436    6312    20511    16803  1234567    89235        0    42544    95547\n")
    return root


def laptop_tree(root: Path) -> Path:
    """A laptop: two thermal zones, cpufreq, meminfo without CMA; no firmware, no device tree, no SD card."""
    write(root, "sys/class/thermal/thermal_zone0/type", "acpitz\n")
    write(root, "sys/class/thermal/thermal_zone0/temp", "45000\n")
    write(root, "sys/class/thermal/thermal_zone1/type", "x86_pkg_temp\n")
    write(root, "sys/class/thermal/thermal_zone1/temp", "62000\n")
    write(root, "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq", "2800000\n")
    write(root, "proc/meminfo", "MemTotal:       16000000 kB\nMemAvailable:   9000000 kB\n")
    return root
