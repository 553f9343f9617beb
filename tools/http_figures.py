#!/usr/bin/env python3
"""Figures for choosing the HTTP server: the standard library's (as edgecam serves today) against aiohttp
and Starlette on uvicorn, serving the same MJPEG stream.

For each server it measures, in a subprocess of its own:

* import time: the median CPU time ``import <the server's modules>`` takes in a fresh interpreter (timed
  inside it, warm disk cache, 7 runs);
* peak RSS (VmHWM) of the server process after the runs below, and its RSS once started;
* CPU per streamed frame: the server process's user + system CPU time while ``V`` viewers (1, then 20)
  each read the stream for ``--seconds``, divided by the frames they received.

Each server keeps the newest JPEG (a frame producer replaces it ``--fps`` times a second, cycling through
real 640x480 JPEGs made here with OpenCV) and sends each viewer the newest picture at most ``--fps`` times
a second, as edgecam's ``/stream.mjpg`` does; the viewers run in this process (their CPU is not counted)
and count multipart boundaries. Loopback only; the load is bounded (``viewers x fps`` frames a second).

The other servers need their packages in a separate environment, never edgecam's::

    python -m venv /tmp/httpvenv && /tmp/httpvenv/bin/pip install aiohttp starlette uvicorn
    python tools/http_figures.py --python /tmp/httpvenv/bin/python

Run with edgecam's environment (it needs numpy and OpenCV to make the JPEGs). Prints one Markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BOUNDARY = b"edgecamframe"
IMPORTS = {
    "stdlib": "import http.server, socketserver, threading",
    "aiohttp": "import aiohttp.web",
    "starlette": "import starlette.applications, starlette.responses, uvicorn",
}

# ----------------------------------------------------------------------------------- the servers (subprocess)


def _load_frames(path: str) -> list[bytes]:
    data = Path(path).read_bytes()
    out, at = [], 0
    while at < len(data):
        n = int.from_bytes(data[at:at + 4], "little")
        out.append(data[at + 4:at + 4 + n])
        at += 4 + n
    return out


def _part(jpeg: bytes) -> bytes:
    return b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\nContent-Length: " + str(len(jpeg)).encode() + \
        b"\r\n\r\n" + jpeg + b"\r\n"


def serve_stdlib(port: int, frames: list[bytes], fps: float) -> None:
    """A thread per client waiting on a condition for a newer picture: the design of edgecam's HttpSink."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    cond = threading.Condition()
    latest = {"seq": 0, "jpeg": frames[0]}

    def produce():
        i = 0
        while True:
            time.sleep(1 / fps)
            i += 1
            with cond:
                latest["seq"], latest["jpeg"] = i, frames[i % len(frames)]
                cond.notify_all()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}")
            self.end_headers()
            seen = -1
            try:
                while True:
                    with cond:
                        cond.wait_for(lambda: latest["seq"] > seen, timeout=5)
                        seen, jpeg = latest["seq"], latest["jpeg"]
                    self.wfile.write(_part(jpeg))
            except OSError:
                pass

    threading.Thread(target=produce, daemon=True).start()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


