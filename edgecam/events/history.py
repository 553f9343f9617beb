"""The events' history: SQLite (the standard library's ``sqlite3``) in WAL mode, written by one thread.

The pipeline never waits for the disk: :class:`History` takes jobs (store an
event, add a media file, end it, apply retention) on a queue that its
``events-writer`` thread runs in order, on its own connection. Readers (the
CLI, the web page) open their own read-only connections (:func:`connect_reader`)
and see committed rows while the service writes (WAL).

What the disk holds stays consistent across a power cut:

* a media file is written under a temporary name, flushed, renamed, and only
  then named in its row (``synchronous=FULL``: a commit is on the disk when
  it returns); a deleted event loses its row first, its files after;
* :func:`~edgecam.events.disk.repair`, at every start, marks events that
  were in progress ``interrupted``, forgets media a row names that is not
  there, and deletes files no row names (a snapshot written just before the
  cut, a clip's ``.part``), and logs what it did in one line.

So a power cut loses at most the event in progress (its clip), and never
leaves a row pointing at a missing file nor a file no row knows. One process
writes a folder (:class:`~edgecam.events.disk.FolderLock`, taken first at
:meth:`History.open`), through one :class:`History`: the cameras of a run of
several share it (:class:`edgecam.events.hub.EventsHub`), each row naming its
camera. Retention cannot be fooled by the clock (:mod:`edgecam.events.retention`).

The table's first layout is :data:`SCHEMA`; what changed since is in
:data:`MIGRATIONS`, applied at the writer's start (``PRAGMA user_version``),
so a history written before a change opens with every row it had.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path

from edgecam import registry
from edgecam.errors import OutputError
from edgecam.events.disk import DB_NAME, LOCK_NAME, MEDIA, MEDIA_COLUMNS, FolderLock, repair, unlink_media
from edgecam.events.retention import AgeGuard, boottime

__all__ = ["DB_NAME", "MEDIA", "MEDIA_COLUMNS", "History", "connect_reader", "connect_writer", "default_dir",
           "facets", "get_event", "has_column", "migrate", "query_events", "repair", "row_dict"]

logger = logging.getLogger(__name__)

COLUMNS = ("id", "rule", "label", "region", "started", "ended", "start_frame", "end_frame", "peak_score",
           *MEDIA_COLUMNS, "bytes", "status", "camera")

class EventStatus(StrEnum):
    """An event's ``status`` column: under way, ended, or cut short by a stop or a power cut."""

    ACTIVE = "active"
    ENDED = "ended"
    INTERRUPTED = "interrupted"

SCHEMA = """
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

#: What changed in the table since :data:`SCHEMA` (its first version), in order; ``PRAGMA user_version`` is how
#: many a database has had. A new database gets them too, the same way as one written before them.
MIGRATIONS = (
    # 1 (issue 25): the camera an event was seen by in a run of several cameras; NULL with one camera
    "ALTER TABLE events ADD COLUMN camera TEXT",
)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the history up to :data:`MIGRATIONS`, all in one transaction (rows are kept); returns how many
    were applied. A database a newer edgecam wrote (a higher version) is left as it is."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version >= len(MIGRATIONS):
        return 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        for sql in MIGRATIONS[version:]:
            conn.execute(sql)
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return len(MIGRATIONS) - version


def has_column(conn: sqlite3.Connection, column: str) -> bool:
    """Whether the events table has ``column`` (a reader may open a history no run has migrated yet)."""
    return any(row[1] == column for row in conn.execute("PRAGMA table_info(events)"))


def default_dir(cfg) -> str:
    """Where events live: ``events.dir``, else ``events/`` beside the model folder."""
    if cfg.events.dir:
        return cfg.events.dir
    return str(registry.models_dir(cfg.model.dir).parent / "events")


def connect_writer(folder: Path) -> sqlite3.Connection:
    """The writer's connection to ``folder``/events.db (created): WAL, every commit synced."""
    conn = sqlite3.connect(folder / DB_NAME, check_same_thread=False, isolation_level=None, timeout=10)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.executescript(SCHEMA)
    if migrate(conn):
        logger.info("events: the history in %s is now at version %d (a camera column)", folder, len(MIGRATIONS))
    conn.row_factory = sqlite3.Row
    return conn


def connect_reader(folder: str | os.PathLike) -> sqlite3.Connection:
    """A read-only connection to the history in ``folder``; an OutputError (one line) when there is none."""
    path = Path(folder) / DB_NAME
    if not path.is_file():
        raise OutputError(f"events: no history at {path}; is events.dir right (--dir), and has a rule run yet?")
    conn = None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("SELECT 1 FROM events LIMIT 1")
    except sqlite3.Error as e:
        if conn is not None:  # a connection that failed its first read still holds file handles
            conn.close()
        raise OutputError(f"events: cannot read {path}: {e}; check its permissions") from None
    return conn


@contextlib.contextmanager
def reading(folder: str | os.PathLike) -> Iterator[sqlite3.Connection]:
    """``with reading(folder) as conn``: :func:`connect_reader`, closed on the way out whatever happens."""
    conn = connect_reader(folder)
    try:
        yield conn
    finally:
        conn.close()


