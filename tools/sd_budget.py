#!/usr/bin/env python3
"""What a day (and a year) of edgecam costs an SD card: bytes written, measured.

Each case runs ``edgecam run`` headless on a paced source (the shared 30 fps
clip with ``realtime``, or one photo repeated at 30 fps: a still scene) for
``--minutes``, reads the process's ``/proc/<pid>/io`` (``write_bytes``: what
reached the block layer; ``wchar``: what went through ``write()``) and the
sizes of the files it left, and extrapolates to a day and a year. Its stderr
(what the journal would receive under systemd) is counted too, and turned into
journal bytes with a per-line estimate (``JOURNAL_BYTES_PER_LINE``, see
docs/pi-health.md).

    python tools/sd_budget.py run --case every --minutes 10 --out build/sd_budget
    python tools/sd_budget.py report build/sd_budget      # the Markdown table of every case run

Needs ../shared (the models and the clip). The figures depend on the CPU only
through the results per second (reported; a slower CPU writes fewer lines in
``mode: every``), so each case also gives bytes per result.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
MODEL = SHARED / "models" / "v3-small_224_1.0_uint8.tflite"
LABELS = SHARED / "models" / "imagenet_labels.txt"
CLIP = SHARED / "video" / "imagenet20_640x480_30fps.mp4"
STILL = SHARED / "images" / "cat.bmp"
DAY = 86400
#: Journal bytes a line costs besides its text, from the journal file format (systemd.io/JOURNAL_FILE_FORMAT):
#: an entry object (64 bytes), then per field of the ~22 journald adds (_PID, _COMM, _SYSTEMD_UNIT...)
#: an entry item and a slot in that field's data object's entry array (24 bytes; 8 in the compact
#: format of systemd >= 252), the MESSAGE's own data object (64 bytes + the text) and a slot in the
#: file's entry array: about 700 bytes (regular) or 350 (compact). An estimate in between, not a
#: measurement (no journald runs where this was measured).
JOURNAL_BYTES_PER_LINE = 500

#: case -> (scene, config fragment)
CASES = {
    "default": ("clip", ""),
    "every": ("clip", "log: {path: LOGDIR/predictions.jsonl, mode: every}\n"),
    "changes": ("clip", "log: {path: LOGDIR/predictions.jsonl, mode: changes}\n"),
    "heartbeat": ("clip", "log: {path: LOGDIR/predictions.jsonl, mode: heartbeat}\n"),
    "still-default": ("still", ""),
    "still-heartbeat": ("still", "log: {path: LOGDIR/predictions.jsonl, mode: heartbeat}\n"),
    "events": ("clip", "events:\n  dir: LOGDIR/events\n  rules:\n"
                       "    - {name: tench, label: tench, snapshot: true, cooldown_s: 1}\n"
                       "    - {name: orange, label: orange, snapshot: true, cooldown_s: 1}\n"),
}


def config_text(case: str, workdir: Path) -> str:
    scene, extra = CASES[case]
    if scene == "clip":
        source = f"source: {{type: opencv, uri: '{CLIP}', realtime: true, loop: true}}\n"
    else:
        folder = workdir / "still"
        folder.mkdir(exist_ok=True)
        link = folder / STILL.name
        if not link.exists():
            link.symlink_to(STILL)
        source = f"source: {{type: images, uri: '{folder}', fps: 30, realtime: true, loop: true}}\n"
    return (f"model: {{name: '{MODEL}', labels: '{LABELS}', threads: 1, interpreters: 1, backend: cpu}}\n"
            + source + "display: {mode: none}\n" + extra.replace("LOGDIR", str(workdir / "out")))


def read_io(pid: int) -> dict[str, int]:
    """``/proc/<pid>/io`` as numbers (empty when the process is gone)."""
    try:
        text = Path(f"/proc/{pid}/io").read_text()
    except OSError:
        return {}
    return {k.strip(): int(v) for k, v in (line.split(":") for line in text.splitlines())}


def tree_size(folder: Path) -> tuple[int, int]:
    """Bytes and files under ``folder``."""
    total = files = 0
    for path in folder.rglob("*"):
        if path.is_file():
            total, files = total + path.stat().st_size, files + 1
    return total, files


def run_case(case: str, minutes: float, out: Path) -> dict:
    """Run one case and write ``out/<case>.json``; returns the figures."""
    workdir = Path(tempfile.mkdtemp(prefix=f"sd_budget_{case}_"))
    (workdir / "out").mkdir()
    cfg = workdir / "config.yaml"
    cfg.write_text(config_text(case, workdir))
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    # stdout and stderr into a pipe, as under systemd (journald reads them; edgecam writes no file for them).
    proc = subprocess.Popen([sys.executable, "-m", "edgecam", "run", "--config", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=workdir)
    console = bytearray()
    def drain():  # as it comes (read1), so that len(console) is what was printed so far
        for chunk in iter(lambda: proc.stdout.read1(65536), b""):
            console.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    io: dict[str, int] = {}
    start = time.monotonic()
    first: dict[str, int] = {}
    # The first 30 s are start-up (model load); the rate is taken over the rest.
    while time.monotonic() - start < minutes * 60 and proc.poll() is None:
        time.sleep(5)
        io = read_io(proc.pid) or io
        if not first and time.monotonic() - start >= 30:
            first = dict(io, t=time.monotonic() - start, stderr=len(console))
    elapsed = time.monotonic() - start
    io_end = read_io(proc.pid) or io
    before_stop = len(console)  # what the stop prints is said once, not every day
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    reader.join(10)
    stderr = bytes(console)
    files_bytes, files = tree_size(workdir / "out")
    events = sum(1 for _ in (workdir / "out").rglob("*-clean.jpg"))  # one clean snapshot per event
    log = workdir / "out" / "predictions.jsonl"
    log_lines = sum(p.read_bytes().count(b"\n") for p in log.parent.glob("predictions.jsonl*")) if log.exists() else 0
    span = elapsed - first.get("t", 0.0)
    per_s = {k: (io_end.get(k, 0) - first.get(k, 0)) / span for k in ("write_bytes", "wchar")}
    lines = stderr.count(b"\n")
    steady = stderr[first.get("stderr", 0):before_stop]  # start-up lines are written once, not every day
    figures = {
        "case": case, "scene": CASES[case][0], "seconds": round(elapsed, 1), "exit": proc.returncode,
        "cpu": cpu_name(), "write_bytes": io_end.get("write_bytes", 0), "wchar": io_end.get("wchar", 0),
        "write_bytes_per_day": per_s["write_bytes"] * DAY, "wchar_per_day": per_s["wchar"] * DAY,
        "files_bytes": files_bytes, "files": files, "log_lines": log_lines, "events": events,
        "log_bytes_per_day": files_bytes / elapsed * DAY,
        # mode every: a line per result, so the lines give the rate and the size of a line
        "results_per_s": log_lines / elapsed if "mode: every" in CASES[case][1] else None,
        "bytes_per_line": files_bytes / log_lines if log_lines else None,
        "stderr_lines": lines, "stderr_bytes": len(stderr),
        "journal_lines_per_day": steady.count(b"\n") / span * DAY,
        "journal_bytes_per_day": (len(steady) + steady.count(b"\n") * JOURNAL_BYTES_PER_LINE) / span * DAY,
        "stderr_tail": stderr.decode(errors="replace").splitlines()[-5:],
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{case}.json").write_text(json.dumps(figures, indent=1))
    shutil.rmtree(workdir, ignore_errors=True)
    return figures


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def report(folder: Path) -> str:
    """A Markdown table of every ``<case>.json`` in ``folder``."""
    rows = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    lines = ["| case | scene | minutes | results/s | write_bytes/day | log+events files/day | "
             "journal lines/day | journal/day (est.) | a year (write_bytes + journal) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        year = (r["write_bytes_per_day"] + r["journal_bytes_per_day"]) * 365
        rate = f"{r['results_per_s']:.1f}" if r.get("results_per_s") else "-"
        lines.append(f"| {r['case']} | {r['scene']} | {r['seconds'] / 60:.1f} | {rate} | "
                     f"{human(r['write_bytes_per_day'])} | {human(r['log_bytes_per_day'])} | "
                     f"{r.get('journal_lines_per_day', 0):.0f} | {human(r['journal_bytes_per_day'])} | {human(year)} |")
        if r.get("events"):
            lines.append(f"| {r['case']}: a day of 100 events | | | | {human(r['write_bytes_per_day'] / (r['events'] / r['seconds'] * DAY) * 100)} "
                         f"({human(r['write_bytes'] / r['events'])} written per event) | | | | |")
        if r.get("results_per_s") and r.get("bytes_per_line"):
            at30 = r["bytes_per_line"] * 30 * DAY
            lines.append(f"| {r['case']} at 30 results/s | | | 30 | {human(at30)} (scaled: {r['bytes_per_line']:.0f} "
                         f"bytes a line) | | | | {human(at30 * 365)} |")
    cpus = sorted({r["cpu"] for r in rows})
    lines.append("")
    lines.append(f"CPU: {', '.join(cpus)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run cases and write <out>/<case>.json")
    run.add_argument("--case", action="append", choices=sorted(CASES), required=True)
    run.add_argument("--minutes", type=float, default=10.0)
    run.add_argument("--out", type=Path, default=ROOT / "build" / "sd_budget")
    rep = sub.add_parser("report", help="the Markdown table of the cases run")
    rep.add_argument("folder", type=Path, nargs="?", default=ROOT / "build" / "sd_budget")
    args = parser.parse_args(argv)
    if args.cmd == "report":
        print(report(args.folder))
        return 0
    if not CLIP.exists():
        print(f"sd_budget: {CLIP} is missing (../shared); nothing measured", file=sys.stderr)
        return 2
    for case in args.case:
        figures = run_case(case, args.minutes, args.out)
        print(json.dumps({k: figures[k] for k in ("case", "write_bytes_per_day", "journal_bytes_per_day")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
