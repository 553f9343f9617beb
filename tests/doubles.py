"""Test doubles shared by the suite: a fake camera, a poll-until helper, an MJPEG stream client, and the check
that a failed command said why in one line.

Behavioural fakes (they do what the real thing does, in miniature), no mocks.
"""

from __future__ import annotations

import contextlib
import enum
import http.client
import re
import socket
import subprocess
import threading
import time

import numpy as np
import pytest

from edgecam.errors import SourceError
from edgecam.camera.frame import Frame
from edgecam.camera.base import FrameSource

WAIT_S = 20.0  # how long wait_until waits: a bound for "it happened", never a speed requirement

# The TFLite runtime prints this itself on stderr when it loads a model; nothing in Python can turn it off.
NATIVE_NOISE = ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",)
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (DEBUG|INFO|WARNING) ")


class Besides(enum.Enum):
    """What else a failed command may print on stderr beside its one error line (nothing else counts)."""

    NOTHING = "the TFLite runtime's own line"  # a command that logs nothing (classify, eval, check-config)
    INFO_LOGS = "log lines at INFO"  # edgecam run, which logs its start-up
    LOGS = "log lines at DEBUG, INFO and WARNING"  # a backend that warns before it fails
    ANYTHING = "any line not starting with 'edgecam:'"  # only edgecam's own lines are counted


_IGNORED = {
    Besides.NOTHING: lambda line: line in NATIVE_NOISE,
    Besides.INFO_LOGS: lambda line: " INFO " in line or "XNNPACK delegate" in line,
    Besides.LOGS: lambda line: bool(LOG_LINE.match(line)),
    Besides.ANYTHING: lambda line: not line.startswith("edgecam:"),
}


