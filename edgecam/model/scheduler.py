"""One inference stage for several cameras: each camera a lane, served in fair turns.

Every camera keeps its own hand-over (a :class:`Lane`) with its own drop
policy: a one-slot latest-frame buffer for a camera, a small queue for a file.
The one :class:`edgecam.model.inference.InferenceStage` of the run reads from
:class:`SharedFrames`, which picks the next frame by start-time fair queuing:
each lane has a virtual time that grows by one with every frame it gets; the
waiting lane with the smallest goes next, and among equals the one that has
had a frame waiting longest. A lane that was idle (a slow camera, a camera
back from a reconnect) comes back at the others' virtual time, so it gets its
turn at once but no burst for the time it was away. Under overload the
cameras that have frames get equal shares, whatever their phase or rate, and
none waits more than one turn of the others.

Why not simply the oldest pending frame: a latest-frame lane always holds a
young frame, and cameras at one rate would be served by their phase (the one
captured a millisecond earlier in each period wins every tie): 3:1 for two
30 fps cameras on a 40 fps model, in the test's simulation.

Results go back to the lane they came from (its ``deliver``), in capture
order per camera. A lane whose source ended calls its ``on_end`` once its last
result is delivered; the stage ends when every lane has.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from edgecam.camera.capture import DropPolicy, FrameBuffer
from edgecam.model.inference import InferenceStage


@dataclass
class LaneCounters:
    """One camera's share of the stage: frames handed in, inferred, dropped, and the newest result's age."""

    offered: int = 0
    inferred: int = 0
    dropped: int = 0
    last_capture: float | None = None  # capture time (monotonic) of the newest frame inferred

    def staleness(self, now: float) -> float | None:
        """Seconds since the newest inferred frame was captured (None before the first)."""
        return None if self.last_capture is None else max(0.0, now - self.last_capture)


class Lane(FrameBuffer):
    """One camera's frames waiting for inference (its drop policy), and where its results go.

    ``put`` (from the camera's capture thread) and ``close`` work as on a
    :class:`FrameBuffer`; the shared stage takes frames through
    :class:`SharedFrames`, never from a lane directly.
    """

    def __init__(self, owner: "SharedFrames", name: str, policy: DropPolicy | str, deliver, on_end=None,
                 capacity: int = 2):
        super().__init__(policy, capacity)
        self._cond = owner._cond  # one lock and condition for all lanes: get() waits on any of them
        self.name = name
        self.deliver = deliver
        self.on_end = on_end
        self.counters = LaneCounters()
        self.in_flight = 0
        self.finished = False
        self.waiting_since: float | None = None
        self.vtime = 0.0  # frames served, as virtual time (see the module docstring)
        self._owner_vclock = lambda: owner.vclock

    def put(self, frame, stop: threading.Event | None = None) -> int:
        with self._cond:
            was_empty = not self._items
        dropped = super().put(frame, stop)
        with self._cond:
            self.counters.offered += 1
            self.counters.dropped += dropped
            if was_empty or self.waiting_since is None:
                self.waiting_since = _frame_of(frame).timestamp
            if was_empty:  # back from idle: at the others' virtual time, no credit for the time away
                self.vtime = max(self.vtime, self._owner_vclock())
        return dropped

    def head_time(self) -> float | None:
        """Since when this lane has had a frame waiting (lock held), or None when empty.

        For a latest-frame lane that is the capture time of the first frame
        that came since it was last served, even if a newer one replaced it:
        the frame it holds is always young, so its own time would favour the
        camera captured a moment earlier in every period, for ever.
        """
        if not self._items:
            return None
        if self.policy is DropPolicy.LATEST:
            return self.waiting_since
        return _frame_of(self._items[0]).timestamp

    def take(self):
        """The next item (lock held; the lane is not empty)."""
        item = self._items.popleft()
        self.waiting_since = None
        return item


def _frame_of(item):
    return item[0] if isinstance(item, tuple) else item


class SharedFrames:
    """What :class:`InferenceStage` reads from when several cameras share it; see the module docstring.

    Looks like a :class:`FrameBuffer` to the stage (``get``, ``ended``,
    ``wake``, ``close``) and hands the stage's ``deliver`` calls back to the
    lane each frame came from: pass :meth:`deliver` as the stage's ``deliver``.
    """

    def __init__(self, clock=time.monotonic):
        self._cond = threading.Condition()
        self.lanes: list[Lane] = []
        self._owner: dict[int, Lane] = {}  # id(frame) -> its lane, while the frame is in flight
        self.clock = clock
        self.vclock = 0.0  # the virtual time of the lane served last

    def lane(self, name: str, policy: DropPolicy | str, deliver, on_end=None, capacity: int = 2) -> Lane:
        """A new camera's lane; register every lane before the stage starts."""
        lane = Lane(self, name, policy, deliver, on_end, capacity)
        with self._cond:
            if any(other.name == name for other in self.lanes):
                raise ValueError(f"a lane named {name!r} exists already")
            self.lanes.append(lane)
        return lane

    def _next_lane(self) -> Lane | None:
        """The waiting lane with the smallest virtual time, the longest waiting among equals (lock held)."""
        waiting = [(lane.vtime, t, i, lane) for i, lane in enumerate(self.lanes)
                   if (t := lane.head_time()) is not None]
        return min(waiting)[3] if waiting else None

    def get(self, timeout: float | None = None):
        """The next lane's frame item (see the module docstring), or None on timeout or once every lane ended."""
        ended: list[Lane] = []
        with self._cond:
            lane = self._next_lane()
            if lane is None and not self._all_closed():
                self._cond.wait(timeout)
                lane = self._next_lane()
            if lane is None:
                ended = self._collect_ended()
                item = None
            else:
                item = lane.take()
                self.vclock = lane.vtime
                lane.vtime += 1
                frame = _frame_of(item)
                self._owner[id(frame)] = lane
                lane.in_flight += 1
                self._cond.notify_all()  # room for a waiting put (every-frame lanes)
        self._finish(ended)
        return item

    def deliver(self, result, frame) -> None:
        """The stage's ``deliver``: the result goes to its camera's lane."""
        with self._cond:
            lane = self._owner.pop(id(frame))
        try:
            lane.deliver(result, frame)
        finally:
            with self._cond:
                lane.in_flight -= 1
                lane.counters.inferred += 1
                lane.counters.last_capture = frame.timestamp
                ended = self._collect_ended()
            self._finish(ended)

    def _all_closed(self) -> bool:
        return all(lane.closed for lane in self.lanes)

    def _collect_ended(self) -> list[Lane]:
        """Lanes closed, drained and with nothing in flight that have not said so yet (lock held)."""
        out = [lane for lane in self.lanes
               if lane.closed and not lane._items and lane.in_flight == 0 and not lane.finished]
        for lane in out:
            lane.finished = True
        return out

    @staticmethod
    def _finish(lanes: list[Lane]) -> None:
        for lane in lanes:  # outside the lock: on_end closes the camera's output queue
            if lane.on_end is not None:
                lane.on_end()

    @property
    def ended(self) -> bool:
        """Every lane closed and drained."""
        with self._cond:
            return all(lane.closed and not lane._items for lane in self.lanes)

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        """Close every lane (the run stops)."""
        for lane in self.lanes:
            lane.close()

    def end_all(self) -> None:
        """The stage ended (stop or failure): every lane that has not said it ended says so now."""
        with self._cond:
            out = [lane for lane in self.lanes if not lane.finished]
            for lane in out:
                lane.finished = True
        self._finish(out)

    def counters(self) -> dict[str, LaneCounters]:
        """Each lane's counters, by camera name (a copy)."""
        with self._cond:
            return {lane.name: LaneCounters(**vars(lane.counters)) for lane in self.lanes}


class SharedStage:
    """The one inference stage of a run with several cameras: :class:`SharedFrames` and the stage that reads it.

    Each camera's :class:`edgecam.pipeline.loop.Pipeline` takes a :meth:`lane`
    and calls :meth:`start` (the first call starts the stage). The stage ends
    when every lane has ended, or at ``stop`` (the run's), or when it fails:
    then every lane's ``on_end`` runs, so each camera's output loop ends and
    reads the failure from :attr:`error`.
    """

    def __init__(self, classifier, stop: threading.Event, plan=None):
        self.frames = SharedFrames()
        self.stage = InferenceStage(classifier, self.frames, self.frames.deliver, stop,
                                    layout=plan.layout if plan else None,
                                    calibration=plan.observer if plan else None, on_end=self.frames.end_all)
        self._start = threading.Lock()

    def lane(self, name: str, policy: DropPolicy | str, deliver, on_end=None) -> Lane:
        return self.frames.lane(name, policy, deliver, on_end)

    def start(self) -> None:
        """Start the stage, once (every camera calls it)."""
        with self._start:
            if self.stage.thread.ident is None:
                self.stage.start()

    @property
    def thread(self) -> threading.Thread:
        return self.stage.thread

    @property
    def error(self) -> BaseException | None:
        return self.stage.error

    @property
    def layout(self):
        return self.stage.layout

    @property
    def interpreters(self) -> int:
        return self.stage.interpreters
