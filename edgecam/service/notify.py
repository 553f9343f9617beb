"""systemd notification protocol (sd_notify) in plain Python.

systemd passes ``$NOTIFY_SOCKET`` to a ``Type=notify`` service: a Unix
datagram socket (a leading ``@`` means the abstract namespace) to which the
service sends newline-separated ``KEY=value`` lines: ``READY=1`` when it is
up, ``STATUS=...`` for ``systemctl status``, ``WATCHDOG=1`` as a keep-alive.

Outside systemd there is no socket and every call is a silent no-op.
Notifications are best effort: a failure is logged once and never raised,
because a broken status channel must not stop the camera pipeline.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

logger = logging.getLogger(__name__)


class Notifier:
    """Sends sd_notify messages to ``$NOTIFY_SOCKET`` (read once, at creation)."""

    def __init__(self, environ: dict[str, str] | None = None):
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        # "@name" is Linux's abstract namespace, spelled with a NUL byte.
        self._address = "\0" + raw[1:] if raw.startswith("@") else raw
        self._watchdog_usec = env.get("WATCHDOG_USEC")
        self._watchdog_pid = env.get("WATCHDOG_PID")
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()  # sinks, signal handlers and the pipeline may all send
        self._failed = False

    @property
    def enabled(self) -> bool:
        """True when running under systemd with a notification socket."""
        return bool(self._address) and self._address[0] in "/\0"

    def notify(self, message: str) -> bool:
        """Send one raw message (``KEY=value`` lines). Returns True if it was sent."""
        if not self.enabled:
            return False
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                # MSG_NOSIGNAL: if systemd went away, get an error, not SIGPIPE.
                self._sock.sendto(message.encode("utf-8", "replace"), socket.MSG_NOSIGNAL, self._address)
            except OSError as e:
                if not self._failed:
                    self._failed = True
                    where = self._address.replace("\0", "@")
                    logger.warning("cannot notify systemd via %s: %s (further failures not logged)", where, e)
                return False
        return True

    def ready(self) -> bool:
        """Tell systemd the service is up (also ends a reload)."""
        return self.notify("READY=1")

    def status(self, text: str) -> bool:
        """Set the one-line status shown by ``systemctl status``."""
        # A newline would start a new KEY=value assignment.
        return self.notify("STATUS=" + " ".join(str(text).splitlines()))

    def watchdog(self) -> bool:
        """Keep-alive ping; systemd restarts us if none arrives within WatchdogSec."""
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        """Tell systemd a clean shutdown has begun."""
        return self.notify("STOPPING=1")

    def reloading(self) -> bool:
        """Tell systemd a config reload has begun; send :meth:`ready` when done.

        MONOTONIC_USEC is what systemd >= 253 requires for Type=notify-reload;
        older versions ignore it.
        """
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify(f"RELOADING=1\nMONOTONIC_USEC={usec}")

    def watchdog_interval(self) -> float | None:
        """WatchdogSec in seconds, or None when the watchdog is off or not meant for us.

        Pings should be sent at half this interval.
        """
        if not self.enabled or not self._watchdog_usec:
            return None
        if self._watchdog_pid:
            try:
                if int(self._watchdog_pid) != os.getpid():
                    return None  # the watchdog belongs to another process (e.g. our parent)
            except ValueError:
                return None
        try:
            usec = int(self._watchdog_usec)
        except ValueError:
            return None
        return usec / 1_000_000 if usec > 0 else None

    def close(self) -> None:
        """Close the socket (sending again reopens it)."""
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


class WatchdogGate:
    """Turns pipeline health into sd_notify messages; call :meth:`tick` every output tick.

    - READY=1 once, from :meth:`first_result` (the first classified frame), so
      ``systemctl start`` returns only when the camera really works.
    - WATCHDOG=1 at most every WatchdogSec/2 and only while frames flow: a
      stalled camera stops the pings and systemd restarts the service.
    - STATUS= when the text changes, at most once per ``status_interval`` s.

    ``now`` is any monotonic clock in seconds (``time.monotonic()``).
    """

    def __init__(self, notifier: Notifier | None = None, status_interval: float = 1.0):
        self.notifier = notifier if notifier is not None else Notifier()
        interval = self.notifier.watchdog_interval()
        self.ping_every: float | None = interval / 2 if interval else None
        self.status_interval = status_interval
        self._ready_sent = False
        self._last_ping: float | None = None
        self._sent_status: str | None = None
        self._last_status_at: float | None = None

    @property
    def enabled(self) -> bool:
        return self.notifier.enabled

    def first_result(self) -> None:
        """Call after every classified frame; only the first one sends READY=1."""
        if not self._ready_sent:
            self._ready_sent = True
            self.notifier.ready()

    def reloaded(self) -> None:
        """Call when a reload (RELOADING=1) is finished: sends READY=1 again."""
        self._ready_sent = True
        self.notifier.ready()

    def tick(self, now: float, frames_flowing: bool, status_text: str | None = None) -> None:
        """Send whatever is due: a watchdog ping if frames flow, a changed status line."""
        if frames_flowing and self.ping_every is not None:
            if self._last_ping is None or now - self._last_ping >= self.ping_every:
                self._last_ping = now
                self.notifier.watchdog()
        if status_text is not None and status_text != self._sent_status:
            if self._last_status_at is None or now - self._last_status_at >= self.status_interval:
                self._sent_status = status_text
                self._last_status_at = now
                self.notifier.status(status_text)

    def stopping(self, status_text: str | None = None) -> None:
        """Call when shutting down: sends STOPPING=1 (and a last status)."""
        if status_text:
            self.notifier.status(status_text)
        self.notifier.stopping()