def row_dict(row) -> dict:
    """A history row as a dict, with its ``camera`` (None in a history from before that column)."""
    out = {k: row[k] for k in row.keys()}
    out.setdefault("camera", None)
    return out


def query_events(conn: sqlite3.Connection, *, rule: str | None = None, label: str | None = None,
                 since: float | None = None, until: float | None = None, limit: int = 50,
                 offset: int = 0, camera: str | None = None) -> tuple[list[dict], int]:
    """Events newest first, filtered; returns (the page of rows as dicts, how many match in all).

    ``camera``: only the events of that camera (of a run of several); none in a history without cameras."""
    where, args = [], []
    if camera and not has_column(conn, "camera"):
        return [], 0
    for column, value in (("rule", rule), ("label", label), ("camera", camera)):
        if value:
            where.append(f"{column} = ?")
            args.append(value)
    if since is not None:
        where.append("started >= ?")
        args.append(since)
    if until is not None:
        where.append("started < ?")
        args.append(until)
    sql_where = f" WHERE {' AND '.join(where)}" if where else ""
    total = conn.execute(f"SELECT COUNT(*) FROM events{sql_where}", args).fetchone()[0]
    rows = conn.execute(f"SELECT * FROM events{sql_where} ORDER BY started DESC, id DESC LIMIT ? OFFSET ?",
                        [*args, int(limit), int(offset)]).fetchall()
    return [row_dict(r) for r in rows], total


def get_event(conn: sqlite3.Connection, event_id: int) -> dict | None:
    """The row of event ``event_id`` as a dict, or None."""
    row = conn.execute("SELECT * FROM events WHERE id = ?", (int(event_id),)).fetchone()
    return row_dict(row) if row is not None else None


def facets(conn: sqlite3.Connection) -> dict:
    """The rules, labels and cameras that have events (the page's filters); no cameras with one camera."""
    cameras = [r[0] for r in conn.execute(
        "SELECT DISTINCT camera FROM events WHERE camera IS NOT NULL ORDER BY camera")] \
        if has_column(conn, "camera") else []
    return {"rules": [r[0] for r in conn.execute("SELECT DISTINCT rule FROM events ORDER BY rule")],
            "labels": [r[0] for r in conn.execute("SELECT DISTINCT label FROM events ORDER BY label")],
            "cameras": cameras}


