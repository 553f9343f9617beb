"""The events' history on a real SQLite file: rows and media written together, retention, repair, a full disk."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from edgecam.errors import OutputError
from edgecam.events import media
from edgecam.events.history import History, connect_reader, get_event, query_events
from edgecam.events.rules import Event

DAY = 86400.0


class Clock:
    """A settable clock (retention's "now")."""

    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


def store(history: History, rule: str, start: float, end: float, image=None, quality=85) -> Event:
    """An event stored with a snapshot (a picture of ``image`` or noise), as the sink stores one."""
    event = Event(rule, "ibex", None, start, 0, 0.9)
    history.start_event(event)
    picture = image if image is not None else np.random.default_rng(int(start)).integers(
        0, 255, (120, 160, 3), dtype=np.uint8)

    def snap(conn):
        history.add_media(event, media.write_snapshot(history.folder, event, picture, picture, quality))
    history.submit(snap)
    event.end = end
    history.end_event(event)
    assert history.flush()
    return event


def media_files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in (folder / "media").rglob("*") if p.is_file())


def test_an_event_is_a_row_naming_its_snapshot_files(tmp_path):
    h = History(tmp_path)
    h.open()
    try:
        e = store(h, "bins", 1000.0, 1005.0)
    finally:
        h.close()
    conn = connect_reader(tmp_path)
    row = get_event(conn, e.id)
    assert (row["rule"], row["started"], row["ended"], row["status"]) == ("bins", 1000.0, 1005.0, "ended")
    files = [row[k] for k in ("snapshot", "snapshot_clean", "thumb")]
    assert sorted(files) == media_files(tmp_path)
    assert row["bytes"] == sum((tmp_path / f).stat().st_size for f in files)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_retention_by_age_deletes_rows_and_files_together(tmp_path):
    clock, mono = Clock(100 * DAY), Clock(0.0)
    h = History(tmp_path, max_age_days=7, clock=clock, monotonic=mono)
    h.open()
    try:
        old = store(h, "a", 80 * DAY, 80 * DAY + 5)  # ended 20 days before "now"
        new = store(h, "a", 99 * DAY, 99 * DAY + 5)
        # store() ends with end_event, which applies retention: the old one is gone
        assert h.deleted_by_retention == 1
        clock.t = 107 * DAY  # a week after the new one: the hourly pass deletes it too
        mono.t = 7 * DAY
        h.retention()
        assert h.flush()
        assert h.deleted_by_retention == 2
    finally:
        h.close()
    conn = connect_reader(tmp_path)
    assert get_event(conn, old.id) is None and get_event(conn, new.id) is None
    assert media_files(tmp_path) == []


def test_retention_by_size_deletes_the_oldest_first_until_under_the_limit(tmp_path):
    h = History(tmp_path, max_bytes=10**9)
    h.open()
    try:
        events = [store(h, "a", 1000.0 + i, 1000.5 + i) for i in range(6)]
        sizes = [get_event(h.conn, e.id)["bytes"] for e in events]
        h.max_bytes = sum(sizes[3:])  # room for the three newest
        last = store(h, "a", 2000.0, 2001.0)
    finally:
        h.close()
    conn = connect_reader(tmp_path)
    rows, total = query_events(conn)
    kept = [r["id"] for r in rows]
    size_kept = sum(r["bytes"] for r in rows)
    assert size_kept <= sum(sizes[3:]) and last.id in kept
    assert kept == sorted(kept, reverse=True) and min(kept) > events[0].id  # the oldest went first
    assert media_files(tmp_path) == sorted(r[k] for r in rows for k in ("snapshot", "snapshot_clean", "thumb"))


