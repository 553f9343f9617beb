"""Clips: a pre-roll ring of JPEG frames, and clips written from it while an event goes on.

With a rule that has ``clip: true``, every frame drawn is handed (by
reference, from the output loop) to the ``events-clips`` thread, which
encodes it as a JPEG once and:

* keeps it in the pre-roll ring: the frames of the last ``pre_s + for_s``
  seconds (the largest over the clip rules: an event is known ``for_s``
  after it started), and never more than ``events.pre_roll_mb`` of JPEG
  bytes: at 640x480 a frame is about 50 KB, so 5 s at 30 fps is about
  7.5 MB; past the limit the oldest frames go first and the pre-roll is
  shorter, never the memory larger;
* appends it to every clip being written.

A clip starts with the ring's frames from ``pre_s`` before the event's start
and ends ``post_s`` after the event's end (or after ``max_clip_s``). It is
written to the disk as it goes (a ``.part`` file), so a long event costs no
memory; when it ends, the writer thread renames it and names it in the
event's row. Formats (``events.clip_format``): ``avi``, Motion-JPEG written
from the ring's JPEG bytes with no second encoding (:mod:`edgecam.events.avi`);
``mp4`` (H.264) and ``webm`` (VP8) through OpenCV's FFmpeg, which decodes
and encodes every frame again (VP8 took 47 ms a frame here: too slow for a
Pi); ``auto`` takes ``mp4`` where OpenCV has an H.264 encoder, else ``avi``.

The output loop never waits for a camera: when the clips thread falls
behind, the frame it has not taken yet is replaced by the newer one and
counted (:attr:`ClipRecorder.dropped`). A file read unpaced waits instead
(every frame of it counts, and nobody is watching the present).
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import tempfile
import threading
from collections import deque
from enum import Enum
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from edgecam.errors import ConfigError
from edgecam.events import media
from edgecam.events.avi import MjpegAviWriter
from edgecam.events.rules import EPS_S
from edgecam.native_stderr import captured
from edgecam.pictures import PictureError, header_size, opencv_path

logger = logging.getLogger(__name__)

_FOURCC = {"mp4": "avc1", "webm": "VP80"}
WAIT_S = 10.0  # the longest a file's frame waits for the clips thread
_counter = itertools.count(1)


def _opencv_path(path: Path) -> str:
    """``path`` for OpenCV; an OSError (a lost clip, said once) when its name would crash OpenCV."""
    try:
        return opencv_path(path, "events clip")
    except PictureError as e:
        raise OSError(e.message) from None


def can_write(fmt: str) -> bool:
    """Whether OpenCV's FFmpeg can write ``mp4`` (H.264) or ``webm`` (VP8) here (pip's wheels: no H.264)."""
    with tempfile.TemporaryDirectory() as d, captured("opencv"):  # FFmpeg's reasons: the debug log
        w = cv2.VideoWriter(str(Path(d) / f"probe.{fmt}"), cv2.VideoWriter_fourcc(*_FOURCC[fmt]), 10, (64, 64))
        ok = w.isOpened()
        w.release()
    return ok


def choose_format(fmt: str) -> str:
    """The clip format for ``events.clip_format``: ``auto`` -> mp4 where H.264 can be written, else avi.

    A format asked for that this OpenCV cannot write is bad input (a ConfigError, exit 2)."""
    if fmt == "auto":
        return "mp4" if can_write("mp4") else "avi"
    if fmt != "avi" and not can_write(fmt):
        raise ConfigError(f"events.clip_format: {fmt!r}, but this OpenCV cannot write it (no "
                          f"{'H.264' if fmt == 'mp4' else 'VP8'} encoder); use auto or avi")
    return fmt


class PreRoll:
    """The last ``seconds`` of JPEG frames, ``max_bytes`` at most: (time, jpeg) pairs, oldest first."""

    def __init__(self, seconds: float, max_bytes: int):
        self.seconds, self.max_bytes = seconds, max_bytes
        self.frames: deque[tuple[float, bytes]] = deque()
        self.bytes = 0

    def add(self, t: float, jpeg: bytes) -> None:
        self.frames.append((t, jpeg))
        self.bytes += len(jpeg)
        while self.frames and (t - self.frames[0][0] > self.seconds or self.bytes > self.max_bytes):
            self.bytes -= len(self.frames.popleft()[1])

    def since(self, t: float) -> list[tuple[float, bytes]]:
        """The frames from ``t`` on (a frame at ``t`` itself included, whatever the float rounding)."""
        return [(ft, j) for ft, j in self.frames if ft >= t - EPS_S]


class Clip:
    """One clip being written: its event, until when, and its ``.part`` file."""

    def __init__(self, event, rule, folder: Path, fmt: str, nominal_fps: float = 30.0):
        self.event, self.rule, self.fmt = event, rule, fmt
        self.nominal_fps = nominal_fps  # MP4/WebM need a rate before the first frame: the source's
        self.until: float | None = None  # set when the event ends: end + post_s
        self.last_t: float | None = None
        self.first_t: float | None = None
        # hidden, and ending in its format's extension: FFmpeg picks the container from it
        # and this process's: two processes on one folder are refused (the history's lock), but never share one
        self.tmp = Path(folder) / media.MEDIA / f".clip-{os.getpid()}-{next(_counter)}-{event.rule}.part.{fmt}"
        self.tmp.parent.mkdir(parents=True, exist_ok=True)
        self._file = None
        self._writer = None
        self.frames = 0

    def add(self, t: float, jpeg: bytes) -> None:
        if self._writer is None:
            self._open(jpeg)
        if self.fmt == "avi":
            self._writer.write(jpeg)
        else:
            self._writer.write(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR))
        self.frames += 1
        self.first_t = t if self.first_t is None else self.first_t
        self.last_t = t

    def _open(self, jpeg: bytes) -> None:
        size = header_size(jpeg)  # from the header: no need to decode the picture
        if size is None:
            h, w = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape[:2]
            size = (w, h)
        if self.fmt == "avi":
            self._file = open(self.tmp, "wb")
            self._writer = MjpegAviWriter(self._file, *size)
        else:
            self._writer = cv2.VideoWriter(_opencv_path(self.tmp), cv2.CAP_FFMPEG,
                                           cv2.VideoWriter_fourcc(*_FOURCC[self.fmt]),
                                           self.nominal_fps, size)
            if not self._writer.isOpened():
                raise OSError(f"OpenCV cannot write {self.fmt} here; set events.clip_format: avi")

    def done(self, t: float) -> bool:
        if self.until is not None and t >= self.until - EPS_S:  # a frame at end + post_s itself is after it
            return True
        return self.first_t is not None and t - self.first_t >= self.rule.max_clip_s

    def fps(self) -> float:
        if self.frames > 1 and self.last_t > self.first_t:
            return (self.frames - 1) / (self.last_t - self.first_t)
        return self.nominal_fps

    def close(self) -> None:
        """Finish the file (headers, index); it is still the ``.part``."""
        if self.fmt == "avi" and self._writer is not None:
            self._writer.close(self.fps())
            self._file.flush()
            self._file.close()
        elif self._writer is not None:
            self._writer.release()
            # VideoWriter.write never says the disk was full: a clip FFmpeg cannot read back (no index
            # written, or fewer frames than were given) is a lost clip, not a file to show
            cap = cv2.VideoCapture(_opencv_path(self.tmp))
            n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
            cap.release()
            if n < self.frames:
                self._writer = None
                raise OSError(errno.ENOSPC, f"the {self.fmt} clip reads back with {n} of {self.frames} frames "
                                            "(is the disk full?)")
        self._writer = None

    def abort(self) -> None:
        try:
            if self._file is not None:
                self._file.close()
            elif self._writer is not None:
                self._writer.release()
        except OSError:
            pass
        self._writer = None
        self.tmp.unlink(missing_ok=True)


class ClipItemKind(Enum):
    """What the clips' thread is handed: a frame (``a`` its time, ``b`` the picture), an event's start
    (``a`` the event, ``b`` its rule) or its end (``a`` the event)."""

    FRAME = "frame"
    START = "start"
    END = "end"


class ClipItem(NamedTuple):
    kind: ClipItemKind
    a: object
    b: object = None


class ClipRecorder:
    """The ``events-clips`` thread: pre-roll ring and clips (see the module docstring).

    ``finished(clip)`` is called on this thread with each clip whose ``.part`` file is whole (the
    events output hands it to the history's writer thread); ``failed(clip, error)`` when it could not be.
    """

    def __init__(self, folder: Path, seconds: float, max_bytes: int, quality: int, fmt: str, finished, failed):
        self.folder = Path(folder)
        self.ring = PreRoll(seconds, max_bytes)
        self.quality = quality
        self.fmt = fmt
        self.finished, self.failed = finished, failed
        self.fps = 30.0
        self.clips: list[Clip] = []
        self.dropped = 0  # frames the thread had no time to take (the newer one replaced it)
        # frames and commands, in the order they came (a clip's start applies from the next frame on)
        self._items: deque[ClipItem] = deque()
        self._frames = 0  # frames among them
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="events-clips", daemon=True)
        self._thread.start()

    # -------------------------------------------------- from the output loop

    def frame(self, t: float, image: np.ndarray, wait: bool = False) -> None:
        """A frame drawn at time ``t``. ``wait``: until the thread took the one before (a file read
        unpaced, where every frame counts and nobody waits for the present); else never waits."""
        with self._cond:
            if wait:  # bounded: a clips thread that died must not hang the run
                self._cond.wait_for(lambda: self._frames == 0 or self._stop, timeout=WAIT_S)
            if self._frames:
                # the thread is behind: the frame it has not taken yet gives way to this one
                for i, item in enumerate(self._items):
                    if item.kind is ClipItemKind.FRAME:
                        del self._items[i]
                        break
                self._frames -= 1
                self.dropped += 1
            self._items.append(ClipItem(ClipItemKind.FRAME, t, image))
            self._frames += 1
            self._cond.notify_all()

    def start(self, event, rule) -> None:
        self._command(ClipItem(ClipItemKind.START, event, rule))

    def end(self, event) -> None:
        self._command(ClipItem(ClipItemKind.END, event))

    def _command(self, cmd: ClipItem) -> None:
        with self._cond:
            self._items.append(cmd)
            self._cond.notify_all()

    def close(self) -> None:
        """Finish every clip with the frames it has, and stop the thread."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=30)

    # ------------------------------------------------------------ the thread

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stop or self._items)
                item = self._items.popleft() if self._items else None
                if item is not None and item.kind is ClipItemKind.FRAME:
                    self._frames -= 1
                    self._cond.notify_all()  # a waiting frame() may hand over the next one
                stop = self._stop and not self._items
            try:
                if item is not None and item.kind is ClipItemKind.FRAME:
                    self._add(item.a, item.b)
                elif item is not None:
                    self._do(item)
            except Exception as e:  # a worker loop logs and goes on: one bad frame must not end the clips
                logger.exception("events: clips: %s", e)
            if stop:
                for clip in list(self.clips):
                    self._finish(clip)
                return

    def _do(self, cmd: ClipItem) -> None:
        if cmd.kind is ClipItemKind.START:
            event, rule = cmd.a, cmd.b
            clip = Clip(event, rule, self.folder, self.fmt, self.fps)
            self.clips.append(clip)
            for t, jpeg in self.ring.since(event.start - rule.pre_s):
                if clip not in self.clips:  # it failed (a full disk)
                    break
                self._write(clip, t, jpeg)
        else:
            for clip in self.clips:
                if clip.event is cmd.a:
                    clip.until = cmd.a.end + clip.rule.post_s

    def _add(self, t: float, image: np.ndarray) -> None:
        jpeg = media.jpeg(image, self.quality)
        self.ring.add(t, jpeg)
        for clip in list(self.clips):
            if clip.done(t):
                self._finish(clip)
            else:
                self._write(clip, t, jpeg)

    def _write(self, clip: Clip, t: float, jpeg: bytes) -> None:
        try:
            clip.add(t, jpeg)
        except OSError as e:
            if clip in self.clips:
                self.clips.remove(clip)
            clip.abort()
            self.failed(clip, e)

    def _finish(self, clip: Clip) -> None:
        self.clips.remove(clip)
        try:
            clip.close()
        except OSError as e:
            clip.abort()
            self.failed(clip, e)
            return
        if clip.frames == 0:
            clip.abort()
            return
        self.finished(clip)
