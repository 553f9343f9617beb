"""The capture thread and the frame buffers between it and inference.

Two drop policies, named and counted:

* ``latest`` (cameras): a one-slot buffer. The camera never waits on the
  model; a frame not yet taken when the next one arrives is replaced and
  counted in ``Stats.frames_dropped``.
* ``every_frame`` (files): a small bounded queue; the reader waits for the
  model, so every frame is classified, in order.

The capture thread also owns recovery: a live source that fails or stalls is
closed and reopened with exponential back-off, logging once per state change.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from enum import StrEnum

from edgecam.errors import EdgecamError, SourceError
from edgecam.camera.frame import Frame
from edgecam.camera.base import FrameSource
from edgecam.stats import SourceState

logger = logging.getLogger(__name__)


class DropPolicy(StrEnum):
    """What the frame buffer does when inference is slower than the source (module docstring)."""

    LATEST = "latest"
    EVERY_FRAME = "every_frame"


POLICIES = tuple(p.value for p in DropPolicy)


class Handoff:
    """A deque between two threads: one side puts, the other waits in :meth:`get`.

    :meth:`close` ends the stream: readers get None once it is drained.
    Subclasses add the put side, with their own drop policy.
    """

    def __init__(self) -> None:
        self._items: deque = deque()
        self._cond = threading.Condition()
        self.closed = False

    def _wait_for_room(self, full, stop: threading.Event | None) -> bool:
        """With the lock held, wait while ``full()``; False if stopped or closed meanwhile."""
        while full() and not self.closed:
            if stop is not None and stop.is_set():
                return False
            self._cond.wait(0.1)
        return not self.closed

    def _taken(self, item) -> None:
        """Called with the lock held for each item :meth:`get` hands out."""

    def get(self, timeout: float | None = None):
        """The next item, or None on timeout or once closed and drained."""
        with self._cond:
            if not self._items and not self.closed:
                self._cond.wait(timeout)
            if not self._items:
                return None
            item = self._items.popleft()
            self._taken(item)
            self._cond.notify_all()  # room for a waiting put
            return item

    @property
    def ended(self) -> bool:
        """Closed and nothing left to read."""
        with self._cond:
            return self.closed and not self._items

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def wake(self) -> None:
        """Make a :meth:`get` waiting on an empty deque return None now (its caller has news)."""
        with self._cond:
            self._cond.notify_all()


class FrameBuffer(Handoff):
    """The capture-to-inference hand-over, with a drop policy.

    ``latest``: capacity 1, :meth:`put` replaces an unread frame and returns
    1 (one frame dropped). ``every_frame``: :meth:`put` waits for room.
    """

    def __init__(self, policy: DropPolicy | str, capacity: int = 2):
        if policy not in POLICIES:
            raise ValueError(f"unknown drop policy {policy!r}; expected one of {POLICIES}")
        super().__init__()
        self.policy = DropPolicy(policy)
        self.capacity = 1 if self.policy is DropPolicy.LATEST else capacity

    def put(self, frame, stop: threading.Event | None = None) -> int:
        """Hand over ``frame`` (a Frame, or a tuple that carries one); return how many were dropped."""
        with self._cond:
            dropped = 0
            if self.policy is DropPolicy.LATEST:
                dropped = len(self._items)
                self._items.clear()
            elif not self._wait_for_room(lambda: len(self._items) >= self.capacity, stop):
                return 0
            if self.closed:
                return 0
            self._items.append(frame)
            self._cond.notify_all()
            return dropped


class CaptureThread(threading.Thread):
    """Reads frames from a source and hands them to the consumers.

    Args:
        source: an open source.
        consumers: callables taking each frame (buffers' ``put``, ...).
        stats: the run's :class:`edgecam.stats.Stats`.
        stop: the run's one stop event.
        reopen: a callable returning a fresh source, for recovery (None: no
            recovery; a failing source ends the run with its error).
        reconnect_max_s: the back-off ceiling.
        on_end: called once when the capture ends, whatever the reason.
        timings: when a list is given, the time of each read() in ms is appended.
    """

    def __init__(self, source: FrameSource, consumers: list[Callable[[Frame], None]], stats, stop: threading.Event,
                 reopen: Callable[[], FrameSource] | None = None, reconnect_max_s: float = 30.0,
                 on_end: Callable[[], None] | None = None, timings: deque | None = None):
        super().__init__(name="edgecam-capture", daemon=True)
        self.source = source
        self.consumers = consumers
        self.stats = stats
        self.stop = stop
        self.reopen = reopen
        self.reconnect_max_s = reconnect_max_s
        self.on_end = on_end
        self.timings = timings
        self.error: BaseException | None = None
        # Frame numbers: the source's own (gaps show frames it skipped, e.g. a
        # camera that dropped sensor frames), shifted by _offset so that they
        # keep increasing when a reconnected source starts again from 0.
        self._offset = 0
        self._last_index = -1
        self.frames_read = 0
        # Back-off state across recoveries: a camera that reopens but never
        # delivers must not be retried every 0.5 s for ever; only a frame resets it.
        self._backoff: float | None = None
        self._reopened_at: float | None = None  # a reopened source's first frame is still awaited

    def _set_state(self, state: SourceState) -> None:
        # The one writer of Stats.capture_state.
        self.stats.capture_state = state

    def run(self) -> None:
        try:
            self._loop()
        except BaseException as e:  # surfaced by the pipeline, never silent
            if isinstance(e, EdgecamError):  # a user-facing error: one line, no traceback
                logger.error("capture stopped: %s", e.message)
            else:
                logger.exception("capture thread failed: %s", e)
            self.error = e
            self._set_state(SourceState.FAILED)
            self.stop.set()
        finally:
            if self.source is not None:
                try:
                    self.source.close()  # release the camera whatever happened
                except Exception as e:
                    logger.warning("closing %s failed: %s", self.source.name, e)
            if self.on_end:
                self.on_end()

    def _loop(self) -> None:
        self._set_state(SourceState.RUNNING)
        name = self.source.name
        while not self.stop.is_set():
            t0 = time.perf_counter()
            try:
                frame = self.source.read()
            except SourceError as e:
                if self.reopen is None:
                    raise
                if not self._recover(name, str(e)):
                    return
                continue
            if frame is None:
                if self.source.live and self.reopen is not None:
                    if not self._recover(name, f"source {name} ended"):
                        return
                    continue
                self._set_state(SourceState.ENDED)
                logger.info("source %s ended after %d frames", name, self.frames_read)
                return
            if self.timings is not None:
                # A paced source sleeps inside read(); it reports its decode time apart.
                decode_s = self.source.last_decode_s
                self.timings.append((decode_s if decode_s is not None else time.perf_counter() - t0) * 1000)
            if self._reopened_at is not None:
                logger.warning("source %s: reconnected, frames flowing again after %.1f s",
                               self.source.name, time.monotonic() - self._reopened_at)
                self._reopened_at = None
            self._backoff = None
            index = frame.index + self._offset
            if index <= self._last_index:  # a reopened source counting from 0 again
                self._offset = self._last_index + 1 - frame.index
                index = self._last_index + 1
            if index != frame.index:
                frame = dataclasses.replace(frame, index=index)
            self._last_index = index
            self.frames_read += 1
            self.stats.frame_captured(frame.timestamp)
            for consume in self.consumers:
                consume(frame)

    def _recover(self, name: str, why: str) -> bool:
        """Close, then reopen with back-off until it works or we are stopped."""
        logger.warning("%s; reconnecting (back-off up to %.0f s)", why, self.reconnect_max_s)
        self._set_state(SourceState.RECONNECTING)
        try:
            self.source.close()
        except Exception as e:
            logger.debug("closing the failed source: %s", e)
        self.source = None
        # The ceiling holds for the first wait too; a source reopened without a
        # frame since goes on from the back-off it had reached.
        delay = min(self._backoff or 0.5, self.reconnect_max_s)
        failed_since = self._reopened_at or time.monotonic()
        last_error = None
        while not self.stop.is_set():
            if self.stop.wait(delay):  # sleeps, no spinning; wakes at once on stop
                return False
            try:
                self.source = self.reopen()
            except SourceError as e:
                if str(e) != last_error:  # once per distinct failure, not per attempt
                    logger.warning("still cannot reopen: %s", e)
                    last_error = str(e)
                delay = min(delay * 2, self.reconnect_max_s)
                continue
            self.stats.reconnects += 1
            self._set_state(SourceState.RUNNING)
            self._backoff = min(delay * 2, self.reconnect_max_s)
            self._reopened_at = failed_since
            logger.info("source %s: reopened after %.1f s, waiting for its first frame",
                        self.source.name, time.monotonic() - failed_since)
            return True
        return False
