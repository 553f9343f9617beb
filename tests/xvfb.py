"""A real X server (Xvfb) for window tests, with screenshots and key presses.

Usage::

    from tests.xvfb import xvfb  # the fixture; or Xvfb() directly

    def test_window(xvfb):
        env = xvfb.env()                     # os.environ with DISPLAY set
        ...
        shot = xvfb.screenshot()             # HxWx3 uint8 BGR of the root window
        wid = xvfb.wait_window("edgecam")    # X window id, by title
        xvfb.key(wid, "q")

The server picks a free display number itself (``-displayfd``), so parallel
runs never collide. Screenshots come from ``xwd`` and are decoded here (the
XWD format is a plain header plus pixels), so no ImageMagick is needed. Tests
skip with a clear reason when ``Xvfb``, ``xwd`` or ``xdotool`` is missing.
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

SCREEN = (1280, 1024)


def require(binary: str, package: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.skip(f"{binary} not found: apt-get install -y {package}")
    return path


def decode_xwd(data: bytes) -> np.ndarray:
    """An XWD dump (ZPixmap, 24/32 bits per pixel, TrueColor) as an HxWx3 BGR array."""
    fields = struct.unpack(">25I", data[:100])
    header_size, _version, fmt, _depth, width, height = fields[:6]
    byte_order, bpp, bytes_per_line = fields[7], fields[11], fields[12]
    masks = fields[14:17]
    ncolors = fields[19]
    if fmt != 2 or bpp not in (24, 32):
        raise ValueError(f"unsupported XWD dump: format {fmt}, {bpp} bits per pixel")
    start = header_size + 12 * ncolors
    raw = np.frombuffer(data, dtype=np.uint8, count=height * bytes_per_line, offset=start)
    rows = raw.reshape(height, bytes_per_line)[:, : width * bpp // 8]
    step = bpp // 8
    # Assemble each pixel as an integer in the server's byte order, then apply the masks.
    weights = [1 << (8 * i) for i in range(step)]
    if byte_order == 1:  # MSBFirst
        weights.reverse()
    px = np.zeros((height, width), dtype=np.uint32)
    for i, w in enumerate(weights):
        px += rows[:, i::step].astype(np.uint32) * np.uint32(w)
    out = np.empty((height, width, 3), dtype=np.uint8)
    for channel, mask in zip((2, 1, 0), masks):  # red, green, blue masks -> BGR
        shift = (mask & -mask).bit_length() - 1
        out[:, :, channel] = ((px & mask) >> shift).astype(np.uint8)
    return out


def _longest_run(flags: np.ndarray) -> tuple[int, int]:
    """(start, stop) of the longest run of True values."""
    best, start = (0, 0), None
    for i, f in enumerate(list(flags) + [False]):
        if f and start is None:
            start = i
        elif not f and start is not None:
            if i - start > best[1] - best[0]:
                best = (start, i)
            start = None
    return best


def picture_box(window: np.ndarray, ui_grey: int = 239) -> tuple[int, int, int, int]:
    """(x, y, width, height) of the picture inside an OpenCV window's screenshot.

    OpenCV's Qt window frames the picture with a toolbar, margins and a status
    bar, all in the UI's flat grey. The picture is the longest band of rows,
    then of columns, that are mostly not that grey.
    """
    other = np.any(np.abs(window.astype(int) - ui_grey) > 3, axis=2)
    y0, y1 = _longest_run(other.mean(axis=1) > 0.5)
    x0, x1 = _longest_run(other[y0:y1].mean(axis=0) > 0.5)
    return x0, y0, x1 - x0, y1 - y0


class Xvfb:
    """One Xvfb server on a display number it picks itself."""

    def __init__(self, size: tuple[int, int] = SCREEN):
        self.binary = require("Xvfb", "xvfb")
        self.size = size
        self.proc: subprocess.Popen | None = None
        self.display: str | None = None
        self._log = tempfile.TemporaryFile()  # its stderr: a pipe nobody reads could fill up and block it

    def start(self, timeout: float = 10.0) -> "Xvfb":
        read_fd, write_fd = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [self.binary, "-displayfd", str(write_fd), "-screen", "0", f"{self.size[0]}x{self.size[1]}x24",
                 "-nolisten", "tcp", "-noreset"],
                pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=self._log,
            )
            os.close(write_fd)
            write_fd = -1
            # Read up to the newline: Xvfb writes the number and the newline separately, and
            # dies ("cannot write display number") if the pipe is closed in between.
            data = b""
            deadline = time.monotonic() + timeout
            while not data.endswith(b"\n"):
                ready, _, _ = select.select([read_fd], [], [], max(0.0, deadline - time.monotonic()))
                chunk = os.read(read_fd, 64) if ready else b""
                if not chunk:
                    break
                data += chunk
            number = data.decode().strip() if data.endswith(b"\n") else ""
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)
        if not number:
            err = self._stop_and_read_stderr()
            pytest.fail(f"Xvfb did not report a display number within {timeout:.0f} s: {err}")
        self.display = f":{number}"
        # Xvfb can report its number a moment before it listens: wait for the socket.
        deadline = time.monotonic() + timeout
        while not self._accepts(number):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self._stop_and_read_stderr()
                pytest.fail(f"Xvfb {self.display} does not accept connections: {err}")
            time.sleep(0.05)
        return self

    @staticmethod
    def _accepts(number: str) -> bool:
        path = f"/tmp/.X11-unix/X{number}"
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(1.0)
                s.connect(path)
            return True
        except OSError:
            return False

    def _stop_and_read_stderr(self) -> str:
        self.stop()
        self._log.seek(0)
        return self._log.read().decode(errors="replace").strip()

    def env(self, base: dict | None = None) -> dict:
        """``base`` (default: os.environ) with DISPLAY pointing here and no Wayland."""
        env = dict(os.environ if base is None else base)
        env["DISPLAY"] = self.display
        env.pop("WAYLAND_DISPLAY", None)
        return env

    def screenshot(self, path: Path | None = None) -> np.ndarray:
        """The whole screen as a BGR array; also saved as PNG at ``path`` if given."""
        xwd = require("xwd", "x11-apps")
        data = subprocess.run([xwd, "-root", "-silent"], env=self.env(), capture_output=True, check=True,
                              timeout=20).stdout
        image = decode_xwd(data)
        if path is not None:
            import cv2

            cv2.imwrite(str(path), image)
        return image

    def xdotool(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        tool = require("xdotool", "xdotool")
        return subprocess.run([tool, *args], env=self.env(), capture_output=True, text=True, check=check, timeout=20)

    def wait_window(self, title: str, timeout: float = 20.0) -> str:
        """The id of the first visible window whose title matches ``title`` (waits for it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.xdotool("search", "--onlyvisible", "--name", f"^{title}$", check=False).stdout.split()
            if out:
                return out[0]
            time.sleep(0.1)
        pytest.fail(f"no visible window named {title!r} on {self.display} within {timeout:.0f} s")

    def geometry(self, window: str) -> tuple[int, int, int, int]:
        """(x, y, width, height) of a window on the screen."""
        values = {}
        for line in self.xdotool("getwindowgeometry", "--shell", window).stdout.splitlines():
            key, _, value = line.partition("=")
            values[key] = int(value)
        return values["X"], values["Y"], values["WIDTH"], values["HEIGHT"]

    def window_pixels(self, window: str, ready, timeout: float = 20.0, path: Path | None = None) -> np.ndarray:
        """The window's pixels once ``ready(pixels)`` is true (or the last look, after ``timeout``).

        Without a window manager, Qt under Xvfb now and then misses the first
        expose event and never paints (the window stays black, about one run
        in ten); unmapping and mapping the window again sends a fresh one.
        """
        deadline = time.monotonic() + timeout
        remapped = False
        started = time.monotonic()
        while True:
            x, y, w, h = self.geometry(window)
            pixels = self.screenshot(path)[y:y + h, x:x + w]
            if ready(pixels) or time.monotonic() > deadline:
                return pixels
            if not remapped and not pixels.any() and time.monotonic() - started > 2.0:
                self.xdotool("windowunmap", "--sync", window)
                self.xdotool("windowmap", "--sync", window)
                remapped = True
            time.sleep(0.2)

    def key(self, window: str, key: str) -> None:
        self.xdotool("key", "--window", window, key)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture
def xvfb():
    """A fresh Xvfb for one test; skips when Xvfb is not installed."""
    server = Xvfb().start()
    try:
        yield server
    finally:
        server.stop()
        server._log.close()
