"""A history written before the camera column (issue 25) opens with every row, and gets the column."""

from __future__ import annotations

import sqlite3

from edgecam.events.history import History, connect_reader, facets, get_event, query_events
from edgecam.events.rules import Event

#: The events table as edgecam wrote it before issue 25, word for word (not imported: it must not follow the code).
OLD_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rule TEXT NOT NULL,
    label TEXT NOT NULL,
    region TEXT,
    started REAL NOT NULL,          -- seconds since the epoch
    ended REAL,                     -- NULL while the event goes on
    start_frame INTEGER,
    end_frame INTEGER,
    peak_score REAL NOT NULL,
    snapshot TEXT,                  -- the annotated frame at the start (JPEG)
    snapshot_clean TEXT,            -- the same frame without the overlay
    thumb TEXT,
    clip TEXT,
    bytes INTEGER NOT NULL DEFAULT 0,  -- the media files' size
    status TEXT NOT NULL DEFAULT 'active'  -- active, ended, interrupted (a stop or power cut during it)
);
CREATE INDEX IF NOT EXISTS events_started ON events (started);
"""


def old_history(folder, n: int = 3) -> None:
    """An events.db as the code before the camera column left it: ``n`` ended events, one active."""
    folder.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(folder / "events.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(OLD_SCHEMA)
    for i in range(n):
        conn.execute("INSERT INTO events (rule, label, region, started, ended, start_frame, end_frame, peak_score, "
                     "status) VALUES (?, ?, NULL, ?, ?, ?, ?, ?, 'ended')",
                     ("ibex", "ibex", 1000.0 + 10 * i, 1005.0 + 10 * i, 10 * i, 10 * i + 5, 0.8 + i / 100))
    conn.execute("INSERT INTO events (rule, label, started, start_frame, peak_score) VALUES ('cat', 'tabby', 2000, 50, 0.7)")
    conn.close()


def columns(folder) -> list[str]:
    conn = sqlite3.connect(folder / "events.db")
    try:
        return [row[1] for row in conn.execute("PRAGMA table_info(events)")]
    finally:
        conn.close()


def test_an_old_history_opens_with_every_row_and_gains_the_camera_column(tmp_path):
    folder = tmp_path / "ev"
    old_history(folder)
    assert "camera" not in columns(folder)
    conn = connect_reader(folder)
    old_rows, total = query_events(conn, limit=100)  # a reader before the run migrated it: camera None
    assert total == 4 and {r["camera"] for r in old_rows} == {None}
    assert query_events(conn, camera="door") == ([], 0) and facets(conn)["cameras"] == []
    conn.close()

    h = History(folder)
    h.open()
    try:
        new = Event("ibex", "ibex", None, 3000.0, 100, 0.9, camera="door")
        h.start_event(new)
        new.end, new.end_frame = 3002.0, 120
        h.end_event(new)
        assert h.flush()
    finally:
        h.close()
    assert columns(folder)[-1] == "camera"
    conn = connect_reader(folder)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    rows, total = query_events(conn, limit=100)
    assert total == 5 and new.id == 5  # after the old ids
    by_id = {r["id"]: r for r in rows}
    for old in old_rows:  # every old row as it was (the one going on is interrupted by the repair), camera NULL
        got = dict(by_id[old["id"]])
        if old["status"] == "active":
            assert (got["status"], got["ended"]) == ("interrupted", old["started"])
            got.update(status=old["status"], ended=old["ended"])
        assert got == old
    assert get_event(conn, 5)["camera"] == "door"
    assert [r["id"] for r in query_events(conn, camera="door")[0]] == [5]
    assert facets(conn)["cameras"] == ["door"]
    conn.close()


def test_a_migrated_history_opens_again_unchanged_and_a_new_one_has_the_same_columns(tmp_path):
    old_history(tmp_path / "old", n=1)
    for folder in (tmp_path / "old", tmp_path / "new"):
        for _ in range(2):  # the second open finds it migrated: nothing to do
            h = History(folder)
            h.open()
            h.close()
    assert columns(tmp_path / "old") == columns(tmp_path / "new")
    conn = connect_reader(tmp_path / "old")
    assert query_events(conn)[1] == 2 and conn.execute("PRAGMA user_version").fetchone()[0] == 1
    conn.close()


def test_a_history_from_a_newer_edgecam_is_left_as_it_is(tmp_path):
    folder = tmp_path / "ev"
    h = History(folder)
    h.open()
    h.close()
    conn = sqlite3.connect(folder / "events.db", isolation_level=None)
    conn.execute("PRAGMA user_version = 7")
    conn.close()
    h = History(folder)
    h.open()
    h.close()
    conn = connect_reader(folder)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 7
    conn.close()
