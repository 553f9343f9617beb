"""Label changes as text lines on stdout: what a headless run shows when no other output is set.

Over SSH, with no window, no ``--log``, no HTTP and no MQTT, ``edgecam run``
would otherwise run without showing anything it found. One line per change
of the shown label (not per frame), so that the terminal stays readable and a
pipe (``edgecam run | grep cat``) gets events, not a flood::

    2025-05-01T12:00:01.234+00:00  frame 31  87.1%  tabby, tabby cat

and with regions, one line per change of a region's state::

    2025-05-01T12:00:01.234+00:00  frame 31  garage: open   97.2%  (was closed)
"""

from __future__ import annotations

from typing import TextIO

from edgecam.outputs.base import Sink, iso_time
from edgecam.result import LabelChange, RegionChange

NO_LABEL = "(no label above the threshold)"


class LabelChangesSink(Sink):
    """Writes one line to ``stream`` per label-change event: time, frame, score, label.

    ``camera``: in a run of several cameras, each line names its camera after the time.
    """

    name = "stdout"

    def __init__(self, stream: TextIO, camera: str | None = None):
        self.stream = stream
        self.lines_written = 0
        self._who = f"  {camera}" if camera else ""

    def on_event(self, event: LabelChange | RegionChange) -> None:
        if isinstance(event, RegionChange):
            self.stream.write(f"{iso_time(event.wall_time)}{self._who}  frame {event.frame}  {event.region}: "
                              f"{event.label}  {event.score:6.1%}  (was {event.previous or '-'})\n")
            self.stream.flush()
            self.lines_written += 1
            return
        label = event.label
        score = f"{event.score:6.1%}" if label is not None else "     -"
        self.stream.write(f"{iso_time(event.wall_time)}{self._who}  frame {event.frame}  {score}  "
                          f"{label or NO_LABEL}\n")
        self.stream.flush()  # a pipe or a file must see each change as it happens
        self.lines_written += 1