def one_error_line(proc: subprocess.CompletedProcess, code: int | None, *fragments: str,
                   besides: Besides = Besides.NOTHING) -> str:
    """The command failed with exit ``code`` (None: not checked here) and said why in ONE line starting
    "edgecam: " that names every fragment, with no traceback; returns that line."""
    if code is not None:
        assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not _IGNORED[besides](line)]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("edgecam: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def wait_until(predicate, what: str = "condition", timeout: float = WAIT_S, interval: float = 0.02, check=None):
    """Poll ``predicate()`` until it returns something truthy, and return that.

    Fails the test after ``timeout`` seconds. ``check()``, called between polls,
    may fail it sooner (a process waited on has exited: see :func:`alive`).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if check is not None:
            check()
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def alive(proc, what: str):
    """A ``check`` for :func:`wait_until`: fail at once, with its stderr, when ``proc`` has exited."""

    def check():
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"edgecam exited ({proc.returncode}) before {what}: {(err or '')[-2000:]}")

    return check


@contextlib.contextmanager
def background(argv: list[str], env: dict, cwd):
    """``argv`` running in a child process (text pipes); killed on the way out if the test left it running."""
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


class FakeCamera(FrameSource):
    """A camera (``live``) or a file (``live=False``) in miniature.

    Frames are numbered 0, ``index_step``, 2 * ``index_step``... (a source's
    own numbers), ``size`` (width, height) pictures whose grey level follows
    the frame. Paced at ``fps`` when ``pace`` (``fps=0``: as fast as read; a
    late reader gets no burst of catch-up frames, as from a real camera);
    ends after ``frames`` (None: never); raises SourceError once
    ``fail_after`` frames were read; blocks while ``flowing`` is clear (a
    stalled camera). ``count`` frames were read so far; ``close()`` sets
    ``closed`` and counts itself in ``close_count``.
    """

    def __init__(self, name: str = "fake-camera", fps: float = 200.0, frames: int | None = None, live: bool = True,
                 fail_after: int | None = None, size=(64, 48), index_step: int = 1, pace: bool = True):
        self.name = name
        self.fps = fps or None
        self.live = live
        self.frames = frames
        self.fail_after = fail_after
        self.size = size
        self.index_step = index_step
        self.pace = pace
        self.count = 0
        self.close_count = 0
        self.closed = threading.Event()
        self.flowing = threading.Event()
        self.flowing.set()
        self._next: float | None = None

    def read(self):
        while not self.flowing.wait(0.05):
            if self.closed.is_set():
                return None
        if self.fail_after is not None and self.count >= self.fail_after:
            raise SourceError(f"{self.name}: the camera stopped delivering frames")
        if self.frames is not None and self.count >= self.frames:
            return None
        if self.pace and self.fps:
            now = time.monotonic()
            period = 1 / self.fps
            self._next = now if self._next is None or self._next < now - period else self._next + period
            if self._next > now:
                time.sleep(self._next - now)
        w, h = self.size
        image = np.full((h, w, 3), 90 + self.count % 100, np.uint8)
        frame = Frame(image=image, index=self.count * self.index_step, timestamp=time.monotonic(),
                      wall_time=time.time())
        self.count += 1
        return frame

    def close(self):
        self.close_count += 1
        self.closed.set()


class StreamClient:
    """A ``/stream.mjpg`` reader that parses the multipart parts (pictures) one by one."""

    def __init__(self, port: int, path: str = "/stream.mjpg", headers: dict | None = None, timeout: float = 10):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.conn.request("GET", path, headers=headers or {})
        self.resp = self.conn.getresponse()
        ctype = self.resp.headers.get("Content-Type", "")
        self.boundary = ctype.split("boundary=", 1)[1].encode() if "boundary=" in ctype else None

    def part(self) -> tuple[dict, bytes]:
        """The next part's headers (lower-case names) and bytes."""
        fp = self.resp.fp
        line = fp.readline()
        while line == b"\r\n":
            line = fp.readline()
        assert line == b"--" + self.boundary + b"\r\n", line[:80]
        headers = {}
        while (line := fp.readline()) != b"\r\n":
            assert line, "stream ended inside a part's headers"
            k, v = line.decode().split(":", 1)
            headers[k.strip().lower()] = v.strip()
        data = fp.read(int(headers["content-length"]))
        assert fp.read(2) == b"\r\n"
        return headers, data

    def close(self):
        self.resp.close()  # the response holds the socket open too
        self.conn.close()


class StreamCounter(threading.Thread):
    """Reads ``/stream.mjpg`` in a thread of its own and counts the parts until stopped.

    It counts boundaries in raw socket reads rather than parsing each part as
    :class:`StreamClient` does: twenty of these run beside the pipeline they
    measure, so they must cost next to nothing.
    """

    def __init__(self, port: int, n: int, boundary: bytes = b"--edgecamframe"):
        super().__init__(name=f"stream-client-{n}", daemon=True)
        self.port = port
        self.boundary = boundary
        self.parts = 0
        self.error: BaseException | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
                s.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                tail = b""
                while not self.stop.is_set():
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data = tail + chunk
                    self.parts += data.count(self.boundary)
                    tail = data[-(len(self.boundary) - 1):]  # a boundary split over two chunks
        except BaseException as e:  # reported by the test
            self.error = e


class TabbyModel:
    """A classifier stand-in that always sees a tabby (0.9): a label that holds, for events and commands."""

    name, runtime, backend, threads, view_size = "tabby-model", "fake", "fake", 1, (8, 8)
    labels = ["background", "tabby, tabby cat", "dog"]

    def prepare(self, frame):
        return frame.index

    def classify_prepared(self, tensor, frame, preprocess_ms):
        from edgecam.result import Classification

        return Classification(np.array([0.05, 0.9, 0.05], np.float32), self.labels, model=self.name,
                              frame_index=frame.index, capture_time=frame.timestamp, wall_time=frame.wall_time,
                              result_time=time.monotonic(), inference_ms=1.0, preprocess_ms=preprocess_ms)
