"""Transient start-up failures: retried with back-off under systemd, exit 75 at once elsewhere.

A real AF_UNIX datagram socket stands in for systemd's notify socket; the
network failures are real (a port nobody listens on, a server answering 503).
"""

from __future__ import annotations

import functools
import socket
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from edgecam.errors import EXIT_TEMPFAIL, DownloadError, RegistryError
from edgecam.service.notify import Notifier
from edgecam.service.retry import ATTEMPT_S, retry_transient
from tests.conftest import run_cli


@pytest.fixture
def notify_socket(tmp_path):
    """(environ for a Notifier, function returning the datagrams received so far)."""
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)

    def received() -> list[str]:
        out = []
        while True:
            try:
                out.append(sock.recv(4096).decode())
            except BlockingIOError:
                return out

    yield {"NOTIFY_SOCKET": path}, received
    sock.close()


def _failing(times: int, result="model"):
    calls = []

    def action():
        calls.append(1)
        if len(calls) <= times:
            raise DownloadError(f"m: cannot download http://127.0.0.1:9/m.tflite: refused (try {len(calls)})")
        return result

    return action, calls


def test_under_systemd_a_download_failure_is_retried_with_growing_waits(notify_socket):
    env, received = notify_socket
    action, calls = _failing(2)
    waits: list[float] = []
    assert retry_transient(action, Notifier(env), "model download", delays=(5, 10, 20), sleep=waits.append) == "model"
    assert len(calls) == 3 and waits == [5, 10]
    messages = received()
    status = [m for m in messages if m.startswith("STATUS=")]
    assert len(status) == 2 and "attempt 1" in status[0] and "trying again in 5 s" in status[0]
    assert "try 1" in status[0] and "trying again in 10 s" in status[1]
    # Each wait (and the attempt after it) is announced, so TimeoutStartSec= does not cut it short.
    extend = [m for m in messages if m.startswith("EXTEND_TIMEOUT_USEC=")]
    assert extend == [f"EXTEND_TIMEOUT_USEC={int((w + ATTEMPT_S) * 1e6)}" for w in (5, 10)]


def test_under_systemd_the_last_failure_is_raised_after_every_wait(notify_socket):
    env, _ = notify_socket
    action, calls = _failing(10)
    waits: list[float] = []
    with pytest.raises(DownloadError, match=r"try 4\)") as exc:
        retry_transient(action, Notifier(env), "model download", delays=(5, 10, 20), sleep=waits.append)
    assert exc.value.exit_code == EXIT_TEMPFAIL == 75
    assert waits == [5, 10, 20] and len(calls) == 4


def test_outside_systemd_it_fails_at_once():
    action, calls = _failing(1)
    with pytest.raises(DownloadError):
        retry_transient(action, Notifier({}), "model download", sleep=lambda s: pytest.fail("slept"))
    assert len(calls) == 1


def test_a_permanent_failure_is_never_retried(notify_socket):
    env, received = notify_socket

    def wrong_url():
        raise RegistryError("m: download of http://x/m.tflite failed: HTTP 404 Not Found")

    with pytest.raises(RegistryError) as exc:
        retry_transient(wrong_url, Notifier(env), "model download", sleep=lambda s: pytest.fail("slept"))
    assert exc.value.exit_code == 2 and received() == []


class _Busy(SimpleHTTPRequestHandler):
    def do_GET(self):
        self.send_error(503)

    def log_message(self, *args):
        pass


@pytest.fixture
def busy_server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Busy, directory="/nonexistent"))
    thread = threading.Thread(target=httpd.serve_forever, name="busy-http", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("where", ["refused", "503"])
def test_run_and_models_fetch_exit_75_on_a_network_failure(tmp_path, busy_server, where):
    """`edgecam run` outside systemd, and `edgecam models fetch`: one line, exit 75."""
    if where == "refused":
        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            base = f"http://127.0.0.1:{s.getsockname()[1]}"
    else:
        base = busy_server
    reg = tmp_path / "models.yaml"
    reg.write_text(yaml.safe_dump({"models": {"netmodel": {
        "description": "a model behind an unreachable server", "url": f"{base}/m.tflite", "file": "m.tflite",
        "sha256": "0" * 64, "labels_url": f"{base}/l.txt", "labels_sha256": None, "labels_file": "l.txt",
        "input_size": 128}}}))
    env = {"EDGECAM_REGISTRY": str(reg), "EDGECAM_MODEL_DIR": str(tmp_path / "models"), "PATH": "/usr/bin:/bin"}
    for args in (["run", "--model", "netmodel", "--source", str(tmp_path), "--display", "none"],
                 ["models", "fetch", "netmodel"]):
        proc = run_cli(args, env=env, cwd=tmp_path, timeout=120)
        assert proc.returncode == EXIT_TEMPFAIL, (args, proc.stderr)
        errors = [line for line in proc.stderr.splitlines() if line.startswith("edgecam:")]
        assert len(errors) == 1 and "netmodel: " in errors[0] and f"{base}/m.tflite" in errors[0], proc.stderr
        assert "Traceback" not in proc.stderr
