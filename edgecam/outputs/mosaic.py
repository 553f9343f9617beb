"""One window for several cameras: a mosaic of their annotated pictures, drawn from the main thread.

Each camera's output loop runs in a thread of its own, and GUI toolkits want
one thread (Qt's and GTK's windows are not thread-safe): so each camera gets a
:class:`MosaicTile` sink that only keeps its newest annotated picture, and
the run's main thread calls :meth:`Mosaic.show` between its ticks, which
composes the tiles (:func:`compose`, a pure function tested on pixels) and
shows them in one window. q, ESC or closing the window stops the run.
"""

from __future__ import annotations

import math
import threading

import cv2
import numpy as np

from edgecam.outputs.base import Sink
from edgecam.outputs.display import Window

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
        self.window = Window(title, on_quit)
        self._latest: dict[str, np.ndarray | None] = {name: None for name in cameras}
        self._lock = threading.Lock()
        self._version = 0  # pictures put so far: the mosaic is composed again only when one came
        self._composed: tuple[int, np.ndarray] | None = None
        self.shown = 0

    def tile(self, camera: str) -> MosaicTile:
        return MosaicTile(self, camera)

    def put(self, camera: str, image: np.ndarray) -> None:
        with self._lock:
            self._latest[camera] = image
            self._version += 1

    def start(self) -> None:
        cols, rows = grid(len(self.cameras))
        # Half size per tile beyond one row: a 2x2 mosaic of 640x480 would not fit a 1080p screen.
        shrink = 1 if rows == 1 else 2
        self.window.open((cols * TILE_W // shrink, rows * (TILE_H + NAME_BAR) // shrink))

    def show(self) -> None:
        """Show the newest tiles (composed again only when a picture came); the window's keys stop the run."""
        if not self.window.is_open:
            return
        with self._lock:
            version = self._version
            tiles = [(name, self._latest[name]) for name in self.cameras]
        if self._composed is None or self._composed[0] != version:
            self._composed = (version, compose(tiles))
        self.window.show(self._composed[1])
        self.shown += 1

    def close(self) -> None:
        self.window.close()
