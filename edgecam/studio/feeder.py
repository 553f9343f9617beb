"""Which results go to the review queue, and each region's latest scores (for "why this state").

Called from the camera's output loop (through the HTTP output's ``on_result``
and ``on_frame``): :meth:`Feeder.on_result` decides per region whether the
model was unsure, :meth:`Feeder.on_frame` crops those regions of the picture
and hands the crops to a writer thread (a queue of :data:`BACKLOG`; when it is
full the crop is skipped, never waited for: the camera does not wait on the disk).

Unsure means one of: the region's model does not know its states yet (states
named, no head taught: ``untaught``); the picture is far from every example
(``unknown``, by distance); the two best states are within :data:`MARGIN`
(``margin``); the state changed :data:`FLICKER` times within
:data:`FLICKER_S` seconds (``flicker``). A region gives at most one crop
every ``gap_s`` seconds.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque

import cv2
import numpy as np

from edgecam.model.regions import crop
from edgecam.result import UNKNOWN, Extra

logger = logging.getLogger(__name__)

MARGIN = 0.15
FLICKER = 3
FLICKER_S = 10.0
BACKLOG = 8


class Feeder:
    """Feeds a :class:`edgecam.studio.review.ReviewQueue` (see the module docstring)."""

    def __init__(self, review, regions, gap_s: float = 1.0):
        self.review = review
        self.regions = regions  # () -> {name: Region} live now
        self.gap_s = gap_s
        # region -> (its last raw result, its state's label, wall time): kept as they came; the summary
        # (:meth:`latest`, 32 labels sorted) is made only when asked ("why", a crop queued), not every frame
        self._latest: dict[str, tuple] = {}
        self._changes: dict[str, deque] = {}
        self._last: dict[str, float] = {}
        self._pending: dict[str, dict] = {}
        self._work: queue.Queue = queue.Queue(BACKLOG)
        self.skipped = 0
        self._thread: threading.Thread | None = None

    def reason(self, name: str, raw, state, region, now: float) -> str | None:
        """Why region ``name``'s result ``raw`` is unsure, or None."""
        changes = self._changes.get(name, ())
        if region.cfg.labels and region.classifier.head is None:  # states named, no model of them yet
            return "untaught"
        if raw.extra.get(Extra.UNKNOWN) or (state is not None and state.label == UNKNOWN):
            return "unknown"
        scores = np.asarray(raw.scores, np.float32)
        if scores.size >= 2 and np.subtract(*np.partition(scores, -2)[:-3:-1]) < MARGIN:  # the two best
            return "margin"
        if sum(1 for t in changes if now - t <= FLICKER_S) >= FLICKER:
            return "flicker"
        return None

    def on_result(self, result) -> None:
        """Note each classified region's scores and whether it goes to the queue (output loop)."""
        raw = result.extra.get(Extra.REGION_RESULTS) or {}
        now = time.monotonic()
        for event in result.extra.get(Extra.REGION_CHANGES) or ():
            self._changes.setdefault(event.region, deque(maxlen=FLICKER)).append(now)
        live = self.regions()
        for name, r in raw.items():
            region = live.get(name)
            if region is None:
                continue
            state = (result.regions or {}).get(name)
            self._latest[name] = (r, state.label if state is not None else None, time.time())
            why = self.reason(name, r, state, region, now)
            if why is not None and now - self._last.get(name, -1e9) >= self.gap_s:
                self._last[name] = now
                guess = self.latest(name)
                self._pending[name] = {"reason": why, "guess": guess["state"], "labels": guess["labels"][:5],
                                       "scores": guess["scores"][:5]}

    def latest(self, name: str) -> dict:
        """Region ``name``'s last result: its 32 best labels and scores, state, distance and time ({}: none yet)."""
        if name not in self._latest:
            return {}
        r, label, when = self._latest[name]
        order = np.argsort(-np.asarray(r.scores))[:32]
        return {"labels": [r.labels[i] for i in order], "scores": [round(float(r.scores[i]), 4) for i in order],
                "state": label, "distance": r.extra.get(Extra.DISTANCE), "time": when}

    def on_frame(self, image: np.ndarray, wall_time: float) -> None:
        """The pending regions' crops of this picture, to the writer thread (output loop; never waits)."""
        if not self._pending:
            return
        live = self.regions()
        pending, self._pending = self._pending, {}
        for name, meta in pending.items():
            region = live.get(name)
            if region is None:
                continue
            try:
                self._work.put_nowait((name, np.array(crop(image, region.box)), meta, wall_time))  # one copy
            except queue.Full:
                self.skipped += 1
                continue
            if self._thread is None:
                self._thread = threading.Thread(target=self._write, name="review-writer", daemon=True)
                self._thread.start()

    def _write(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            name, picture, meta, wall = item
            ok, png = cv2.imencode(".png", picture)
            if ok:
                self.review.add(name, png.tobytes(), meta, wall or None)

    def close(self) -> None:
        """Let the writer finish what it holds, then end it."""
        if self._thread is not None:
            try:
                self._work.put(None, timeout=1.0)
            except queue.Full:
                return
            self._thread.join(timeout=2.0)
