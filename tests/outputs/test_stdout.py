"""The label-changes output a headless run falls back to (one text line per change)."""

from __future__ import annotations

import io

from edgecam.outputs.stdout import NO_LABEL, LabelChangesSink
from edgecam.result import LabelChange, RegionChange


def event(label, score, frame, previous=None, wall_time=1_700_000_000.25):
    return LabelChange(label=label, previous=previous, score=score, frame=frame, wall_time=wall_time)


class Pipe(io.StringIO):
    """Counts flushes: each line must leave at once, not when a buffer fills."""

    flushes = 0

    def flush(self):
        self.flushes += 1


def test_one_line_per_change_with_time_frame_score_and_label():
    out = Pipe()
    sink = LabelChangesSink(out)
    sink.on_result(object())  # results alone print nothing
    sink.on_event(event("tabby, tabby cat", 0.871, 31))
    sink.on_event(event(None, 0.0, 40, previous="tabby, tabby cat"))
    lines = out.getvalue().splitlines()
    assert lines == [
        "2023-11-14T22:13:20.250+00:00  frame 31   87.1%  tabby, tabby cat",
        f"2023-11-14T22:13:20.250+00:00  frame 40       -  {NO_LABEL}",
    ]
    assert out.flushes == 2 and sink.lines_written == 2


def test_a_line_per_change_of_a_regions_state():
    out = Pipe()
    sink = LabelChangesSink(out)
    sink.on_event(RegionChange(region="garage", label="open", previous=None, score=0.972,
                               frame=31, wall_time=1_700_000_000.25))
    sink.on_event(RegionChange(region="garage", label="unknown", previous="open",
                               score=0.41, frame=90, wall_time=1_700_000_003.25))
    assert out.getvalue().splitlines() == [
        "2023-11-14T22:13:20.250+00:00  frame 31  garage: open   97.2%  (was -)",
        "2023-11-14T22:13:23.250+00:00  frame 90  garage: unknown   41.0%  (was open)",
    ]
    assert out.flushes == 2
