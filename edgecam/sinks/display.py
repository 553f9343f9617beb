"""The OpenCV window, for the desktop demo."""

from __future__ import annotations

import logging
import os
import sys

import cv2

from edgecam.errors import OutputError
from edgecam.sinks.base import Sink

logger = logging.getLogger(__name__)

QUIT_KEYS = {ord("q"), ord("Q"), 27}  # q or ESC


def display_available() -> bool:
    """True when a window can be opened: a display server and an OpenCV with GUI support.

    Checking first avoids Qt/GTK's "cannot connect to display" abort over SSH
    or under systemd.
    """
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    info = cv2.getBuildInformation()
    gui = [line for line in info.splitlines() if line.strip().startswith("GUI:")]
    return not gui or "NONE" not in gui[0].upper()


class WindowSink(Sink):
    """Shows the annotated frames; q, ESC or closing the window stops the run."""

    name = "window"
    wants_frames = True

    def __init__(self, title: str = "edgecam", on_quit=None):
        self.title = title
        self.on_quit = on_quit
        self._open = False

    def start(self) -> None:
        try:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO)
        except cv2.error as e:
            raise OutputError(f"display window: cannot open ({str(e).strip().splitlines()[-1]}); use --display none") from None
        self._open = True

    def on_frame(self, frame, annotated, result) -> None:
        if not self._open:
            return
        cv2.imshow(self.title, annotated if annotated is not None else frame.image)
        key = cv2.waitKey(1) & 0xFF
        closed = cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1
        if key in QUIT_KEYS or closed:
            logger.info("window: %s, stopping", "closed" if closed else "quit key pressed")
            self._open = False
            if self.on_quit:
                self.on_quit()

    def close(self) -> None:
        if self._open:
            self._open = False
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass
