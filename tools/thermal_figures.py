#!/usr/bin/env python3
"""``health.thermal: auto`` against ``off`` on a simulated board: traces and a summary.

The board is a first-order heat model: the temperature moves toward
``ambient + c_per_core * CPU cores busy`` with time constant ``tau_s``. Two ways to feed it:

- ``sim`` (default; deterministic, a fake clock): edgecam's CPU is modelled as ``base_cpu +
  frame_cpu_s * results per second`` (Pi 4-like: 25 ms of CPU per classified frame at 30 fps), the
  governor (:class:`edgecam.health.thermal.ThermalGovernor`) is fed every ``poll_s`` simulated seconds,
  and the ambient follows a ramp (a case in the afternoon sun: 30 -> 50 -> 30 °C). One hour simulated
  in milliseconds. tests/health/test_thermal.py asserts on these runs.
- ``live``: a real ``edgecam run`` on the shared clip with ``EDGECAM_HOST_ROOT`` on a fake tree whose
  ``thermal_zone0/temp`` a thread here writes from the heat model, fed with the CPU time the edgecam
  process really used (``/proc/<pid>/stat``). Scaled to minutes (short ``tau_s``), so it runs in a test.

    python tools/thermal_figures.py                 # both simulated runs: summary, traces in build/thermal/
    python tools/thermal_figures.py live --seconds 60
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgecam.health.thermal import ThermalGovernor  # noqa: E402

SOFT_LIMIT_C = 80.0


def ambient_ramp(t: float) -> float:
    """A case in the sun: 30 °C for 5 min, up to 50 °C over 20 min, 15 min there, down over 10, 30 again."""
    points = [(0, 30.0), (300, 30.0), (1500, 50.0), (2400, 50.0), (3000, 30.0), (3600, 30.0)]
    for (t0, a0), (t1, a1) in zip(points, points[1:]):
        if t <= t1:
            return a0 + (a1 - a0) * (t - t0) / (t1 - t0)
    return points[-1][1]


@dataclass
class HeatModel:
    """First order: dT/dt = (ambient + c_per_core * cores - T) / tau_s."""

    temp_c: float = 45.0
    tau_s: float = 120.0
    c_per_core: float = 40.0

    def step(self, ambient_c: float, cores: float, dt: float) -> float:
        target = ambient_c + self.c_per_core * cores
        self.temp_c += (target - self.temp_c) * min(1.0, dt / self.tau_s)
        return self.temp_c


def simulate(thermal: str, seconds: int = 3600, poll_s: float = 5.0, fps: float = 30.0,
             frame_cpu_s: float = 0.025, base_cpu: float = 0.1, ambient=ambient_ramp,
             governor: ThermalGovernor | None = None) -> list[dict]:
    """One simulated run, a row a second: t, ambient, temperature, every, cores."""
    if thermal == "auto" and governor is None:
        governor = ThermalGovernor(SOFT_LIMIT_C)
    model = HeatModel(temp_c=ambient(0) + 15.0)
    rows = []
    for t in range(seconds):
        every = governor.every if governor is not None else 1
        cores = base_cpu + frame_cpu_s * fps / every
        temp = model.step(ambient(t), cores, 1.0)
        if governor is not None and t % poll_s == 0:
            governor.update(temp, float(t), rate=fps if every == 1 else None)
        rows.append({"t": t, "ambient_c": round(ambient(t), 2), "temp_c": round(temp, 2), "every": every,
                     "cores": round(cores, 3)})
    return rows


def summary(rows: list[dict], governor: ThermalGovernor | None = None) -> dict:
    over = [r for r in rows if r["temp_c"] >= SOFT_LIMIT_C]
    out = {"max_temp_c": max(r["temp_c"] for r in rows), "seconds_at_or_over_soft_limit": len(over),
           "max_every": max(r["every"] for r in rows), "final_every": rows[-1]["every"],
           "classified_share": round(sum(1 / r["every"] for r in rows) / len(rows), 3)}
    if governor is not None:
        out.update(steps_down=governor.steps_down, steps_up=governor.steps_up)
    return out


# ------------------------------------------------------------------ live


class CpuHeatedZone(threading.Thread):
    """Writes ``<root>/sys/class/thermal/thermal_zone0/temp`` from the CPU time process ``pid`` uses."""

    def __init__(self, root: Path, pid: int, model: HeatModel, ambient_c: float, period_s: float = 0.2):
        super().__init__(name="cpu-heated-zone", daemon=True)
        self.zone = root / "sys/class/thermal/thermal_zone0"
        self.pid, self.model, self.ambient_c, self.period_s = pid, model, ambient_c, period_s
        self.stop = threading.Event()
        self.trace: list[tuple[float, float, float]] = []  # (t, cores, temp)
        write_zone(self.zone, model.temp_c)

    def run(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        last_cpu, last_t = cpu_seconds(self.pid, tick), time.monotonic()
        start = last_t
        while not self.stop.wait(self.period_s):
            cpu, now = cpu_seconds(self.pid, tick), time.monotonic()
            if cpu is None:
                return
            cores = (cpu - last_cpu) / (now - last_t)
            temp = self.model.step(self.ambient_c, cores, now - last_t)
            write_zone(self.zone, temp)
            self.trace.append((round(now - start, 2), round(cores, 3), round(temp, 2)))
            last_cpu, last_t = cpu, now


def cpu_seconds(pid: int, tick: int) -> float | None:
    """utime + stime of ``pid`` in seconds (None once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / tick


def write_zone(zone: Path, temp_c: float) -> None:
    zone.mkdir(parents=True, exist_ok=True)
    (zone / "type").write_text("cpu-thermal\n")
    tmp = zone / "temp.tmp"
    tmp.write_text(f"{round(temp_c * 1000)}\n")
    os.replace(tmp, zone / "temp")  # a reader never sees half a number


def fake_pi_tree(root: Path) -> None:
    """A Raspberry Pi 5's device tree model and no throttling: the rest of what the reader looks at."""
    (root / "proc/device-tree").mkdir(parents=True, exist_ok=True)
    (root / "proc/device-tree/model").write_text("Raspberry Pi 5 Model B Rev 1.0\0")
    fw = root / "sys/devices/platform/soc/soc:firmware"
    fw.mkdir(parents=True, exist_ok=True)
    (fw / "get_throttled").write_text("0\n")


def live_run(thermal: str, seconds: float, workdir: Path, ambient_c: float = 60.0, c_per_core: float = 100.0,
             tau_s: float = 3.0, env: dict | None = None, source: str | None = None) -> dict:
    """A real ``edgecam run`` heating a fake tree; returns the trace, the log lines and what was logged."""
    shared = ROOT.parent / "shared"
    root = workdir / f"host-{thermal}"
    fake_pi_tree(root)
    log = workdir / f"{thermal}.jsonl"
    cfg = workdir / f"{thermal}.yaml"
    clip = source or str(shared / "video" / "imagenet20_640x480_30fps.mp4")
    cfg.write_text(
        f"model: {{name: '{shared / 'models' / 'v3-small_224_1.0_uint8.tflite'}', "
        f"labels: '{shared / 'models' / 'imagenet_labels.txt'}', threads: 1, interpreters: 1, backend: cpu}}\n"
        f"source: {{type: opencv, uri: '{clip}', realtime: true, loop: true, policy: latest}}\n"
        "display: {mode: none}\n"
        f"log: {{path: '{log}', mode: every}}\n"
        f"health: {{thermal: {thermal}, poll_s: 0.5, hold_s: 2, soft_limit_c: {SOFT_LIMIT_C}}}\n")
    run_env = dict(env or os.environ, PYTHONPATH=str(ROOT), EDGECAM_HOST_ROOT=str(root))
    proc = subprocess.Popen([sys.executable, "-m", "edgecam", "run", "--config", str(cfg)], env=run_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    zone = CpuHeatedZone(root, proc.pid, HeatModel(temp_c=ambient_c, tau_s=tau_s, c_per_core=c_per_core),
                         ambient_c)
    zone.start()
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.terminate()
    stderr = proc.communicate(timeout=30)[1]
    zone.stop.set()
    zone.join(2)
    lines = log.read_text().splitlines() if log.exists() else []
    return {"thermal": thermal, "exit": proc.returncode, "trace": zone.trace, "results": len(lines),
            "steps": [line for line in stderr.splitlines() if "thermal:" in line],
            "max_temp_c": max((t for _, _, t in zone.trace), default=None), "stderr": stderr}


# ------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", choices=["sim", "live"], default="sim")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "thermal")
    parser.add_argument("--seconds", type=float, default=60.0, help="live: each run's length")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    results = {}
    for thermal in ("off", "auto"):
        if args.mode == "sim":
            governor = ThermalGovernor(SOFT_LIMIT_C) if thermal == "auto" else None
            rows = simulate(thermal, governor=governor)
            with open(args.out / f"sim-{thermal}.csv", "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
            results[thermal] = summary(rows, governor)
        else:
            with tempfile.TemporaryDirectory(prefix="thermal_live_") as tmp:
                run = live_run(thermal, args.seconds, Path(tmp))
            with open(args.out / f"live-{thermal}.csv", "w", newline="") as f:
                csv.writer(f).writerows([("t", "cores", "temp_c"), *run["trace"]])
            results[thermal] = {k: run[k] for k in ("exit", "results", "max_temp_c")} | {
                "steps": [re.sub(r"^\S+ \S+ ", "", s) for s in run["steps"]]}
    print(json.dumps(results, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
