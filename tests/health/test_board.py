"""The board read from replayed trees: a Raspberry Pi 5 (flags decoded), a laptop (what exists only),
vcgencmd where sysfs lacks a figure, and never the real firmware from a replayed tree."""

from __future__ import annotations

import os
import stat

import pytest

from edgecam.health.board import BoardReader, Flag, doctor_line
from tests.health.trees import laptop_tree, pi_tree, write


def test_a_pi_5_tree_is_read_in_base_units(tmp_path):
    h = BoardReader(pi_tree(tmp_path, temp_c=61.2), disk_paths=[tmp_path / "logs" / "not-yet"]).read()
    assert h.model == "Raspberry Pi 5 Model B Rev 1.0" and h.is_pi
    assert h.temperatures == (("cpu-thermal", 61.2),) and h.temperature_c == 61.2
    assert (h.throttled, h.throttled_from) == (0, "sysfs")
    assert h.arm_hz == 1_500_000_000 and h.arm_max_hz == 2_400_000_000
    assert h.mem_total_bytes == 8245180 * 1024 and h.mem_available_bytes == 7301220 * 1024
    assert h.cma_total_bytes == 327680 * 1024 and h.cma_free_bytes == 245760 * 1024
    assert h.process_write_bytes == 123456
    assert h.sd_write_bytes == 1234567 * 512  # the 7th field, 512-byte sectors
    (disk,) = h.disks  # a folder not made yet: the free space of the disk it will be on
    assert disk.path == str(tmp_path / "logs" / "not-yet") and 0 < disk.free_bytes <= disk.total_bytes
    assert h.problems == ()
    assert h.summary() == "61.2 °C, 1.50 GHz, memory 7130 of 8051 MB available, CMA 240 of 320 MB free, throttled=0x0"


def test_0x50005_is_under_voltage_and_throttled_now_and_since_boot(tmp_path):
    h = BoardReader(pi_tree(tmp_path, throttled="50005")).read()
    assert h.throttled == 0x50005
    assert [f for f in Flag if h.now(f)] == [Flag.UNDER_VOLTAGE, Flag.THROTTLED]
    assert [f for f in Flag if h.since_boot(f)] == [Flag.UNDER_VOLTAGE, Flag.THROTTLED]
    assert h.problems == (Flag.UNDER_VOLTAGE, Flag.THROTTLED)
    line = doctor_line(h)
    assert "throttled=0x50005 (UNDER-VOLTAGE, throttled now)" in line and "27 W" in line


@pytest.mark.parametrize("bit, flag, now", [
    (0, Flag.UNDER_VOLTAGE, True), (1, Flag.ARM_FREQUENCY_CAPPED, True), (2, Flag.THROTTLED, True),
    (3, Flag.SOFT_TEMPERATURE_LIMIT, True), (16, Flag.UNDER_VOLTAGE, False), (17, Flag.ARM_FREQUENCY_CAPPED, False),
    (18, Flag.THROTTLED, False), (19, Flag.SOFT_TEMPERATURE_LIMIT, False)])
def test_each_bit_is_its_flag(tmp_path, bit, flag, now):
    h = BoardReader(pi_tree(tmp_path, throttled=f"{1 << bit:x}")).read()
    assert [f for f in Flag if h.now(f)] == ([flag] if now else [])
    assert [f for f in Flag if h.since_boot(f)] == ([] if now else [flag])


def test_a_laptop_says_what_it_has_and_nothing_of_the_rest(tmp_path):
    h = BoardReader(laptop_tree(tmp_path)).read()
    assert h.temperatures == (("acpitz", 45.0), ("x86_pkg_temp", 62.0))
    assert h.temperature_c == 62.0  # the CPU package's zone, not the first
    assert not h.is_pi and h.model is None
    assert h.throttled is None and h.now(Flag.UNDER_VOLTAGE) is None and h.problems == ()
    assert h.cma_total_bytes is None and h.sd_write_bytes is None
    assert h.summary() == "62.0 °C, 2.80 GHz, memory 8789 of 15625 MB available"
    assert "throttl" not in doctor_line(h) and "voltage" not in doctor_line(h)


def fake_vcgencmd(tmp_path, throttled="0x50000", temp="55.3'C"):
    path = tmp_path / "bin" / "vcgencmd"
    path.parent.mkdir()
    path.write_text(f"#!/bin/sh\ncase \"$1\" in\n  get_throttled) echo \"throttled={throttled}\" ;;\n"
                    f"  measure_temp) echo \"temp={temp}\" ;;\n  *) exit 1 ;;\nesac\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_vcgencmd_fills_what_sysfs_lacks(tmp_path):
    root = tmp_path / "root"
    write(root, "proc/device-tree/model", "Raspberry Pi 4 Model B Rev 1.5\0")  # no firmware file, no zone
    h = BoardReader(root, vcgencmd=str(fake_vcgencmd(tmp_path))).read()
    assert (h.throttled, h.throttled_from) == (0x50000, "vcgencmd")
    assert h.temperatures == (("vcgencmd", 55.3),)
    assert h.since_boot(Flag.UNDER_VOLTAGE) and not h.now(Flag.UNDER_VOLTAGE)
    assert "15 W" in doctor_line(h)  # a Pi 4's supply


def test_sysfs_wins_over_vcgencmd(tmp_path):
    h = BoardReader(pi_tree(tmp_path / "root", throttled="4"), vcgencmd=str(fake_vcgencmd(tmp_path))).read()
    assert (h.throttled, h.throttled_from) == (0x4, "sysfs")
    assert h.temperature_c == 61.2


def test_a_replayed_tree_never_asks_the_real_firmware(tmp_path, monkeypatch):
    """With $EDGECAM_HOST_ROOT on a tree, a vcgencmd on PATH is not this tree's: it is not run."""
    monkeypatch.setenv("PATH", f"{fake_vcgencmd(tmp_path).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("EDGECAM_HOST_ROOT", str(laptop_tree(tmp_path / "root")))
    reader = BoardReader()
    assert reader.root == tmp_path / "root" and reader.vcgencmd is None
    assert reader.read().throttled is None


def test_the_hwmon_alarm_says_under_voltage_where_the_firmware_file_is_missing(tmp_path):
    root = pi_tree(tmp_path, volt_alarm=1)
    os.remove(root / "sys/devices/platform/soc/soc:firmware/get_throttled")
    h = BoardReader(root).read()
    assert h.throttled is None and h.under_voltage_alarm is True
    assert h.now(Flag.UNDER_VOLTAGE) is True and h.problems == (Flag.UNDER_VOLTAGE,)


def test_a_garbled_file_is_none_and_said(tmp_path):
    root = pi_tree(tmp_path)
    write(root, "sys/class/thermal/thermal_zone0/temp", "hot\n")
    h = BoardReader(root).read()
    assert h.temperatures == () and h.temperature_c is None
    assert any("thermal_zone0/temp: not a number" in e for e in h.errors)
