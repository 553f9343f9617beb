"""JsonLogSink: the lines it writes, rotation, and what happens when the disk says no."""

from __future__ import annotations

import json
import logging
import os
import threading
from datetime import datetime

import numpy as np
import pytest

from edgecam.config.schema import LogConfig
from edgecam.errors import OutputError
from edgecam.result import Classification, LabelChange, RegionChange
from edgecam.outputs import jsonlog
from edgecam.outputs.jsonlog import JsonLogSink

LABELS = ["background", "tabby, tabby cat", "Egyptian cat", "tiger cat", "lynx"]
KEYS = {"timestamp", "frame", "model", "latency_ms", "inference_ms", "top_k"}


def result(frame: int, top: int = 1, event: dict | None = None) -> Classification:
    scores = np.array([0.01, 0.1, 0.2, 0.05, 0.04], np.float32)
    scores[top] = 0.6
    r = Classification(scores=scores, labels=LABELS, model="mobilenet_v3_small", frame_index=frame,
                       capture_time=100.0, result_time=100.0125, wall_time=1_700_000_000.25 + frame,
                       inference_ms=7.25)
    if event is not None:
        r.extra["event"] = event
    return r


def change(label, previous) -> LabelChange:
    return LabelChange(label=label, previous=previous, score=0.6, frame=0, wall_time=0)


