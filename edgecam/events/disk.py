"""The events folder on the disk: what it holds, the lock of the process that writes it, the repair at start.

Layout of ``events.dir``::

    events.db (-wal, -shm)        the history (:mod:`edgecam.events.history`)
    events.lock                   held (flock) by the process that writes the history; names its PID
    media/<day>/<id>-<rule>-<kind>.<ext>    the events' snapshots and clips (<id>-<camera>-<rule>-...: several cameras)
    media/.clip-<pid>-<n>-<rule>.part.<ext> a clip being written
    media/orphaned-<date>/        media of a history that was lost, kept aside (never counted nor deleted)

One process writes a folder: :class:`FolderLock` is taken before anything in
it is touched, and a second ``edgecam run`` on the same folder stops with one
line (exit 4) instead of "repairing" the first one's event in progress.
Readers (``edgecam events``, the web page) open the database read-only and
need no lock.

:func:`repair`, at every start, makes the history and media/ agree after an
unclean stop. It never follows a symbolic link (edgecam makes none there: one
found is left alone and named), never deletes what it did not write (a FIFO,
a device), and never deletes media wholesale: when the history has no events
at all (events.db deleted or replaced) but media/ holds files, they are moved
aside to ``media/orphaned-<date>/`` and one WARNING says so.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import sqlite3
import time
from pathlib import Path

from edgecam.errors import OutputError

logger = logging.getLogger(__name__)

DB_NAME = "events.db"
LOCK_NAME = "events.lock"
MEDIA = "media"
ORPHANED = "orphaned-"
#: The media columns of a row: each holds a path relative to the events folder, or NULL.
MEDIA_COLUMNS = ("snapshot", "snapshot_clean", "thumb", "clip")
SHOWN = 5  # odd entries named in a warning, at most


class FolderLock:
    """An exclusive ``flock`` on ``folder``/events.lock, held until :meth:`release` (or the process ends:
    the kernel drops it then, even after ``kill -9``)."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock; OutputError (exit 4, one line naming the holder's PID) when another process has it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise OutputError(f"events: {self.path.parent} is in use by another edgecam (PID {holder}); stop "
                                  "it, or give this run an events.dir of its own") from None
            # a file system without locks (some network mounts): go on, as before the lock existed
            logger.warning("events: cannot lock %s (%s); make sure only one edgecam at a time uses this folder",
                           self.path, e.strerror or e)
            return
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None


def inside_media(folder: Path, rel: str) -> Path | None:
    """``folder``/``rel`` when it is a file edgecam may delete: not a symbolic link, and not reached through
    one that leads out of media/; else None."""
    path = Path(folder) / rel
    try:
        if path.is_symlink() or not path.parent.resolve().is_relative_to((Path(folder) / MEDIA).resolve()):
            return None
    except OSError:
        return None
    return path


def unlink_media(folder: Path, rel: str | None) -> None:
    """Delete a media file a row named (retention, a failed write); never through a symbolic link."""
    if not rel:
        return
    path = inside_media(folder, rel)
    if path is None:
        logger.warning("events: left %s alone: it is a symbolic link or reached through one out of %s",
                       Path(folder) / rel, Path(folder) / MEDIA)
        return
    path.unlink(missing_ok=True)


def _scan(media: Path) -> tuple[list[Path], list[Path], list[Path], list[Path]]:
    """What media/ holds, never following a symbolic link: (regular files, folders, odd entries (symbolic
    links, FIFOs, sockets, devices, unreadable folders), the orphaned-* folders at its top)."""
    files, dirs, odd, orphaned = [], [], [], []
    todo = [media]
    while todo:
        folder = todo.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError:
            odd.append(folder)
            continue
        for entry in entries:
            path = Path(entry.path)
            if entry.is_symlink():
                odd.append(path)
            elif entry.is_dir(follow_symlinks=False):
                if folder == media and entry.name.startswith(ORPHANED):
                    orphaned.append(path)
                else:
                    dirs.append(path)
                    todo.append(path)
            elif entry.is_file(follow_symlinks=False):
                files.append(path)
            else:
                odd.append(path)
    return files, dirs, odd, orphaned


def _is_part(path: Path) -> bool:
    """A file being written (``.<name>.part`` or a clip's ``.clip-...part.<ext>``): never whole after a stop."""
    return path.name.startswith(".") and ".part" in path.name


