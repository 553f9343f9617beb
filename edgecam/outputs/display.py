"""The OpenCV window, for the desktop demo."""

from __future__ import annotations

import logging
import os
import re
import socket
import sys

import cv2

from edgecam.errors import OutputError
from edgecam.outputs.base import Sink

logger = logging.getLogger(__name__)

QUIT_KEYS = {ord("q"), ord("Q"), 27}  # q or ESC


def x_server_reachable(display: str, timeout_s: float = 1.0) -> bool:
    """True when the X server named by a ``DISPLAY`` value accepts a connection.

    OpenCV's Qt backend aborts the whole process (SIGABRT, no exception) when
    it cannot connect, e.g. a stale DISPLAY after an SSH session with X
    forwarding ended, so we knock first. A value we cannot parse counts as
    reachable: then we let the toolkit decide rather than guess.
    """
    m = re.fullmatch(r"(?P<host>[^:/]*)(?:/unix)?:(?P<num>\d+)(?:\.\d+)?", display)
    if not m:
        return True
    host, num = m["host"], int(m["num"])
    if host in ("", "unix"):
        # Local server: Linux's abstract socket, then the socket file (what libxcb tries).
        for address in ("\0/tmp/.X11-unix/X%d" % num, "/tmp/.X11-unix/X%d" % num):
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(timeout_s)
                    s.connect(address)
                return True
            except OSError:
                continue
        return False
    try:  # host:N, as SSH X forwarding sets (localhost:10.0): TCP port 6000 + N
        socket.create_connection((host, 6000 + num), timeout=timeout_s).close()
        return True
    except OSError:
        return False


def use_xcb_on_wayland(environ=os.environ) -> bool:
    """Ask Qt for its X11 platform on a Wayland desktop that has XWayland; True if it did.

    pip's OpenCV bundles a Qt built without the Wayland plugin: with
    ``QT_QPA_PLATFORM=wayland`` it aborts the process (exit 134, "no Qt platform
    plugin could be initialized"), and with only ``XDG_SESSION_TYPE=wayland`` (the
    Pi OS Bookworm desktop) it prints a plugin warning first. Through XWayland
    (``DISPLAY`` is set) the xcb plugin opens the window. Must run before the
    first window; picamera2 does the same when it is imported.
    """
    if not environ.get("DISPLAY"):
        return False
    platform = environ.get("QT_QPA_PLATFORM")
    if platform is None:
        wayland = environ.get("XDG_SESSION_TYPE") == "wayland"
    else:  # "wayland", "wayland-egl", or a list such as "wayland;xcb"
        wayland = platform.split(";")[0].strip().startswith("wayland")
    if wayland:
        logger.info("Wayland session: opening the window through XWayland (QT_QPA_PLATFORM=xcb)")
        environ["QT_QPA_PLATFORM"] = "xcb"
    return wayland


def display_available() -> bool:
    """True when a window can be opened: a display server and an OpenCV with GUI support.

    Checking first avoids Qt/GTK's "cannot connect to display" abort over SSH
    or under systemd.
    """
    if sys.platform.startswith("linux"):
        x11 = os.environ.get("DISPLAY")
        if x11 and not x_server_reachable(x11):
            logger.info("DISPLAY=%s is set but its X server cannot be reached", x11)
            x11 = None
        if not x11:
            # pip's OpenCV draws its window through Qt's X11 (xcb) plugin only; on a
            # Wayland desktop that means XWayland, which sets DISPLAY.
            if os.environ.get("WAYLAND_DISPLAY"):
                logger.info("WAYLAND_DISPLAY is set but DISPLAY is not: OpenCV's window needs XWayland")
            return False
    info = cv2.getBuildInformation()
    gui = [line for line in info.splitlines() if line.strip().startswith("GUI:")]
    return not gui or "NONE" not in gui[0].upper()


class Window:
    """One OpenCV window: opened with the quit keys and close button watched, shown from one thread.

    The single camera's :class:`WindowSink` and several cameras' mosaic
    (:mod:`edgecam.outputs.mosaic`) both draw through it.
    """

    def __init__(self, title: str = "edgecam", on_quit=None):
        self.title = title
        self.on_quit = on_quit
        self.is_open = False

    def open(self, size: tuple[int, int] | None = None) -> None:
        """Open it (at ``size``, width and height, when given); one OutputError line when it cannot."""
        use_xcb_on_wayland()
        try:
            # GUI_NORMAL: no Qt image-viewer toolbar and status bar around the live picture.
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
        except cv2.error as e:
            raise OutputError(f"display window: cannot open ({str(e).strip().splitlines()[-1]}); use --display none") from None
        if size is not None:
            cv2.resizeWindow(self.title, *size)
        self.is_open = True

    def show(self, image) -> None:
        """Show ``image``; q, ESC or the window's close button stops the run (``on_quit``)."""
        if not self.is_open:
            return
        cv2.imshow(self.title, image)
        key = cv2.waitKey(1) & 0xFF
        closed = cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1
        if key in QUIT_KEYS or closed:
            logger.info("window: %s, stopping", "closed" if closed else "quit key pressed")
            self.is_open = False
            if self.on_quit:
                self.on_quit()

    def close(self) -> None:
        self.is_open = False
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass


class WindowSink(Sink):
    """Shows the annotated frames; q, ESC or closing the window stops the run."""

    name = "window"
    wants_frames = True

    def __init__(self, title: str = "edgecam", on_quit=None):
        self.window = Window(title, on_quit)
        self._sized = False

    @classmethod
    def from_config(cls, cfg, ctx) -> WindowSink:
        return cls(cfg.display.title, on_quit=ctx.on_quit)

    def start(self) -> None:
        self.window.open()

    def on_frame(self, frame, annotated, result) -> None:
        if not self.window.is_open:
            return
        image = annotated if annotated is not None else frame.image
        if not self._sized:
            # A resizable window opens at the toolkit's default size (Qt: 400x300, the
            # picture shrunk to fit); start at the picture's own size instead.
            self._sized = True
            cv2.resizeWindow(self.window.title, image.shape[1], image.shape[0])
        self.window.show(image)

    def close(self) -> None:
        self.window.close()
