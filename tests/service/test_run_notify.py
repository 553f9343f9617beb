"""sd_notify from a running App: READY after the first result, STATUS, and a watchdog that
stops pinging while the camera stalls or reconnects and pings again once frames flow.

A real AF_UNIX datagram socket stands in for systemd; the App is real, only the
camera and the model are fakes (patched where the App looks them up).
"""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

from edgecam.config.schema import Config
from edgecam.errors import SourceError
from edgecam.result import Classification
from tests.doubles import FakeCamera

WAIT_S = 15.0  # bound for "it happened", not a speed requirement
STALL_TIMEOUT_S = 0.5
WATCHDOG_S = 1.0


class FakeModel:
    """Classifier stand-in; the first classification waits for ``gate``."""

    name = "fake-model"
    runtime = "fake"
    threads = 1
    input_size = (8, 8)
    view_size = (8, 8)
    labels = ["background", "tabby, tabby cat", "dog"]

    def __init__(self):
        self.gate = threading.Event()

    def prepare(self, frame):
        return frame.index

    def classify_prepared(self, tensor, frame, preprocess_ms):
        while not self.gate.wait(0.05):
            pass
        scores = np.array([0.1, 0.8, 0.1], np.float32)
        return Classification(scores=scores, labels=self.labels, model=self.name, frame_index=frame.index,
                              capture_time=frame.timestamp, wall_time=frame.wall_time,
                              result_time=time.monotonic(), inference_ms=1.0, preprocess_ms=preprocess_ms)


class Systemd:
    """Receives sd_notify datagrams in a thread, with their arrival times."""

    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._recv, name="fake-systemd", daemon=True)
        self._thread.start()

    def _recv(self):
        while not self._stop:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.messages.append((time.monotonic(), data.decode()))

    def got(self, prefix: str, after: float = 0.0, before: float = float("inf"), contains: str = "") -> list[float]:
        with self._lock:
            return [t for t, m in self.messages if m.startswith(prefix) and contains in m and after < t < before]

    def wait_for(self, prefix: str, after: float = 0.0, contains: str = "", timeout: float = WAIT_S) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            times = self.got(prefix, after, contains=contains)
            if times:
                return times[0]
            time.sleep(0.02)
        pytest.fail(f"no {prefix}{contains!r} message within {timeout:.0f} s; got {self.texts()}")

    def texts(self) -> list[str]:
        with self._lock:
            return [m for _, m in self.messages]

    def close(self):
        self._stop = True
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def systemd(tmp_path, monkeypatch):
    path = tmp_path / "notify"
    if len(str(path)) >= 100:
        pytest.skip(f"tmp_path too long for a Unix socket path: {path}")
    sd = Systemd(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", str(int(WATCHDOG_S * 1_000_000)))
    monkeypatch.delenv("WATCHDOG_PID", raising=False)  # unset: the watchdog is ours
    yield sd
    sd.close()


def start_app(monkeypatch, model, open_source):
    import edgecam.camera
    import edgecam.model.backends
    from edgecam.pipeline.app import App

    monkeypatch.setattr(edgecam.model.backends, "load_classifier", lambda cfg, **kw: model)
    monkeypatch.setattr(edgecam.camera, "open_source", open_source)
    cfg = Config()
    cfg.display.mode = "none"
    cfg.source.timeout_s = STALL_TIMEOUT_S
    cfg.source.reconnect_max_s = 0.2
    app = App(cfg)
    out = {}
    thread = threading.Thread(target=lambda: out.setdefault("code", app.run()), name="test-app", daemon=True)
    thread.start()
    return app, thread, out


def stop_app(app, thread, out) -> int:
    app.pipeline.stop()
    thread.join(WAIT_S)
    assert not thread.is_alive(), "App.run() did not return after stop()"
    return out["code"]


def test_ready_status_and_watchdog_through_a_stall(systemd, monkeypatch):
    model, cam = FakeModel(), FakeCamera("fake-cam", fps=50)
    app, thread, out = start_app(monkeypatch, model, lambda cfg, size=None, **kw: cam)
    try:
        # Frames flow but nothing is classified yet: not ready.
        systemd.wait_for("STATUS=", contains="source running")
        time.sleep(0.5)
        assert systemd.got("READY=1") == []

        released = time.monotonic()
        model.gate.set()
        ready = systemd.wait_for("READY=1", after=released)
        assert app.stats.frames_inferred >= 1
        systemd.wait_for("STATUS=", after=ready, contains="fps")
        systemd.wait_for("WATCHDOG=1", after=ready)

        # The camera hangs for longer than the watchdog interval: the pings must stop.
        stalled_at = time.monotonic()
        cam.flowing.clear()
        stalled_status = systemd.wait_for("STATUS=", after=stalled_at, contains="stalled")
        time.sleep(WATCHDOG_S + 0.5)
        resumed_at = time.monotonic()
        assert systemd.got("WATCHDOG=1", after=stalled_status, before=resumed_at) == []
        last_ping = max(systemd.got("WATCHDOG=1", before=resumed_at))
        assert resumed_at - last_ping > WATCHDOG_S  # systemd would now restart us, as it should

        # Frames again: pings and a normal status come back, and READY is not repeated.
        cam.flowing.set()
        systemd.wait_for("WATCHDOG=1", after=resumed_at)
        systemd.wait_for("STATUS=", after=resumed_at, contains="fps")
        assert len(systemd.got("READY=1")) == 1
    finally:
        code = stop_app(app, thread, out)
    assert code == 0
    systemd.wait_for("STOPPING=1")
    assert systemd.texts()[-1] == "STOPPING=1"


def test_watchdog_pauses_while_the_camera_reconnects(systemd, monkeypatch):
    model = FakeModel()
    model.gate.set()
    first = FakeCamera("cam-1", fps=50, fail_after=25)
    second = FakeCamera("cam-2", fps=50)
    allow_reopen = threading.Event()
    reopened = {}
    calls = []

    def open_source(cfg, size=None, **kw):
        calls.append(1)
        if len(calls) == 1:
            return first
        if not allow_reopen.is_set():
            raise SourceError("/dev/video0: no such device")
        reopened.setdefault("at", time.monotonic())
        return second

    app, thread, out = start_app(monkeypatch, model, open_source)
    try:
        ready = systemd.wait_for("READY=1")
        reconnecting = systemd.wait_for("STATUS=", after=ready, contains="reconnecting")
        time.sleep(WATCHDOG_S + 0.5)  # unplugged for longer than WatchdogSec
        allowed_at = time.monotonic()
        allow_reopen.set()
        assert systemd.got("WATCHDOG=1", after=reconnecting + STALL_TIMEOUT_S + 0.2, before=allowed_at) == []

        systemd.wait_for("STATUS=", after=allowed_at, contains="fps")
        systemd.wait_for("WATCHDOG=1", after=allowed_at)
        assert systemd.got("STATUS=", after=allowed_at, contains="stalled") == []  # a fresh camera is not stalled
        assert app.stats.reconnects == 1 and len(calls) >= 3
        assert second.count > 0 and first.closed.is_set()
    finally:
        code = stop_app(app, thread, out)
    assert code == 0
    assert second.closed.is_set()
