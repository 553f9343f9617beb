"""The events history under hostile conditions: a second process on the same folder, odd entries in media/,
a lost events.db, and a clock that jumps."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from edgecam.errors import EXIT_OUTPUT, OutputError
from edgecam.events import media
from edgecam.events.history import History, connect_reader, get_event, query_events
from edgecam.events.rules import Event
from tests.conftest import REPO
from tests.events.test_history import DAY, Clock, media_files, store

# A process that owns a history: an event going on, its clip being written (as edgecam run has them)
OWNER = textwrap.dedent("""
    import sys, numpy as np
    from edgecam.events import media
    from edgecam.events.clips import Clip
    from edgecam.config.events import EventRuleConfig
    from edgecam.events.history import History
    from edgecam.events.rules import Event
    h = History(sys.argv[1])
    h.open()
    event = Event("a", "ibex", None, 1000.0, 0, 0.9)
    h.start_event(event)
    assert h.flush()
    clip = Clip(event, EventRuleConfig(name="a", label="ibex"), h.folder, "avi")
    clip.add(1000.0, media.jpeg(np.zeros((16, 16, 3), np.uint8), 80))
    print(clip.tmp, flush=True)
    sys.stdin.read()  # hold on until the test closes stdin
    h.close()
""")


def owner(folder: Path) -> tuple[subprocess.Popen, Path]:
    """A second process owning the history in ``folder``; returns it and the path of its clip's .part."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", OWNER, str(folder)], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    assert line, proc.stderr.read()
    return proc, Path(line)


def test_a_second_process_on_the_same_history_is_refused_and_spoils_nothing(tmp_path):
    folder = tmp_path / "ev"
    first, part = owner(folder)
    try:
        with pytest.raises(OutputError) as err:
            History(folder).open()
        assert err.value.exit_code == EXIT_OUTPUT == 4
        assert "\n" not in err.value.message
        assert str(folder) in err.value.message and f"PID {first.pid}" in err.value.message
        # the first process's event is still going on, and its clip is still being written
        row = get_event(connect_reader(folder), 1)
        assert row["status"] == "active" and part.is_file()
        # readers need no lock
        rows, total = query_events(connect_reader(folder))
        assert total == 1
    finally:
        first.stdin.close()
        assert first.wait(30) == 0, first.stderr.read()
    h = History(folder)  # the first one stopped (its event in progress): the folder is free, and repaired
    h.open()
    h.close()
    assert h.repaired["interrupted"] == 1 and get_event(connect_reader(folder), 1)["status"] == "interrupted"


def test_a_killed_owner_frees_the_folder_and_the_next_start_repairs(tmp_path):
    folder = tmp_path / "ev"
    first, part = owner(folder)
    first.kill()
    first.wait(30)
    h = History(folder)
    h.open()
    h.close()
    assert h.repaired["interrupted"] == 1 and not part.exists()


def test_clips_of_two_processes_have_distinct_temporary_names(tmp_path):
    folder = tmp_path / "ev"
    first, theirs = owner(folder)
    try:
        from edgecam.events.clips import Clip
        from edgecam.config.events import EventRuleConfig

        mine = Clip(Event("a", "ibex", None, 1000.0, 0, 0.9, id=1), EventRuleConfig(name="a", label="ibex"),
                    folder, "avi")
        assert mine.tmp.parent == theirs.parent and mine.tmp != theirs
    finally:
        first.stdin.close()
        first.wait(30)


