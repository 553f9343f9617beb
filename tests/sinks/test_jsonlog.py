"""JsonLogSink: the lines it writes, rotation, and what happens when the disk says no."""

from __future__ import annotations

import json
import logging
from datetime import datetime

import numpy as np
import pytest

from edgecam.config import LogConfig
from edgecam.errors import OutputError
from edgecam.result import Classification
from edgecam.sinks import jsonlog
from edgecam.sinks.jsonlog import JsonLogSink

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


def change(label, previous) -> dict:
    return {"type": "label_change", "label": label, "previous": previous, "score": 0.6, "frame": 0, "wall_time": 0}


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


def test_write_failure_is_reported_once_and_recovers(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger="edgecam.sinks.jsonlog")
    monkeypatch.setattr(jsonlog, "RETRY_S", 0.0)  # retry at every line, for the test
    sink = JsonLogSink(LogConfig(path="/dev/full"))  # every write fails: no space left on device
    sink.start()
    for i in range(5):
        sink.on_result(result(i))  # must not raise: the pipeline goes on
    assert sink.lines_written == 0 and sink.lines_lost == 5
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "No space left" in errors[0].getMessage()

    sink.path = tmp_path / "log.jsonl"  # the disk has room again
    sink.on_result(result(5))
    sink.close()
    assert [l["frame"] for l in read_lines(tmp_path / "log.jsonl")] == [5]
    again = [r.getMessage() for r in caplog.records if "writing again" in r.getMessage()]
    assert len(again) == 1 and "5 lines lost" in again[0]


def test_close_twice_is_safe(tmp_path):
    sink = started(tmp_path)
    sink.close()
    sink.close()
