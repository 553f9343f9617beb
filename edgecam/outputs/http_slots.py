"""The HTTP output's stream slots (``http.max_clients``), shared by every viewer of one server."""

from __future__ import annotations

import socket
import threading

from edgecam.outputs.http_server import Refused


class StreamSlots:
    """The ``http.max_clients`` stream slots: every open stream (live pictures, event clips) holds one.

    One camera's :class:`HttpSink` has its own; the cameras of a hub share the hub's, so that the limit
    counts every viewer of every camera together.
    """

    def __init__(self, max_clients: int):
        self.max_clients = max_clients
        #: stream requests refused because every slot was taken (/metrics)
        self.refused = 0
        self._cond = threading.Condition()
        self._clients = 0
        self._socks: set[socket.socket] = set()
        self._closing = False

    @property
    def clients(self) -> int:
        """Streams open now."""
        return self._clients

    def join(self, sock: socket.socket) -> Refused | None:
        """Take a slot for the client on ``sock``: None, or why not."""
        with self._cond:
            if self._closing:
                return Refused.CLOSING
            if self._clients >= self.max_clients:
                self.refused += 1
                return Refused.FULL
            self._clients += 1
            self._socks.add(sock)
            return None

    def leave(self, sock: socket.socket) -> None:
        """Give back the slot :meth:`join` gave."""
        with self._cond:
            self._clients -= 1
            self._socks.discard(sock)
            self._cond.notify_all()

    def shut(self) -> None:
        """Refuse new streams and shut every open stream's socket (a thread blocked in send() wakes up)."""
        with self._cond:
            self._closing = True
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def wait_empty(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for every stream to give its slot back."""
        with self._cond:
            self._cond.wait_for(lambda: self._clients == 0, timeout=timeout)
