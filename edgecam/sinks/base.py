"""The interface of an output: something that receives frames and results."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import numpy as np

from edgecam.frame import Frame
from edgecam.result import Classification


class Sink:
    """An output of the pipeline (log, window, recording, HTTP, MQTT).

    The pipeline's output thread calls :meth:`on_result` for each new result
    and :meth:`on_frame` for each displayed frame (with the overlay already
    drawn, when one is needed), and :meth:`on_event` when the top label
    changes. A sink that raises is logged and disabled by the fan-out; the
    others go on. Sinks that do slow I/O (network) must hand work to their own
    thread and return at once.
    """

    name = "sink"
    #: True when the sink wants the annotated picture (window, recording,
    #: HTTP view); the overlay is only drawn when some sink does.
    wants_frames = False

    def start(self) -> None:
        """Open files, sockets, windows. Raise an EdgecamError if impossible."""

    def on_result(self, result: Classification) -> None:
        """Called once per new classification."""

    def on_frame(self, frame: Frame, annotated: np.ndarray | None, result: Classification | None) -> None:
        """Called once per output frame."""

    def on_event(self, event: dict) -> None:
        """Called when the (smoothed) top label changes."""

    def close(self) -> None:
        """Flush and release. Safe to call more than once."""


def iso_time(wall_time: float) -> str:
    """``wall_time`` (seconds since the epoch; 0 or less: not known, now) as ISO 8601 UTC with milliseconds."""
    t = wall_time if wall_time > 0 else time.time()
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds")