def serve_aiohttp(port: int, frames: list[bytes], fps: float) -> None:
    import asyncio

    from aiohttp import web

    latest = {"seq": 0, "jpeg": frames[0]}
    changed = asyncio.Event()

    async def produce(app):
        async def loop():
            nonlocal changed
            i = 0
            while True:
                await asyncio.sleep(1 / fps)
                i += 1
                latest["seq"], latest["jpeg"] = i, frames[i % len(frames)]
                old, changed = changed, asyncio.Event()
                old.set()
        task = asyncio.create_task(loop())
        yield
        task.cancel()

    async def stream(request):
        resp = web.StreamResponse(headers={"Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}"})
        await resp.prepare(request)
        seen = -1
        try:
            while True:
                if latest["seq"] <= seen:
                    await changed.wait()
                seen = latest["seq"]
                await resp.write(_part(latest["jpeg"]))
        except (ConnectionError, asyncio.CancelledError):
            pass
        return resp

    app = web.Application()
    app.router.add_get("/stream.mjpg", stream)
    app.cleanup_ctx.append(produce)
    print("ready", flush=True)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def serve_starlette(port: int, frames: list[bytes], fps: float) -> None:
    import asyncio

    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    latest = {"seq": 0, "jpeg": frames[0]}
    state = {"changed": None}

    async def produce():
        i = 0
        while True:
            await asyncio.sleep(1 / fps)
            i += 1
            latest["seq"], latest["jpeg"] = i, frames[i % len(frames)]
            old, state["changed"] = state["changed"], asyncio.Event()
            old.set()

    async def stream(request):
        async def parts():
            seen = -1
            while True:
                if latest["seq"] <= seen:
                    await state["changed"].wait()
                seen = latest["seq"]
                yield _part(latest["jpeg"])
        return StreamingResponse(parts(), media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        state["changed"] = asyncio.Event()
        task = asyncio.create_task(produce())
        print("ready", flush=True)
        yield
        task.cancel()

    app = Starlette(routes=[Route("/stream.mjpg", stream)], lifespan=lifespan)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


SERVERS = {"stdlib": serve_stdlib, "aiohttp": serve_aiohttp, "starlette": serve_starlette}

# ----------------------------------------------------------------------------------------- the measuring side


def make_frames(path: Path, n: int = 30) -> int:
    """``n`` 640x480 JPEGs of a moving scene, length-prefixed in one file; returns their mean size."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    base = cv2.resize(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8), (640, 480), interpolation=cv2.INTER_CUBIC)
    sizes, out = [], bytearray()
    for i in range(n):
        img = np.roll(base, 8 * i, axis=1)
        cv2.putText(img, str(i), (20, 60), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
        jpeg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
        out += len(jpeg).to_bytes(4, "little") + jpeg
        sizes.append(len(jpeg))
    path.write_bytes(bytes(out))
    return round(statistics.mean(sizes))


def import_ms(python: str, kind: str, repeat: int = 7) -> float:
    """Median CPU time the server's imports take in a fresh interpreter (timed inside it: no start-up cost; CPU
    time rather than wall time, so that other work on a shared machine does not count)."""
    code = f"import time; t = time.process_time(); {IMPORTS[kind]}; print(time.process_time() - t)"

    def run():
        return float(subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout)

    run()  # warm the disk cache
    return 1000 * statistics.median(run() for _ in range(repeat))


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


class Viewer(threading.Thread):
    """Reads /stream.mjpg and counts the pictures (boundaries) until stopped."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port, self.frames, self.stop = port, 0, threading.Event()

    def run(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            tail = b""
            marker = b"--" + BOUNDARY + b"\r\n"
            while not self.stop.is_set():
                data = s.recv(1 << 16)
                if not data:
                    return
                data = tail + data
                self.frames += data.count(marker)
                tail = data[-(len(marker) - 1):]


def measure(python: str, kind: str, frames_file: Path, fps: float, seconds: float) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([python, __file__, "--serve", kind, "--port", str(port), "--frames", str(frames_file),
                             "--fps", str(fps)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready", f"{kind} did not start"
        for _ in range(100):  # the port opens just after "ready" for some
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        out = {"rss_start_kb": rss_kb(proc.pid, "VmRSS")}
        for viewers in (1, 20):
            clients = [Viewer(port) for _ in range(viewers)]
            for c in clients:
                c.start()
            time.sleep(1.0)  # connected and streaming
            f0, c0, t0 = sum(c.frames for c in clients), cpu_s(proc.pid), time.monotonic()
            time.sleep(seconds)
            f1, c1, t1 = sum(c.frames for c in clients), cpu_s(proc.pid), time.monotonic()
            for c in clients:
                c.stop.set()
            for c in clients:
                c.join(5)
            out[f"frames_{viewers}"] = f1 - f0
            out[f"cpu_ms_per_frame_{viewers}"] = 1000 * (c1 - c0) / max(1, f1 - f0)
            out[f"cpu_pct_{viewers}"] = 100 * (c1 - c0) / (t1 - t0)
            time.sleep(0.5)
        out["rss_peak_kb"] = rss_kb(proc.pid, "VmHWM")
    finally:
        proc.kill()
        proc.wait()
    out["import_ms"] = import_ms(python, kind)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--python", default=sys.executable,
                   help="the interpreter with aiohttp, starlette and uvicorn installed (a scratch venv)")
    p.add_argument("--servers", default="stdlib,aiohttp,starlette")
    p.add_argument("--fps", type=float, default=15.0, help="stream frame rate (edgecam's default stream_fps)")
    p.add_argument("--seconds", type=float, default=10.0, help="how long each viewer count is measured")
    p.add_argument("--serve", choices=sorted(SERVERS), help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--frames", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        SERVERS[args.serve](args.port, _load_frames(args.frames), args.fps)
        return 0
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())
    with tempfile.TemporaryDirectory() as tmp:
        frames_file = Path(tmp) / "frames.bin"
        size = make_frames(frames_file)
        version = subprocess.run([args.python, "-c", "import sys; print(sys.version.split()[0])"],
                                 capture_output=True, text=True).stdout.strip()
        print(f"CPU: {cpu} ({os.cpu_count()} cores); Python {version}; MJPEG of 640x480 JPEGs ({size // 1000} KB) "
              f"at {args.fps:g} fps, {args.seconds:g} s per viewer count, loopback\n")
        print("| server | import (ms) | RSS started (MB) | peak RSS (MB) | CPU/frame, 1 viewer (ms) "
              "| CPU/frame, 20 viewers (ms) | CPU, 20 viewers (% of a core) | frames (1 / 20 viewers) |")
        print("|---|---|---|---|---|---|---|---|")
        for kind in args.servers.split(","):
            r = measure(args.python, kind, frames_file, args.fps, args.seconds)
            print(f"| {kind} | {r['import_ms']:.0f} | {r['rss_start_kb'] / 1024:.1f} | {r['rss_peak_kb'] / 1024:.1f} "
                  f"| {r['cpu_ms_per_frame_1']:.3f} | {r['cpu_ms_per_frame_20']:.3f} | {r['cpu_pct_20']:.1f} "
                  f"| {r['frames_1']} / {r['frames_20']} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