def test_repair_after_a_cut_marks_the_event_in_progress_and_drops_what_no_row_knows(tmp_path):
    h = History(tmp_path)
    h.open()
    done = store(h, "a", 1000.0, 1001.0)
    gone = store(h, "a", 1002.0, 1003.0)
    going = Event("a", "ibex", None, 1004.0, 40, 0.8)
    h.start_event(going)
    assert h.flush()
    h._jobs.put(None)  # stop the writer without ending anything: as a power cut would
    h._thread.join()
    h.conn.close()
    h.lock.release()  # (the kernel's part of the cut)
    # the cut: a snapshot written but not yet named, a clip half written, a media file lost
    stray = media.write_whole(media.media_path(tmp_path, going, "clean", "jpg"), b"\xff\xd8whole but unnamed")
    part = media.part_path(media.media_path(tmp_path, going, "clip", "webm"))
    part.write_bytes(b"half a clip")
    (tmp_path / get_event(connect_reader(tmp_path), gone.id)["thumb"]).unlink()

    h2 = History(tmp_path)
    h2.open()
    h2.close()
    assert h2.repaired == {"interrupted": 1, "missing": 1, "stray": 2, "orphaned": 0}
    conn = connect_reader(tmp_path)
    assert get_event(conn, going.id)["status"] == "interrupted"
    assert get_event(conn, gone.id)["thumb"] is None and get_event(conn, done.id)["thumb"] is not None
    named = sorted(r[k] for r in query_events(conn)[0] for k in ("snapshot", "snapshot_clean", "thumb", "clip")
                   if r[k])
    assert media_files(tmp_path) == named and not stray.exists() and not part.exists()
    assert all(r["bytes"] == sum((tmp_path / r[k]).stat().st_size for k in ("snapshot", "snapshot_clean", "thumb")
                                 if r[k]) for r in query_events(conn)[0])
    # a second start finds nothing to repair
    h3 = History(tmp_path)
    h3.open()
    h3.close()
    assert h3.repaired == {"interrupted": 0, "missing": 0, "stray": 0, "orphaned": 0}


def test_a_reader_sees_committed_events_while_the_writer_works(tmp_path):
    h = History(tmp_path)
    h.open()
    try:
        store(h, "a", 1.0, 2.0)
        conn = connect_reader(tmp_path)
        seen = []
        stop = threading.Event()

        def read():
            while not stop.is_set():
                seen.append(query_events(conn, limit=1000)[1])

        t = threading.Thread(target=read, name="test-reader")
        t.start()
        for i in range(20):
            store(h, "a", 10.0 + i, 11.0 + i)
        stop.set()
        t.join()
        assert seen == sorted(seen) and query_events(conn)[1] == 21
    finally:
        h.close()


def test_no_history_folder_is_one_line(tmp_path):
    with pytest.raises(OutputError, match="no history at .*events.db"):
        connect_reader(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="cannot use .*check events.dir"):
        History(tmp_path / "file" / "events").open()


def test_a_full_disk_loses_the_media_not_the_history(half_mb_disk, caplog):
    small_disk = half_mb_disk
    h = History(small_disk)
    h.open()
    try:
        noise = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)  # ~450 KB as JPEG
        e = store(h, "a", 1000.0, 1001.0, image=noise, quality=95)
        small = store(h, "a", 1002.0, 1003.0)
    finally:
        h.close()
    assert h.write_errors >= 1
    assert "No space left on device" in caplog.text
    conn = sqlite3.connect(small_disk / "events.db")
    row = conn.execute("SELECT snapshot, snapshot_clean, thumb, status FROM events WHERE id = ?", (e.id,)).fetchone()
    assert row == (None, None, None, "ended")  # the row, without files it could not hold
    named = [f for r in conn.execute("SELECT snapshot, snapshot_clean, thumb FROM events") for f in r if f]
    assert media_files(small_disk) == sorted(named)  # no file of the failed snapshot left behind
    assert small.id is not None


def test_the_cli_reads_the_services_events_where_the_service_keeps_them(tmp_path, monkeypatch):
    from edgecam.config import schema as config
    from edgecam.commands.events import history_dir

    monkeypatch.setenv("EDGECAM_MODEL_DIR", str(tmp_path / "models"))
    service = config.from_dict({}, "/etc/edgecam/config.yaml")
    assert history_dir(service) == Path("/var/lib/edgecam/events")  # the unit's EDGECAM_MODEL_DIR, not ours
    mine = config.from_dict({}, str(tmp_path / "config.yaml"))
    assert history_dir(mine) == tmp_path / "events"  # beside the model folder
    chosen = config.from_dict({"events": {"dir": str(tmp_path / "ev")}}, "/etc/edgecam/config.yaml")
    assert history_dir(chosen) == tmp_path / "ev"
