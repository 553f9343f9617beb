"""sd_notify against real Unix datagram sockets standing in for systemd."""

from __future__ import annotations

import logging
import os
import socket
import uuid

import pytest

from edgecam.service.notify import Notifier, WatchdogGate


def _recv_all(sock: socket.socket) -> list[str]:
    """Every datagram waiting on the socket, decoded."""
    out = []
    sock.setblocking(False)
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


@pytest.fixture
def systemd_socket(tmp_path):
    """A datagram socket bound in tmp_path, as systemd's notify socket is."""
    path = tmp_path / "notify"
    if len(str(path)) >= 100:  # sun_path is 108 bytes
        pytest.skip(f"tmp_path too long for a Unix socket path: {path}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    yield sock, str(path)
    sock.close()


def test_messages_arrive_on_path_socket(systemd_socket):
    sock, path = systemd_socket
    n = Notifier({"NOTIFY_SOCKET": path})
    assert n.enabled
    assert n.ready() and n.status("classifying: cat 0.91\nsecond line") and n.watchdog()
    assert n.stopping()
    got = _recv_all(sock)
    # A newline in the status text must not leak out as a second assignment.
    assert got == ["READY=1", "STATUS=classifying: cat 0.91 second line", "WATCHDOG=1", "STOPPING=1"]


def test_messages_arrive_on_abstract_socket():
    name = f"edgecam-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    try:
        n = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert n.enabled
        n.ready()
        n.status("warming up")
        assert _recv_all(sock) == ["READY=1", "STATUS=warming up"]
    finally:
        sock.close()


def test_reloading_carries_monotonic_timestamp(systemd_socket):
    sock, path = systemd_socket
    Notifier({"NOTIFY_SOCKET": path}).reloading()
    (msg,) = _recv_all(sock)
    lines = msg.split("\n")
    assert lines[0] == "RELOADING=1"
    key, value = lines[1].split("=")
    assert key == "MONOTONIC_USEC" and int(value) > 0


def test_no_socket_means_disabled_and_silent(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = Notifier()
    assert not n.enabled
    assert n.ready() is False and n.watchdog() is False
    assert n.watchdog_interval() is None
    gate = WatchdogGate(n)
    gate.first_result()
    gate.tick(0.0, True, "x")  # must not raise


def test_reads_process_environment(monkeypatch, systemd_socket):
    sock, path = systemd_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert Notifier().ready()
    assert _recv_all(sock) == ["READY=1"]


def test_send_failure_is_logged_once_and_not_raised(tmp_path, caplog):
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    with caplog.at_level(logging.WARNING, logger="edgecam.service.notify"):
        assert n.ready() is False
        assert n.watchdog() is False
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "nobody-listens" in warnings[0].getMessage()


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "<self>"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # someone else's
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "junk"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(env, expected, systemd_socket):
    _, path = systemd_socket
    env = {k: str(os.getpid()) if v == "<self>" else v for k, v in env.items()}
    assert Notifier({"NOTIFY_SOCKET": path, **env}).watchdog_interval() == expected


def test_gate_ready_once_and_pings_only_while_frames_flow(systemd_socket):
    sock, path = systemd_socket
    gate = WatchdogGate(Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000"}))
    assert gate.ping_every == 5.0

    gate.tick(0.0, False)  # still loading: no ping, no READY
    assert _recv_all(sock) == []

    gate.first_result()
    gate.first_result()
    assert _recv_all(sock) == ["READY=1"]

    pings = []
    for t in range(0, 31):  # one tick per second, frames flowing
        gate.tick(float(t), True)
        pings += [t for m in _recv_all(sock) if m == "WATCHDOG=1"]
    assert pings == [0, 5, 10, 15, 20, 25, 30]

    for t in range(31, 61):  # camera stalls: pings must stop
        gate.tick(float(t), False)
    assert _recv_all(sock) == []

    gate.tick(61.0, True)  # frames again: ping at once, then every 5 s
    gate.tick(62.0, True)
    gate.tick(66.0, True)
    assert _recv_all(sock) == ["WATCHDOG=1", "WATCHDOG=1"]


def test_gate_status_on_change_at_most_once_a_second(systemd_socket):
    sock, path = systemd_socket
    gate = WatchdogGate(Notifier({"NOTIFY_SOCKET": path}))
    assert gate.ping_every is None  # no WATCHDOG_USEC: never ping
    gate.tick(0.0, True, "fps 10")
    gate.tick(0.2, True, "fps 10")  # unchanged
    gate.tick(0.5, True, "fps 11")  # changed, but too soon
    assert _recv_all(sock) == ["STATUS=fps 10"]
    gate.tick(1.0, True, "fps 11")  # the deferred change goes out now
    gate.tick(3.0, True, "fps 11")
    gate.tick(4.0, True, "fps 10")
    assert _recv_all(sock) == ["STATUS=fps 11", "STATUS=fps 10"]
