"""The label-changes output a headless run falls back to (one text line per change)."""

from __future__ import annotations

import io

from edgecam.sinks.stdout import NO_LABEL, LabelChangesSink


def event(label, score, frame, previous=None, wall_time=1_700_000_000.25):
    return {"type": "label_change", "label": label, "previous": previous, "score": score, "frame": frame,
            "wall_time": wall_time}


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