class History:
    """The history of one run: the writer thread and its jobs (see the module docstring).

    ``clock``: seconds since the epoch (retention's "now"), ``monotonic``: running seconds (tests pass fake
    ones; see :mod:`edgecam.events.retention`).
    """

    def __init__(self, folder: str | os.PathLike, max_age_days: float = 0.0, max_bytes: int = 0,
                 clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = boottime):
        self.folder = Path(folder)
        self.max_age_s = max_age_days * 86400.0
        self.max_bytes = int(max_bytes)
        self.clock = clock
        self.age = AgeGuard(self.max_age_s, clock, monotonic)
        self.lock = FolderLock(self.folder)
        self.conn: sqlite3.Connection | None = None
        self._jobs: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self.repaired: dict = {}
        self.found_interrupted: list[tuple] = []  # (id, rule, label, region, started, start_frame, peak, camera)
        #: counters for /metrics (written by the writer thread only)
        self.deleted_by_retention = 0
        self.write_errors = 0
        self.bytes_on_disk = 0
        self._error_logged: set[str] = set()
        self._last_id = 0  # ids are handed out here (one writer), so an event has its id at once
        self._id_lock = threading.Lock()  # several cameras' output loops start events on one history

    def new_id(self) -> int:
        """The id of the next event (never one used before, even by an event retention deleted)."""
        with self._id_lock:
            self._last_id += 1
            return self._last_id

    def disk_bytes(self) -> int:
        """The media's bytes and the database's (with its WAL, and the lock): what the events take on the disk
        (not media/orphaned-*: kept aside, the user's)."""
        size = self.bytes_on_disk
        for name in (DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm", LOCK_NAME):
            try:
                size += (self.folder / name).stat().st_size
            except OSError:
                pass
        return size

    def open(self) -> None:
        """Create the folder and the database, lock the folder, repair, apply retention, start the writer;
        OutputError (exit 4) if not, such as when another process has the folder."""
        media = self.folder / MEDIA
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.lock.acquire()  # before anything in the folder is touched
        except OSError as e:
            raise OutputError(f"events: cannot use {self.folder}: {e.strerror or e}; check events.dir is a "
                              "writable folder") from None
        try:
            if (media.is_symlink() or media.exists()) and not media.is_dir():
                raise OutputError(f"events: {media} is not a folder (a file, or a symbolic link to none); move it "
                                  "away and start again")
            media.mkdir(exist_ok=True)
            self.conn = connect_writer(self.folder)
            # The events a stop left in progress: their end is published at start (edgecam.events.sink), as at a stop.
            self.found_interrupted = [tuple(r) for r in self.conn.execute(
                "SELECT id, rule, label, region, started, start_frame, peak_score, camera FROM events "
                "WHERE status = 'active'")]
            self.repaired = repair(self.conn, self.folder)
            self._last_id = self.conn.execute(
                "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0), "
                "COALESCE((SELECT MAX(id) FROM events), 0))").fetchone()[0]
        except (OSError, sqlite3.Error) as e:
            self._release()
            raise OutputError(f"events: cannot use {self.folder}: {getattr(e, 'strerror', None) or e}; "
                              "check events.dir is a writable folder") from None
        except OutputError:
            self._release()
            raise
        self._apply_retention(self.conn)
        self._thread = threading.Thread(target=self._run, name="events-writer", daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[sqlite3.Connection], None]) -> None:
        """Run ``job(connection)`` on the writer thread, after the jobs before it."""
        self._jobs.put(job)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job(self.conn)
            except Exception as e:  # one failed job (a full disk) must not stop the history
                self.write_errors += 1
                try:
                    if self.conn.in_transaction:
                        self.conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                what = getattr(e, "strerror", None) or str(e)
                if what not in self._error_logged:  # once per kind of trouble, not once per frame
                    self._error_logged.add(what)
                    logger.error("events: cannot write the history or its media in %s: %s", self.folder, what)
                else:
                    logger.debug("events: write failed again: %s", what)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every job submitted so far has run (tests, close)."""
        done = threading.Event()
        self.submit(lambda conn: done.set())
        return done.wait(timeout)

    def close(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join(timeout=30)
            self._thread = None
        self._release()

    def _release(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        self.lock.release()  # the last: the folder is another process's only when this one is done with it

    # ------------------------------------------------------- jobs (writer thread)

    def start_event(self, event) -> None:
        """Store a new event (given its ``id`` here when it has none)."""
        if event.id is None:
            event.id = self.new_id()

        def job(conn):
            conn.execute(
                "INSERT INTO events (id, rule, label, region, started, start_frame, peak_score, status, camera) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'active', ?)",
                (event.id, event.rule, event.label, event.region, event.start, event.start_frame, event.peak_score,
                 event.camera))
        self.submit(job)

    def end_event(self, event, status: EventStatus = EventStatus.ENDED) -> None:
        """Store an event's end and peak score; retention runs after it."""
        def job(conn):
            conn.execute("UPDATE events SET ended = ?, end_frame = ?, peak_score = ?, status = ? WHERE id = ?",
                         (event.end, event.end_frame, event.peak_score, EventStatus(status).value, event.id))
            self._apply_retention(conn)
        self.submit(job)

    def add_media(self, event, files: dict[str, Path]) -> None:
        """Name media files (already written, whole) in the event's row: column -> path."""
        rels = {k: Path(p).relative_to(self.folder).as_posix() for k, p in files.items()}
        size = sum(Path(p).stat().st_size for p in files.values())
        sets = ", ".join(f"{k} = ?" for k in rels)
        self.conn.execute(f"UPDATE events SET {sets}, bytes = bytes + ? WHERE id = ?",
                          (*rels.values(), size, event.id))
        self.bytes_on_disk += size

    def retention(self) -> None:
        """Apply retention now (the sink calls it about hourly)."""
        self.submit(self._apply_retention)

    def _apply_retention(self, conn: sqlite3.Connection) -> None:
        """Age, then size (see :mod:`edgecam.events.retention`: a wrong clock cannot make either delete what
        it should not)."""
        doomed: list[tuple] = []
        cols = ", ".join(MEDIA_COLUMNS)
        finished = "FROM events WHERE status != 'active' AND COALESCE(ended, started) < ?"
        newest = conn.execute("SELECT MAX(COALESCE(ended, started)) FROM events").fetchone()[0]
        cutoff = self.age.cutoff(newest, lambda t: conn.execute(f"SELECT COUNT(*) {finished}", (t,)).fetchone()[0])
        if cutoff is not None:
            doomed += conn.execute(f"SELECT id, bytes, {cols} {finished} ORDER BY id", (cutoff,)).fetchall()
        total = conn.execute("SELECT COALESCE(SUM(bytes), 0) FROM events").fetchone()[0]
        total -= sum(row[1] for row in doomed)
        if self.max_bytes > 0 and total > self.max_bytes:
            gone = {row[0] for row in doomed}
            # in the order they were stored, never by their times (a clock moved back would make the newest
            # the oldest), and never the newest one
            for row in conn.execute(f"SELECT id, bytes, {cols} FROM events WHERE status != 'active' "
                                    "AND id < (SELECT MAX(id) FROM events) ORDER BY id"):
                if total <= self.max_bytes:
                    break
                if row[0] not in gone:
                    doomed.append(row)
                    total -= row[1]
        self.bytes_on_disk = total
        if not doomed:
            return
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("DELETE FROM events WHERE id = ?", [(row[0],) for row in doomed])
        conn.execute("COMMIT")  # the rows first: a cut now leaves files no row knows, which repair deletes
        for row in doomed:
            for rel in row[2:]:
                unlink_media(self.folder, rel)
        self.deleted_by_retention += len(doomed)
        logger.info("events: retention deleted %d event(s) and their media", len(doomed))