def read_lines(path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def started(tmp_path, **kw) -> JsonLogSink:
    cfg = LogConfig(path=str(kw.pop("path", tmp_path / "log.jsonl")), **kw)
    sink = JsonLogSink(cfg, top_k=kw.pop("top_k", 3))
    sink.start()
    return sink


def test_one_json_line_per_result(tmp_path):
    sink = started(tmp_path)
    for i in range(5):
        sink.on_result(result(i, event=change("tabby, tabby cat", None) if i == 0 else None))
    sink.close()
    lines = read_lines(tmp_path / "log.jsonl")
    assert [l["frame"] for l in lines] == list(range(5))
    for l in lines:
        assert KEYS <= set(l)
        assert l["model"] == "mobilenet_v3_small"
        assert l["latency_ms"] == pytest.approx(12.5) and l["inference_ms"] == pytest.approx(7.25)
        assert [t["index"] for t in l["top_k"]] == [1, 2, 3]  # top_k=3, best first
        assert l["top_k"][0] == {"index": 1, "label": "tabby, tabby cat", "score": 0.6}
        stamp = datetime.fromisoformat(l["timestamp"])
        assert stamp.utcoffset() is not None  # with its zone, so logs from two machines compare
    assert datetime.fromisoformat(lines[0]["timestamp"]).timestamp() == pytest.approx(1_700_000_000.25, abs=1e-3)
    assert lines[0]["event"] == {"label": "tabby, tabby cat", "previous": None}
    assert all("event" not in l for l in lines[1:])


def test_changes_mode_writes_only_label_changes(tmp_path):
    sink = started(tmp_path, mode="changes")
    sink.on_result(result(0, event=change("tabby, tabby cat", None)))
    for i in range(1, 10):
        sink.on_result(result(i))
    sink.on_result(result(10, top=4, event=change("lynx", "tabby, tabby cat")))
    sink.close()
    lines = read_lines(tmp_path / "log.jsonl")
    assert [l["frame"] for l in lines] == [0, 10]
    assert lines[1]["event"] == {"label": "lynx", "previous": "tabby, tabby cat"}
    assert lines[1]["top_k"][0]["label"] == "lynx"


def test_heartbeat_mode_writes_the_changes_and_a_line_every_heartbeat_s(tmp_path):
    sink = started(tmp_path, mode="heartbeat", heartbeat_s=5.0)  # result(i) is i seconds after result(0)
    for i in range(21):
        event = change("tabby, tabby cat", None) if i == 0 else change("lynx", "tabby, tabby cat") if i == 12 else None
        sink.on_result(result(i, top=4 if i >= 12 else 1, event=event))
    sink.close()
    lines = read_lines(tmp_path / "log.jsonl")
    assert [l["frame"] for l in lines] == [0, 5, 10, 12, 17]  # a change starts the count again
    assert [("event" in l) for l in lines] == [True, False, False, True, False]
    assert lines[2]["top_k"][0]["label"] == "tabby, tabby cat" and lines[4]["top_k"][0]["label"] == "lynx"


def test_the_log_says_what_it_costs_a_day(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="edgecam.outputs.jsonlog")
    started(tmp_path).close()
    line = jsonlog.LINE_BYTES_BASE + 3 * jsonlog.LINE_BYTES_PER_LABEL  # top_k 3
    (msg,) = [r.getMessage() for r in caplog.records if "a day" in r.getMessage()]
    assert msg.startswith(f"log {tmp_path / 'log.jsonl'}: mode every writes about "
                          f"{line * 30 * 86400 / 1e6:.1f} MB a day at 30 results a second")
    assert f"mode heartbeat keeps the label changes and a line every 60 s for about {line * 1440 / 1e3:.1f} KB a day" in msg


def test_appends_to_an_existing_log(tmp_path):
    for run in range(2):
        sink = started(tmp_path)
        sink.on_result(result(run))
        sink.close()
    assert [l["frame"] for l in read_lines(tmp_path / "log.jsonl")] == [0, 1]


def test_creates_missing_folders(tmp_path):
    path = tmp_path / "a" / "b" / "log.jsonl"
    sink = started(tmp_path, path=path)
    sink.on_result(result(0))
    sink.close()
    assert len(read_lines(path)) == 1


def test_rotates_by_size_and_keeps_n_backups(tmp_path):
    sink = started(tmp_path, max_bytes=1500, backups=2)
    for i in range(60):
        sink.on_result(result(i))
    sink.close()
    base = tmp_path / "log.jsonl"
    files = [base.with_name("log.jsonl.2"), base.with_name("log.jsonl.1"), base]
    assert all(f.exists() for f in files) and not base.with_name("log.jsonl.3").exists()
    assert all(f.stat().st_size <= 1500 for f in files)
    frames = [l["frame"] for f in files for l in read_lines(f)]  # oldest file first
    assert frames == list(range(frames[0], 60))  # the newest lines, none lost between files
    assert frames[0] > 0  # older ones rotated away


def test_rotation_without_backups_starts_over(tmp_path):
    sink = started(tmp_path, max_bytes=1000, backups=0)
    for i in range(30):
        sink.on_result(result(i))
    sink.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.jsonl"]
    assert read_lines(tmp_path / "log.jsonl")[-1]["frame"] == 29


@pytest.mark.parametrize("where", ["/proc/nope/log.jsonl", "DIR"])
def test_unwritable_log_fails_at_start_with_one_line(tmp_path, where):
    path = tmp_path if where == "DIR" else where  # a folder where the file should be, or an impossible folder
    sink = JsonLogSink(LogConfig(path=str(path)))
    with pytest.raises(OutputError) as e:
        sink.start()
    assert e.value.exit_code == 4
    assert str(path) in e.value.message and "\n" not in e.value.message


def test_write_failure_is_reported_once_and_recovers_without_losing_lines(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger="edgecam.outputs.jsonlog")
    monkeypatch.setattr(jsonlog, "RETRY_S", 0.0)  # retry at every line, for the test
    sink = JsonLogSink(LogConfig(path="/dev/full"))  # every write fails: no space left on device
    sink.start()
    for i in range(5):
        sink.on_result(result(i))  # must not raise: the pipeline goes on
    assert sink.lines_written == 0 and sink.lines_lost == 0  # waiting in memory
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "No space left" in errors[0].getMessage()

    sink.path = tmp_path / "log.jsonl"  # the disk has room again
    sink.on_result(result(5))
    sink.close()
    assert [l["frame"] for l in read_lines(tmp_path / "log.jsonl")] == [0, 1, 2, 3, 4, 5]
    again = [r.getMessage() for r in caplog.records if "writing again" in r.getMessage()]
    assert len(again) == 1 and "0 lines lost" in again[0]
    assert sink.failure is None


def test_waiting_lines_are_bounded_and_what_was_dropped_is_counted(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger="edgecam.outputs.jsonlog")
    monkeypatch.setattr(jsonlog, "RETRY_S", 0.0)
    one = len(json.dumps(JsonLogSink(LogConfig(path="x")).record(result(10)))) + 1
    monkeypatch.setattr(jsonlog, "MAX_PENDING_BYTES", 3 * one + 10)  # room for three lines
    sink = JsonLogSink(LogConfig(path="/dev/full"))
    sink.start()
    for i in range(10, 20):
        sink.on_result(result(i))
    sink.path = tmp_path / "log.jsonl"
    sink.on_result(result(20))
    sink.close()
    assert [l["frame"] for l in read_lines(tmp_path / "log.jsonl")] == [18, 19, 20]  # the newest kept
    assert sink.lines_lost == 8 and sink.failure is None
    summary = [r.getMessage() for r in caplog.records if "could not be written" in r.getMessage()]
    assert summary == [f"log {tmp_path / 'log.jsonl'}: 8 of 11 predictions could not be written (No space left on device)"]


def test_a_log_where_no_line_could_be_written_fails_the_run(caplog):
    # issue 9 #9: --log /dev/full exited 0 with no summary.
    sink = JsonLogSink(LogConfig(path="/dev/full"))
    sink.start()
    for i in range(4):
        sink.on_result(result(i))
    sink.close()
    assert sink.failure is not None and sink.failure.exit_code == 4
    assert sink.failure.message == ("log /dev/full: none of the 4 predictions could be written "
                                    "(No space left on device); check the disk or change log.path")
    assert sum("none of the 4" in r.getMessage() for r in caplog.records) == 1


def test_a_partial_line_left_by_a_crash_is_removed_when_the_log_opens(tmp_path, caplog):
    path = tmp_path / "log.jsonl"
    whole = json.dumps({"frame": 0}) + "\n"
    fragment = '{"timestamp": "2026-01-01T00:00:00.000+00:00", "fra'
    path.write_text(whole + fragment)  # SIGKILL mid-write
    sink = started(tmp_path)
    sink.on_result(result(1))
    sink.close()
    assert path.read_text().startswith(whole)
    assert [l["frame"] for l in read_lines(path)] == [0, 1]  # nothing glued to the fragment
    assert any(f"removed a partial last line ({len(fragment)} bytes)" in r.getMessage() for r in caplog.records)


def test_a_file_of_one_partial_line_is_emptied(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"frame": 0, "top' * 10_000)  # 170 KB and no newline: scanned back in chunks
    sink = started(tmp_path)
    sink.on_result(result(1))
    sink.close()
    assert [l["frame"] for l in read_lines(path)] == [1]


def test_a_named_pipe_without_a_reader_fails_at_start_instead_of_hanging(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    sink = JsonLogSink(LogConfig(path=str(fifo)))
    out = {}

    def start():
        try:
            sink.start()
        except OutputError as e:
            out["error"] = e

    t = threading.Thread(target=start, daemon=True)
    t.start()
    t.join(10)
    if t.is_alive():  # before: open() blocked until a reader came, for ever
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))  # let it go
        t.join(5)
        sink.close()
        pytest.fail("start() blocked opening a named pipe that nobody reads")
    e = out["error"]
    assert e.exit_code == 4 and "named pipe with no reader" in e.message


def test_a_named_pipe_with_a_reader_gets_every_line(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        sink = JsonLogSink(LogConfig(path=str(fifo), max_bytes=500))  # no rotation on a pipe
        sink.start()
        for i in range(3):
            sink.on_result(result(i))
        sink.close()
        data = os.read(reader, 1 << 16).decode()
    finally:
        os.close(reader)
    assert [json.loads(l)["frame"] for l in data.splitlines()] == [0, 1, 2]
    assert sink.lines_written == 3 and not (tmp_path / "pipe.1").exists()


def test_a_full_disk_never_leaves_a_partial_line(small_disk, monkeypatch, caplog):
    # issue 9 #1: a line the disk cut short stayed, and the next record was glued to it.
    monkeypatch.setattr(jsonlog, "RETRY_S", 0.0)
    filler = small_disk / "filler"
    filler.write_bytes(b"x" * 40_000)
    path = small_disk / "log.jsonl"
    sink = JsonLogSink(LogConfig(path=str(path)))
    sink.start()
    i = 0
    while sink._failing_since is None:  # until the disk is full
        sink.on_result(result(i))
        i += 1
        assert i < 1000, "the 64 KB disk never filled"
    on_disk = path.read_bytes()
    assert on_disk.endswith(b"\n")  # the cut-short line was cut back
    for _ in range(20):  # more results while full: they wait
        sink.on_result(result(i))
        i += 1
    filler.unlink()  # space comes back
    sink.on_result(result(i))
    i += 1
    sink.close()
    lines = read_lines(path)  # every line parses
    assert [l["frame"] for l in lines] == list(range(i))  # and none was lost
    assert sink.lines_lost == 0 and sink.failure is None
    assert all(KEYS <= set(l) for l in lines)


def test_close_twice_is_safe(tmp_path):
    sink = started(tmp_path)
    sink.close()
    sink.close()


def region_result(frame: int, garage: str, classified: bool = True, events=None) -> Classification:
    from edgecam.result import RegionState

    states = {"garage": RegionState("garage", (0.5, 0.3, 0.95, 0.95), garage, 0.9, 0, frame if classified else 0,
                                    0.0, classified)}
    r = Classification(np.zeros(0, np.float32), (), model="garage", frame_index=frame, capture_time=100.0,
                       result_time=100.01, wall_time=1_700_000_000.0 + frame, regions=states)
    if events:
        r.extra["region_events"] = events
    return r


def test_each_line_carries_the_regions_and_their_changes(tmp_path):
    sink = started(tmp_path)
    ev = RegionChange(region="garage", label="open", previous=None, score=0.9, frame=0, wall_time=0.0)
    sink.on_result(region_result(0, "open", events=[ev]))
    sink.on_result(region_result(1, "open", classified=False))
    sink.close()
    first, second = read_lines(tmp_path / "log.jsonl")
    assert first["regions"] == {"garage": {"label": "open", "score": 0.9, "frame": 0, "classified": True}}
    assert first["region_events"] == [{"region": "garage", "label": "open", "previous": None}]
    assert first["top_k"] == [] and "event" not in first
    assert second["regions"]["garage"]["classified"] is False and "region_events" not in second


def test_changes_mode_writes_region_changes(tmp_path):
    sink = started(tmp_path, mode="changes")
    ev = RegionChange(region="garage", label="closed", previous="open", score=0.9, frame=5, wall_time=0.0)
    for i in range(8):
        sink.on_result(region_result(i, "closed" if i >= 5 else "open", events=[ev] if i == 5 else None))
    sink.close()
    assert [l["frame"] for l in read_lines(tmp_path / "log.jsonl")] == [5]