def _put_aside(media: Path) -> Path:
    """Move everything at media/'s top (but symbolic links and orphaned-* folders) into a new
    media/orphaned-<date>/; returns it."""
    base = media / f"{ORPHANED}{time.strftime('%Y-%m-%d')}"
    target, n = base, 1
    while target.exists() or target.is_symlink():
        n += 1
        target = base.with_name(f"{base.name}-{n}")
    target.mkdir()
    for entry in sorted(media.iterdir()):
        if entry == target or entry.is_symlink() or entry.name.startswith(ORPHANED):
            continue
        try:
            os.rename(entry, target / entry.name)
        except OSError as e:  # a mount point, say: it stays where it is, not deleted
            logger.warning("events: cannot move %s aside (%s); left where it is", entry, e.strerror or e)
    return target


def repair(conn: sqlite3.Connection, folder: Path) -> dict:
    """Make the history and the media folder agree (see the module docstring); returns what was done."""
    folder = Path(folder)
    done = {"interrupted": 0, "missing": 0, "stray": 0, "orphaned": 0}
    conn.execute("BEGIN IMMEDIATE")
    done["interrupted"] = conn.execute(
        "UPDATE events SET status = 'interrupted', ended = COALESCE(ended, started) WHERE status = 'active'").rowcount
    known = set()
    rows = conn.execute(f"SELECT id, {', '.join(MEDIA_COLUMNS)} FROM events").fetchall()
    for row in rows:
        for column, rel in zip(MEDIA_COLUMNS, row[1:]):
            if rel is None:
                continue
            if (folder / rel).is_file():
                known.add(rel)
            else:
                done["missing"] += 1
                conn.execute(f"UPDATE events SET {column} = NULL WHERE id = ?", (row[0],))
    conn.execute("COMMIT")
    media = folder / MEDIA
    files, dirs, odd, orphaned = _scan(media) if media.is_dir() else ([], [], [], [])
    parts = [p for p in files if _is_part(p)]
    whole = [p for p in files if not _is_part(p)]
    for path in parts:  # never whole: what a stop during a write leaves
        path.unlink(missing_ok=True)
        done["stray"] += 1
    if not rows and whole:  # no history at all, but media: it was lost, not the media
        size = sum(p.stat().st_size for p in whole)
        target = _put_aside(media)
        done["orphaned"] = len(whole)
        logger.warning("events: the history in %s has no events, but %s held %d file(s) (%.1f MB) no event "
                       "names (was events.db deleted or replaced?): moved them to %s instead of deleting them%s; "
                       "look at them, and delete that folder when done (edgecam never counts nor deletes it)",
                       folder, media, len(whole), size / 1e6, target,
                       f" ({len(parts)} unfinished file(s) deleted)" if parts else "")
    else:
        for path in whole:
            if path.relative_to(folder).as_posix() not in known:
                path.unlink(missing_ok=True)
                done["stray"] += 1
        for path in sorted(dirs, key=lambda p: len(p.parts), reverse=True):  # the deepest first
            try:
                path.rmdir()
            except OSError:  # not empty: it stays
                pass
    if odd:
        names = ", ".join(str(p.relative_to(folder)) for p in odd[:SHOWN]) + (", ..." if len(odd) > SHOWN else "")
        logger.warning("events: left alone %d entr%s in %s that edgecam did not write (a symbolic link, a FIFO "
                       "or an unreadable folder: never followed nor deleted): %s; remove them if they are not "
                       "yours", len(odd), "y" if len(odd) == 1 else "ies", media, names)
    for path in orphaned:  # from a start before: a reminder
        logger.info("events: %s holds the media of a lost history, kept aside; delete it when you no longer "
                        "need it", path)
    if done["missing"] or done["stray"]:
        _recount(conn, folder)
    if (done["interrupted"] or done["missing"] or done["stray"]) and not done["orphaned"]:
        logger.warning("events: repaired the history after an unclean stop: %d event(s) in progress marked "
                       "interrupted, %d missing media file(s) forgotten, %d file(s) no event knew deleted",
                       done["interrupted"], done["missing"], done["stray"])
    return done


def _recount(conn: sqlite3.Connection, folder: Path) -> None:
    conn.execute("BEGIN IMMEDIATE")
    for row in conn.execute(f"SELECT id, {', '.join(MEDIA_COLUMNS)} FROM events").fetchall():
        size = sum((folder / rel).stat().st_size for rel in row[1:] if rel)
        conn.execute("UPDATE events SET bytes = ? WHERE id = ?", (size, row[0]))
    conn.execute("COMMIT")
