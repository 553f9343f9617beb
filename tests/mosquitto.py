"""A real ``mosquitto`` broker for tests, on 127.0.0.1 only.

Usage::

    from tests.mosquitto import Mosquitto, require_mosquitto

    broker = Mosquitto(tmp_path, users={"cam": "secret"})
    broker.start()
    ...
    broker.stop()    # e.g. to test reconnects
    broker.start()   # same port again
    broker.close()

    sub = Subscriber(broker)          # records every message, from now on
    sub.wait("cams/x/state")          # -> the payloads seen on that topic
    sub.close()

The broker listens on a free port picked at construction, writes its config,
password file and log inside ``tmp_path``, and keeps its state in memory (no
persistence), so every test gets a clean broker. Tests skip with a clear reason
when the ``mosquitto`` binary is not installed. Tests get a running broker
from the ``broker`` fixture in ``tests/conftest.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.doubles import wait_until

HOST = "127.0.0.1"
TIMEOUT = 15.0  # how long a Subscriber waits for its SUBACK or for messages; never a speed requirement


def find_binary(name: str) -> str | None:
    # Debian installs the broker in /usr/sbin, which is not on every PATH.
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")


def require_mosquitto() -> str:
    """Path of the broker binary, or skip the test saying how to get it."""
    path = find_binary("mosquitto")
    if path is None:
        pytest.skip("mosquitto binary not found: apt-get install -y mosquitto")
    return path


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Mosquitto:
    """One broker process that can be stopped and started again on the same port."""

    def __init__(self, tmp_path: Path, users: dict[str, str] | None = None, port: int | None = None,
                 acl: str | None = None):
        """``acl``: the text of an acl_file (Mosquitto's format: ``user NAME`` then ``topic read|write|readwrite
        TOPIC`` lines), with ``users``."""
        self.acl = acl
        self.binary = require_mosquitto()
        self.dir = Path(tmp_path) / f"mosquitto-{id(self):x}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.host = HOST
        self.port = port or free_port()
        self.users = dict(users or {})
        self.log_path = self.dir / "mosquitto.log"
        self.conf_path = self.dir / "mosquitto.conf"
        self.proc: subprocess.Popen | None = None
        self._write_config()

    def _write_config(self) -> None:
        lines = [f"listener {self.port} {HOST}", "persistence false", f"log_dest file {self.log_path}", "log_type all"]
        if os.geteuid() == 0:
            # As root, mosquitto would switch to the 'mosquitto' user, who cannot
            # read files in the test's private tmp_path.
            lines.append("user root")
        if self.users:
            passwd = self.dir / "passwd"
            passwd.write_text("")
            passwd.chmod(0o600)
            tool = find_binary("mosquitto_passwd")
            if tool is None:
                pytest.skip("mosquitto_passwd not found: apt-get install -y mosquitto")
            for user, password in self.users.items():
                subprocess.run([tool, "-b", str(passwd), user, password], check=True, capture_output=True)
            lines += ["allow_anonymous false", f"password_file {passwd}"]
            if self.acl is not None:
                acl = self.dir / "acl"
                acl.write_text(self.acl)
                lines.append(f"acl_file {acl}")
        else:
            lines.append("allow_anonymous true")
        self.conf_path.write_text("\n".join(lines) + "\n")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start the broker and wait until it accepts connections."""
        if self.running:
            return
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {err.strip()} {self.log()[-2000:]}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {HOST}:{self.port} within {timeout}s: {self.log()[-2000:]}")

    def stop(self) -> None:
        """Stop the broker (the port can be reused by :meth:`start`)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    close = stop

    def log(self) -> str:
        """The broker's log so far (for assertion messages)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> "Mosquitto":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class Subscriber:
    """A paho client that records every message on ``topics``, with its retain flag and arrival time.

    It subscribes in ``on_connect``, so after a broker restart it reconnects and
    subscribes again by itself. Needs paho-mqtt (tests importorskip it first).
    """

    def __init__(self, broker: Mosquitto, topics=("#",), timeout: float = TIMEOUT):
        import paho.mqtt.client as mqtt

        self.topics = tuple(topics)
        self.timeout = timeout
        self.messages: list[tuple[str, bytes, bool, float]] = []  # (topic, payload, retain, time.time())
        self.lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-sub-{id(self):x}")
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.1, 0.5)  # back soon after a test restarts the broker
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        if not subscribed.wait(timeout):
            self.close()
            raise AssertionError("subscriber got no SUBACK")

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if not reason_code.is_failure:
            client.subscribe([(t, 0) for t in self.topics])

    def _on_message(self, client, userdata, msg):
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain), time.time()))

    def _on(self, topic: str, since: float = 0.0) -> list[tuple[bytes, bool]]:
        with self.lock:
            return [(p, r) for t, p, r, at in self.messages if t == topic and at >= since]

    def on(self, topic: str, since: float = 0.0) -> list[bytes]:
        """Payloads received on ``topic`` (at or after wall time ``since``), oldest first."""
        return [p for p, _ in self._on(topic, since)]

    def retained(self, topic: str) -> list[bool]:
        """The retain flag of each message on ``topic``, in the order of :meth:`on`."""
        return [r for _, r in self._on(topic)]

    def json(self, topic: str, since: float = 0.0) -> list[dict]:
        return [json.loads(p) for p in self.on(topic, since)]

    def wait(self, topic: str, n: int = 1, payload: bytes | None = None) -> list[bytes]:
        """Wait for ``n`` messages on ``topic`` (equal to ``payload`` if given); returns those payloads."""
        def got():
            msgs = [p for p in self.on(topic) if payload is None or p == payload]
            return msgs if len(msgs) >= n else None

        return wait_until(got, f"{n} message(s) on {topic}" + (f" = {payload!r}" if payload else ""), self.timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
