"""The interface every frame source implements."""

from __future__ import annotations

import abc
import time
from collections.abc import Iterator

from edgecam.camera.frame import Frame


class FrameSource(abc.ABC):
    """An iterator of :class:`Frame` with ``close()`` and ``with`` support.

    Subclasses implement :meth:`read` (return the next frame, ``None`` at the
    end of a finite source; raise :class:`edgecam.errors.SourceError` when the
    device fails) and :meth:`close`.

    Attributes:
        name: what the source is, for logs ("opencv:/dev/video0").
        live: True for cameras and streams, whose frames go stale if not read
            at once (their default drop policy is ``latest``); False for files
            and folders (``every_frame``).
        fps: the source's native frame rate, or None when unknown.
        realtime: True when frames come paced at ``fps`` in real time though
            the source is not live (a file read "as a camera would", the
            demo): like a camera, its default drop policy is ``latest``.
        last_decode_s: how long the last read() took to decode, without any
            pacing sleep (bench's decode stage); None when the source does not say.
    """

    name: str = "source"
    live: bool = False
    fps: float | None = None
    realtime: bool = False
    last_decode_s: float | None = None

    @abc.abstractmethod
    def read(self) -> Frame | None:
        """Block for the next frame; ``None`` when the source has ended."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the device. Safe to call more than once."""

    def __iter__(self) -> Iterator[Frame]:
        while True:
            frame = self.read()
            if frame is None:
                return
            yield frame

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Pacer:
    """Real-time pacing for a file or folder read "as a camera would" (``realtime``).

    :meth:`wait` delivers frame ``index`` no earlier than ``index / fps``
    seconds after the first frame: the reader sleeps, frames are not skipped.
    With no ``fps`` it never waits.
    """

    def __init__(self, fps: float | None):
        self.fps = fps
        self._t0: float | None = None

    def wait(self, index: int, now: float) -> float:
        """Sleep until frame ``index`` is due; return the time (``time.monotonic()``) after."""
        if not self.fps:
            return now
        if self._t0 is None:
            self._t0 = now
        due = self._t0 + index / self.fps
        if due > now:
            time.sleep(due - now)
            now = time.monotonic()
        return now

    def frame(self, image, index: int, paced: bool) -> Frame:
        """``image`` as frame ``index``, stamped now; ``paced``: not before it is due (:meth:`wait`)."""
        now = time.monotonic()
        if paced:
            now = self.wait(index, now)
        return Frame(image=image, index=index, timestamp=now, wall_time=time.time())
