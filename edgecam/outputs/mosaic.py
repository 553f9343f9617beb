"""One window for several cameras: a mosaic of their annotated pictures, drawn from the main thread.

Each camera's output loop runs in a thread of its own, and GUI toolkits want
one thread (Qt's and GTK's windows are not thread-safe): so each camera gets a
:class:`MosaicTile` sink that only keeps its newest annotated picture, and
the run's main thread calls :meth:`Mosaic.show` between its ticks, which
composes the tiles (:func:`compose`, a pure function tested on pixels) and
shows them in one window. q, ESC or closing the window stops the run.
"""

from __future__ import annotations

import logging
import math
import threading

import cv2
import numpy as np

from edgecam.errors import OutputError
from edgecam.outputs.base import Sink
from edgecam.outputs.display import QUIT_KEYS, use_xcb_on_wayland

logger = logging.getLogger(__name__)

TILE_W, TILE_H = 640, 480  # each camera's tile; the window is the grid of them
NAME_BAR = 28  # the camera's name above its tile
WAITING = (40, 40, 40)  # the tile of a camera with no picture yet (or down)


def grid(n: int) -> tuple[int, int]:
    """Columns and rows for ``n`` tiles: as square as it goes, wider than tall."""
    cols = max(1, math.ceil(math.sqrt(n)))
    return cols, max(1, math.ceil(n / cols))


def compose(tiles: list[tuple[str, np.ndarray | None]], tile_size: tuple[int, int] = (TILE_W, TILE_H)) -> np.ndarray:
    """The mosaic of ``(name, BGR picture or None)`` tiles, in order, each scaled into its cell with its aspect.

    A cell is ``tile_size`` plus a bar with the camera's name; a camera with no
    picture is a grey cell that says so.
    """
    tw, th = tile_size
    cols, rows = grid(len(tiles))
    out = np.zeros((rows * (th + NAME_BAR), cols * tw, 3), np.uint8)
    for i, (name, image) in enumerate(tiles):
        x0, y0 = (i % cols) * tw, (i // cols) * (th + NAME_BAR)
        cell = out[y0 + NAME_BAR:y0 + NAME_BAR + th, x0:x0 + tw]
        cv2.putText(out, name, (x0 + 8, y0 + NAME_BAR - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2,
                    cv2.LINE_AA)
        if image is None:
            cell[:] = WAITING
            cv2.putText(cell, "no picture", (16, th // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (200, 200, 200), 2,
                        cv2.LINE_AA)
            continue
        h, w = image.shape[:2]
        scale = min(tw / w, th / h)
        sw, sh = max(1, int(w * scale)), max(1, int(h * scale))
        ox, oy = (tw - sw) // 2, (th - sh) // 2
        cell[oy:oy + sh, ox:ox + sw] = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
    return out


class MosaicTile(Sink):
    """One camera's tile: keeps its newest annotated picture for :class:`Mosaic`."""

    name = "window"
    wants_frames = True

    def __init__(self, mosaic: Mosaic, camera: str):
        self.mosaic = mosaic
        self.camera = camera

    def on_frame(self, frame, annotated, result) -> None:
        self.mosaic.put(self.camera, annotated if annotated is not None else frame.image)


class Mosaic:
    """The one window of a run of several cameras; :meth:`show` from the main thread only."""

    def __init__(self, cameras: list[str], title: str = "edgecam", on_quit=None):
        self.cameras = list(cameras)
        self.title = title
        self.on_quit = on_quit
        self._latest: dict[str, np.ndarray | None] = {name: None for name in cameras}
        self._lock = threading.Lock()
        self._open = False
        self.shown = 0

    def tile(self, camera: str) -> MosaicTile:
        return MosaicTile(self, camera)

    def put(self, camera: str, image: np.ndarray) -> None:
        with self._lock:
            self._latest[camera] = image

    def start(self) -> None:
        use_xcb_on_wayland()
        try:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
        except cv2.error as e:
            raise OutputError(f"display window: cannot open ({str(e).strip().splitlines()[-1]}); "
                              "use --display none") from None
        cols, rows = grid(len(self.cameras))
        # Half size per tile beyond one row: a 2x2 mosaic of 640x480 would not fit a 1080p screen.
        shrink = 1 if rows == 1 else 2
        cv2.resizeWindow(self.title, cols * TILE_W // shrink, rows * (TILE_H + NAME_BAR) // shrink)
        self._open = True

    def show(self) -> None:
        """Compose and show the newest tiles; handle the quit keys and the window's close button."""
        if not self._open:
            return
        with self._lock:
            tiles = [(name, self._latest[name]) for name in self.cameras]
        cv2.imshow(self.title, compose(tiles))
        self.shown += 1
        key = cv2.waitKey(1) & 0xFF
        closed = cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1
        if key in QUIT_KEYS or closed:
            logger.info("window: %s, stopping", "closed" if closed else "quit key pressed")
            self._open = False
            if self.on_quit:
                self.on_quit()

    def close(self) -> None:
        self._open = False
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass
