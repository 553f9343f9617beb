"""Helpers for the hostile-input tests of the HTTP output: a small history, raw requests, open file handles."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import cv2
import numpy as np

from edgecam.events.avi import MjpegAviWriter
from edgecam.events.history import History
from edgecam.events.media import media_path
from edgecam.events.rules import Event


def make_history(folder: Path, labels=("ibex", "a&b #c+d", "a&b #c+d", "a&b #c+d"), clip_frames: int = 40,
                 fps: float = 2.0) -> list[Event]:
    """A history of one event per label (oldest first), the first with a Motion-JPEG AVI clip of
    ``clip_frames`` frames at ``fps`` (so that a stream of it lasts ``clip_frames / fps`` seconds)."""
    h = History(folder)
    h.open()
    t0 = time.time() - 3600
    events = []
    for i, label in enumerate(labels):
        ev = Event(rule="r", label=label, region=None, start=t0 + 10 * i, start_frame=10 * i, peak_score=0.9,
                   end=t0 + 10 * i + 2, end_frame=10 * i + 5)
        h.start_event(ev)
        h.end_event(ev)
        events.append(ev)
    path = media_path(folder, events[0], "clip", "avi")
    with open(path, "wb") as f:
        w = MjpegAviWriter(f, 64, 48)
        for i in range(clip_frames):
            w.write(cv2.imencode(".jpg", np.full((48, 64, 3), i % 256, np.uint8))[1].tobytes())
        w.close(fps)
    h.submit(lambda conn: h.add_media(events[0], {"clip": path}))
    assert h.flush()
    h.close()
    return events


def started(events_dir=None, regions=(), examples_dir=None, **cfg):
    """An HTTP output on a free port of 127.0.0.1, started, with one picture and result fed (close it after)."""
    from edgecam.config.schema import HttpConfig
    from edgecam.events.web import EventsWeb
    from edgecam.outputs.http import HttpSink
    from edgecam.stats import Stats
    from tests.outputs.test_http import feed

    stats = Stats()
    sink = HttpSink(HttpConfig(port=0, **cfg), stats, regions=regions, examples_dir=examples_dir)
    if events_dir is not None:
        EventsWeb(events_dir).mount_on(sink)
    sink.keepalive_s = 0.2  # an idle live stream notices a client that left this soon
    sink.start()
    feed(sink, stats, 0)
    return sink


def raw(port: int, data: bytes, timeout: float = 10.0, read_all: bool = True, stream_head: bool = False) -> bytes:
    """Send ``data`` on a new connection, half-close it, and return what the server answers: all of it, or only
    its head (``read_all=False``, or ``stream_head`` and the answer is a multipart stream). An answer that goes
    on for more than 20 s is cut there (a failure for the caller to see, not a hang)."""
    deadline = time.monotonic() + 20
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:  # the server answered and closed before taking it all (too long a line)
            pass
        out = b""
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
            head, end, _ = out.partition(b"\r\n\r\n")
            if end and (not read_all or (stream_head and b"multipart/x-mixed-replace" in head)):
                break
        return out


def status(answer: bytes) -> int | None:
    """The status code of a raw HTTP answer, None if it is not one."""
    parts = answer.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        return None
    return int(parts[1])


def open_fds() -> dict[int, str]:
    """This process's open file descriptors: fd -> what it points to (a path, socket:[...], pipe:[...])."""
    out = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            out[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # closed between listdir and readlink (the listdir's own fd)
            pass
    return out


def handles_left(base: dict[int, str]) -> list[str]:
    """The sockets and events.db handles open now that were not in ``base`` (an :func:`open_fds` taken before).

    Compared by what they point to, not by count: a socket of an earlier test that closes meanwhile
    (the test files run in another order under pytest-xdist) must not hide one of this test's left open.
    """
    now = open_fds()
    sockets = {v for v in now.values() if v.startswith("socket:")} - set(base.values())
    dbs = sum("events.db" in v for v in now.values()) - sum("events.db" in v for v in base.values())
    return sorted(sockets) + ["events.db"] * max(0, dbs)


def sockets_and_db(fds: dict[int, str]) -> tuple[int, int]:
    """(how many sockets, how many handles on an events.db file) among ``fds``."""
    return (sum(v.startswith("socket:") for v in fds.values()),
            sum("events.db" in v for v in fds.values()))