@pytest.mark.parametrize("kind", ["file", "dangling", "empty-dir", "dir", "fifo", "file-as-day"])
def test_odd_entries_in_media_never_stop_a_start_nor_get_followed(tmp_path, caplog, kind):
    folder = tmp_path / "ev"
    h = History(folder)
    h.open()
    kept = store(h, "a", time.time(), time.time() + 1)
    h.close()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.jpg").write_bytes(b"not edgecam's")
    odd = folder / "media" / "odd"
    if kind == "file":
        odd.symlink_to(outside / "precious.jpg")
    elif kind == "dangling":
        odd.symlink_to(tmp_path / "nothing")
    elif kind == "empty-dir":
        (outside / "empty").mkdir()
        odd.symlink_to(outside / "empty")
    elif kind == "dir":
        odd.symlink_to(outside)
    elif kind == "fifo":
        os.mkfifo(odd)
    else:
        odd = folder / "media" / "2031-01-01"  # a file where a day's folder would be
        odd.write_bytes(b"x")
    caplog.set_level(logging.WARNING)
    h = History(folder)
    h.open()  # no OutputError
    try:
        assert get_event(h.conn, kept.id)["snapshot"] is not None
    finally:
        h.close()
    assert (outside / "precious.jpg").read_bytes() == b"not edgecam's"
    if kind == "empty-dir":
        assert (outside / "empty").is_dir()
    if kind == "file-as-day":  # a stray file like any other: no row names it
        assert not odd.exists()
    else:  # left alone, and named in one warning
        assert odd.is_symlink() or odd.exists()
        lines = [r.getMessage() for r in caplog.records if "odd" in r.getMessage()]
        assert len(lines) == 1 and "left alone" in lines[0], caplog.text
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize("kind", ["file", "dangling"])
def test_a_media_that_is_not_a_folder_is_one_line_and_exit_4(tmp_path, kind):
    folder = tmp_path / "ev"
    folder.mkdir()
    if kind == "file":
        (folder / "media").write_bytes(b"x")
    else:
        (folder / "media").symlink_to(tmp_path / "nothing")
    with pytest.raises(OutputError) as err:
        History(folder).open()
    assert err.value.exit_code == 4 and "\n" not in err.value.message
    assert f"{folder / 'media'} is not a folder" in err.value.message
    (folder / "media").unlink()  # moved away: the next start works (the refused one let the lock go)
    h = History(folder)
    h.open()
    h.close()


@pytest.mark.parametrize("how", ["deleted", "emptied"])
def test_a_lost_events_db_puts_the_media_aside_instead_of_deleting_them(tmp_path, caplog, how):
    folder = tmp_path / "ev"
    h = History(folder)
    h.open()
    now = time.time()
    for i in range(3):
        store(h, "a", now + i, now + i + 0.5)
    h.close()
    before = media_files(folder)
    assert len(before) == 9
    (folder / "media" / ".clip-9-a.part.avi").write_bytes(b"half a clip")  # never whole: deleted
    for name in ("events.db", "events.db-wal", "events.db-shm"):
        (folder / name).unlink(missing_ok=True)
    if how == "emptied":
        (folder / "events.db").write_bytes(b"")
    caplog.set_level(logging.INFO)
    h = History(folder)
    h.open()
    h.close()
    aside = [p for p in (folder / "media").iterdir() if p.name.startswith("orphaned-")]
    assert len(aside) == 1 and aside[0].name == f"orphaned-{time.strftime('%Y-%m-%d')}"
    moved = sorted(p.relative_to(aside[0]).as_posix() for p in aside[0].rglob("*") if p.is_file())
    assert moved == [f.removeprefix("media/") for f in before]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "9 file(s)" in warnings[0] and str(aside[0]) in warnings[0], warnings
    assert "delete" in warnings[0]
    # the next start neither deletes them nor counts them; a new event gets its own files
    h = History(folder, max_bytes=1)
    h.open()
    store(h, "a", now + 10, now + 11)
    h.close()
    assert sorted(p.relative_to(aside[0]).as_posix() for p in aside[0].rglob("*") if p.is_file()) == moved
    assert h.repaired["stray"] == 0


class Monotonic(Clock):
    """A settable monotonic clock."""


