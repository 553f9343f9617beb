"""Outputs of the pipeline, fanned out so that one failing sink never stops the others."""

from __future__ import annotations

import logging

from edgecam.errors import EdgecamError
from edgecam.sinks.base import Sink

logger = logging.getLogger(__name__)

__all__ = ["Sink", "FanOut"]


class FanOut:
    """Calls every sink in turn; a sink that raises is logged once and switched off.

    Errors in ``start()`` are not caught: a sink that cannot start (unwritable
    log folder, port in use) is bad input, reported before the camera opens.
    """

    def __init__(self, sinks: list[Sink], stats=None):
        self.sinks = list(sinks)
        self.all_sinks = list(sinks)  # switched-off ones included
        self.stats = stats
        self.wants_frames = any(s.wants_frames for s in self.sinks)
        #: The first user-facing error that switched a sink off; the run ends
        #: with its exit code (the others went on, but the output was lost).
        self.failure: EdgecamError | None = None

    def start(self) -> None:
        started = []
        try:
            for sink in self.sinks:
                sink.start()
                started.append(sink)
        except BaseException:
            for sink in started:
                self._safe(sink, "close")
            raise

    def _safe(self, sink: Sink, method: str, *args) -> None:
        try:
            getattr(sink, method)(*args)
        except Exception as e:  # one bad sink must not take the others down
            if isinstance(e, EdgecamError):  # said in one line: no traceback
                logger.error("output %s is switched off: %s", sink.name, e.message)
                e.logged = True
                self.failure = self.failure or e
            else:
                logger.exception("output %s failed in %s and is switched off: %s", sink.name, method, e)
            if self.stats is not None:
                self.stats.sink_errors[sink.name] = f"{type(e).__name__}: {e}"
            if sink in self.sinks:
                self.sinks.remove(sink)
                self.wants_frames = any(s.wants_frames for s in self.sinks)
                try:
                    sink.close()
                except Exception:
                    pass

    def on_result(self, result) -> None:
        for sink in list(self.sinks):
            self._safe(sink, "on_result", result)

    def on_frame(self, frame, annotated, result) -> None:
        for sink in list(self.sinks):
            self._safe(sink, "on_frame", frame, annotated, result)

    def on_event(self, event: dict) -> None:
        for sink in list(self.sinks):
            self._safe(sink, "on_event", event)

    def close(self) -> None:
        for sink in list(self.sinks):
            try:
                sink.close()
            except Exception as e:
                logger.error("output %s failed to close: %s", sink.name, e)
        for sink in self.all_sinks:
            # A sink that kept going but lost what it was for (a log where no
            # line could be written) says so in close() and sets ``failure``.
            failure = getattr(sink, "failure", None)
            if failure is not None and self.failure is None:
                self.failure = failure
