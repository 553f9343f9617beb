"""A headless chromium driven over the Chrome DevTools Protocol, with the standard library only.

Enough to click a button on a page and read the page back: start chromium with
``--remote-debugging-port=0``, read the port it chose from its
``DevToolsActivePort`` file, open the page target's WebSocket (RFC 6455:
handshake, masked text frames out, unmasked frames in) and send
``Runtime.evaluate``.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.doubles import wait_until



class PageChanging(Exception):
    """The browser could not evaluate in the page because it is being replaced (a navigation)."""

class WebSocket:
    def __init__(self, url: str, timeout: float = 30.0):
        assert url.startswith("ws://")
        hostport, _, path = url[len("ws://"):].partition("/")
        host, _, port = hostport.partition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
                          .encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            assert chunk, "the DevTools socket closed during the handshake"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head

    def _recv_exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            assert chunk, "the DevTools socket closed"
            data += chunk
        return data

    def send(self, text: str) -> None:
        payload = text.encode()
        n = len(payload)
        header = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else
                                  bytes([0x80 | 126]) + struct.pack(">H", n) if n < 65536 else
                                  bytes([0x80 | 127]) + struct.pack(">Q", n))
        mask = os.urandom(4)
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def recv(self) -> str:
        message = b""
        while True:
            b0, b1 = self._recv_exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._recv_exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._recv_exact(8))[0]
            data = self._recv_exact(n)
            if b0 & 0x0F in (0x1, 0x0):
                message += data
                if b0 & 0x80:
                    return message.decode()

    def close(self) -> None:
        self.sock.close()


class Browser:
    """``with Browser(chromium, tmp_path, url) as page: page.evaluate("js")``."""

    def __init__(self, binary: str, tmp_path: Path, url: str):
        self.profile = tmp_path / "cdp-profile"
        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
             "--disable-background-networking", "--disable-component-update", "--remote-debugging-port=0",
             f"--user-data-dir={self.profile}", "--window-size=800,700", url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = url
        self._id = 0
        self.ws = None

    def __enter__(self):
        active = self.profile / "DevToolsActivePort"
        wait_until(lambda: active.is_file() and active.read_text().strip(), "chromium's DevTools port", timeout=60)
        port = int(active.read_text().split()[0])

        def page():
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                targets = json.load(r)
            return next((t for t in targets if t.get("type") == "page" and t["url"].startswith(self.url[:20])), None)

        target = wait_until(page, "the page target", timeout=60)
        self.ws = WebSocket(target["webSocketDebuggerUrl"])
        return self

    def call(self, method: str, params: dict | None = None) -> dict:
        """Send one DevTools command (``Input.dispatchMouseEvent``, ``Page.captureScreenshot``...); its result."""
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params or {}}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:  # e.g. "Execution context was destroyed": the page is navigating
                    raise PageChanging(msg["error"])
                return msg["result"]

    def evaluate(self, expression: str):
        """The value of ``expression`` in the page (promises awaited)."""
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def mouse(self, kind: str, x: float, y: float) -> None:
        """A real mouse event at page pixel (x, y): ``mousePressed``, ``mouseMoved`` or ``mouseReleased``."""
        self.call("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left",
                                               "buttons": 0 if kind == "mouseReleased" else 1, "clickCount": 1})

    def screenshot(self) -> bytes:
        """What the page shows now, as PNG bytes."""
        return base64.b64decode(self.call("Page.captureScreenshot", {"format": "png"})["data"])

    def wait_for(self, expression: str, what: str, timeout: float = 30.0):
        return wait_until(lambda: self._settled(expression), what, timeout=timeout, interval=0.2)

    def _settled(self, expression: str):
        """The expression's value, or None while a navigation replaces the page (asked again then)."""
        try:
            return self.evaluate(expression)
        except PageChanging:
            return None

    def __exit__(self, *exc):
        if self.ws is not None:
            self.ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        time.sleep(0)