def test_a_clock_moved_forward_before_a_start_does_not_wipe_the_history(tmp_path, caplog):
    clock, mono = Clock(100 * DAY), Monotonic(5000.0)
    h = History(tmp_path, max_age_days=30, clock=clock, monotonic=mono)
    h.open()
    events = [store(h, "a", 90 * DAY + i, 90 * DAY + i + 1) for i in range(3)]
    h.close()
    clock.t = 140 * DAY  # 40 days forward, and restarted
    mono.t = 10.0
    caplog.set_level(logging.WARNING)
    h = History(tmp_path, max_age_days=30, clock=clock, monotonic=mono)
    h.open()
    try:
        h.retention()
        assert h.flush()
        assert query_events(h.conn)[1] == 3 and h.deleted_by_retention == 0
        warnings = [r.getMessage() for r in caplog.records if "clock" in r.getMessage()]
        assert len(warnings) == 1 and "3 event(s)" in warnings[0], caplog.text
        # the clock was wrong and is put right: nothing goes, ever
        clock.t = 100 * DAY + 3600
        mono.t += 3600
        h.retention()
        assert h.flush() and query_events(h.conn)[1] == 3
    finally:
        h.close()
    # the clock was right (the camera was off for 40 days): after a day of running, age retention applies
    clock.t = 140 * DAY
    h = History(tmp_path, max_age_days=30, clock=clock, monotonic=mono)
    h.open()
    try:
        assert query_events(h.conn)[1] == 3
        clock.t += DAY + 60
        mono.t += DAY + 60
        h.retention()
        assert h.flush()
        assert query_events(h.conn)[1] == 0 and h.deleted_by_retention == 3
    finally:
        h.close()
    assert [get_event(connect_reader(tmp_path), e.id) for e in events] == [None] * 3


def test_a_clock_jumping_forward_while_running_holds_age_retention_for_a_day(tmp_path):
    clock, mono = Clock(100 * DAY), Monotonic(5000.0)
    h = History(tmp_path, max_age_days=30, clock=clock, monotonic=mono)
    h.open()
    try:
        store(h, "a", 99 * DAY, 99 * DAY + 1)
        clock.t += 3600  # an hour passes: the wall clock and the monotonic clock agree
        mono.t += 3600
        h.retention()
        clock.t += 60 * DAY  # the wall clock jumps 60 days
        mono.t += 60
        h.retention()
        assert h.flush() and query_events(h.conn)[1] == 1
        clock.t += DAY + 60  # it stays there a day: it was right
        mono.t += DAY + 60
        h.retention()
        assert h.flush() and query_events(h.conn)[1] == 0
    finally:
        h.close()


def test_size_retention_never_deletes_the_newest_event_whatever_the_clock_says(tmp_path):
    h = History(tmp_path, max_bytes=10**9)
    h.open()
    try:
        real = [store(h, "a", 1000.0 + i, 1000.5 + i) for i in range(4)]
        sizes = [get_event(h.conn, e.id)["bytes"] for e in real]
        h.max_bytes = sum(sizes[2:]) + 10  # room for about two
        newest = store(h, "a", 10.0, 11.0)  # the clock was moved back: the newest event seems the oldest
        kept = [r["id"] for r in query_events(h.conn, limit=100)[0]]
        assert newest.id in kept and real[0].id not in kept
        h.max_bytes = 1  # room for nothing: the newest still stays, every older one goes
        h.retention()
        assert h.flush()
        assert [r["id"] for r in query_events(h.conn, limit=100)[0]] == [newest.id]
    finally:
        h.close()


def test_a_clock_behind_the_newest_event_is_said_once_and_deletes_nothing_it_should_not(tmp_path, caplog):
    clock, mono = Clock(100 * DAY), Monotonic(0.0)
    h = History(tmp_path, max_age_days=30, clock=clock, monotonic=mono)
    h.open()
    old = store(h, "a", 60 * DAY, 60 * DAY + 1)  # over the age: goes at once
    kept = store(h, "a", 99 * DAY, 99 * DAY + 1)
    h.close()
    assert h.deleted_by_retention == 1
    clock.t = 50 * DAY  # a Pi without a real-time clock, before the network set it
    caplog.set_level(logging.WARNING)
    h = History(tmp_path, max_age_days=30, clock=clock, monotonic=mono)
    h.open()
    try:
        for _ in range(3):
            clock.t += 3600
            mono.t += 3600
            h.retention()
        assert h.flush()
        assert [r["id"] for r in query_events(h.conn)[0]] == [kept.id] and get_event(h.conn, old.id) is None
    finally:
        h.close()
    lines = [r.getMessage() for r in caplog.records if "behind the newest event" in r.getMessage()]
    assert len(lines) == 1, caplog.text
