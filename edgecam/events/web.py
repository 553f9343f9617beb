"""The events on the HTTP output: the /events page, its detail view, /api/events and the media files.

Paths (the HTTP output's token rule applies; the page and its pictures also take ``?token=``)::

    /events                     the page: newest first, thumbnails, filters (rule, label, day, camera), paging
    /events/<id>                one event: its clip playing, the snapshot, the details
    /events/<id>/snapshot.jpg   the annotated snapshot (clean.jpg: without the overlay; thumb.jpg)
    /events/<id>/clip           the clip file as written (MP4, WebM or Motion-JPEG AVI)
    /events/<id>/clip.mjpg      a Motion-JPEG AVI clip played as an MJPEG stream at its own rate
                                (browsers do not play AVI; every browser plays this in an <img>)
    /api/events                 JSON: ?rule= &label= &day=YYYY-MM-DD &camera= &limit= (1-200, 50) &offset=;
                                {"events": [...], "total", "limit", "offset", "next", "rules", "labels",
                                "cameras", "active_rules"}: "rules" names the configured rules and those with
                                events (the filter), "active_rules" says what makes each configured one fire
                                (with its "camera" in a run of several), "cameras" the cameras configured or
                                with events (none with one camera)
    /api/events/<id>            JSON: one event

Each request opens its own read-only connection to the history (SQLite in
WAL mode: the writer thread never waits for it). Media are served only
from the paths the history names, inside the events folder.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode

from edgecam.bounded import BadNumber, bounded_int
from edgecam.errors import OutputError
from edgecam.config.events import rule_summary
from edgecam.events.avi import BadClip, read_frames
from edgecam.events.history import DB_NAME, facets, get_event, query_events, reading
from edgecam.events.page import PAGE

logger = logging.getLogger("edgecam.outputs.http")


def _event_id(text: str) -> int | None:
    """An event id from a path, or None (not a whole number 1..2**63-1: no such event, a 404)."""
    try:
        return bounded_int(text, "event id", low=1)
    except BadNumber:
        return None

_FILES = {"snapshot.jpg": "snapshot", "clean.jpg": "snapshot_clean", "thumb.jpg": "thumb", "clip": "clip"}
_TYPES = {".jpg": "image/jpeg", ".mp4": "video/mp4", ".webm": "video/webm", ".avi": "video/x-msvideo"}


def event_json(row: dict) -> dict:
    """A history row as /api/events gives it: ISO times, media as URLs of this server."""
    base = f"/events/{row['id']}"
    out = {k: row[k] for k in ("id", "rule", "label", "region", "status", "start_frame", "end_frame", "bytes")}
    out["camera"] = row.get("camera")  # None with one camera
    out["start"] = datetime.fromtimestamp(row["started"]).astimezone().isoformat(timespec="milliseconds")
    out["end"] = None if row["ended"] is None else \
        datetime.fromtimestamp(row["ended"]).astimezone().isoformat(timespec="milliseconds")
    out["duration_s"] = None if row["ended"] is None else round(row["ended"] - row["started"], 3)
    out["peak_score"] = round(row["peak_score"], 4)
    out["snapshot"] = f"{base}/snapshot.jpg" if row["snapshot"] or row["snapshot_clean"] else None
    out["snapshot_clean"] = f"{base}/clean.jpg" if row["snapshot_clean"] else None
    out["thumb"] = f"{base}/thumb.jpg" if row["thumb"] else None
    clip = row["clip"]
    out["clip"] = f"{base}/clip" if clip else None
    out["clip_type"] = _TYPES.get(Path(clip).suffix) if clip else None
    out["clip_stream"] = f"{base}/clip.mjpg" if clip and clip.endswith(".avi") else None
    return out


class EventsWeb:
    """Answers the events' paths for :class:`edgecam.outputs.http_server.Handler` (see the module docstring)."""

    def __init__(self, folder: str | Path, rules=()):
        """``rules``: the configured rules (:class:`edgecam.config.events.EventRuleConfig`), listed even
        before any has fired; with several cameras, each camera's come with :meth:`add_camera`."""
        self.folder = Path(folder)
        self.rules = [rule_summary(r) for r in rules]
        self.cameras: list[str] = []
        self._bad_clips: set[Path] = set()

    def add_camera(self, camera: str, rules) -> None:
        """A camera of a run of several and its rules: listed with their camera, and the camera a filter."""
        self.cameras.append(camera)
        self.rules += [{**rule_summary(r), "camera": camera} for r in rules]

    def mount_on(self, http) -> EventsWeb:
        """Answer /events and /api/events (and below) on the HTTP output ``http`` (:meth:`HttpSink.mount`)."""
        http.mount("/events", self.handle)
        http.mount("/api/events", self.handle)
        return self

    def handle(self, handler, path: str, query: dict) -> None:
        if path in ("/events", "/events/") or (path.startswith("/events/") and _event_id(path[8:]) is not None):
            handler._send(200, PAGE, "text/html; charset=utf-8",
                          extra={"Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"})
            return
        if path == "/api/events" and not (self.folder / DB_NAME).is_file():
            # Nothing has fired yet (the history is made with the first event): an empty list, not an error.
            handler._json(200, {"events": [], "total": 0, "limit": 50, "offset": 0, "next": None,
                                **self._facets({"rules": [], "labels": [], "cameras": []})})
            return
        # The history is read, and closed, before any file is sent: a clip streamed for a minute must
        # not hold a database connection (file handles) all along.
        try:
            with reading(self.folder) as conn:
                if path == "/api/events":
                    self._list(handler, conn, query)
                    return
                if path.startswith("/api/events/"):
                    ident = _event_id(path[12:])
                    row = get_event(conn, ident) if ident is not None else None
                    if row is None:
                        handler._json(404, {"error": f"no event {path[12:][:40]}"})
                    else:
                        handler._json(200, event_json(row))
                    return
                rest = path[8:]
                text, _, name = rest.partition("/")
                ident = _event_id(text)
                row = get_event(conn, ident) if ident is not None else None
        except OutputError as e:
            handler._json(503, {"error": e.message})
            return
        self._media(handler, row, rest, name)

    def _list(self, handler, conn, query: dict) -> None:
        def one(key):
            return (query.get(key) or [""])[0].strip() or None

        try:
            limit = min(200, max(1, bounded_int(one("limit") or "50", "limit")))
            offset = bounded_int(one("offset") or "0", "offset")
            since = until = None
            if one("day"):
                day = datetime.strptime(one("day"), "%Y-%m-%d")
                since, until = day.timestamp(), datetime.fromordinal(day.toordinal() + 1).timestamp()
        except BadNumber as e:
            handler._json(400, {"error": str(e)})
            return
        except (ValueError, OverflowError):
            handler._json(400, {"error": "day is YYYY-MM-DD"})
            return
        rows, total = query_events(conn, rule=one("rule"), label=one("label"), since=since, until=until,
                                   limit=limit, offset=offset, camera=one("camera"))
        nxt = None
        if offset + len(rows) < total:
            keep = [(k, query[k][0]) for k in ("rule", "label", "day", "camera") if query.get(k)]
            nxt = "/api/events?" + urlencode(keep + [("limit", limit), ("offset", offset + limit)])
        handler._json(200, {"events": [event_json(r) for r in rows], "total": total, "limit": limit,
                            "offset": offset, "next": nxt, **self._facets(facets(conn))})

    def _facets(self, seen: dict) -> dict:
        """The filters: the configured rules and those in the history (a rule removed since keeps its
        events); labels from the history; the cameras configured and in the history; and what makes each
        configured rule fire."""
        return {"rules": sorted({r["name"] for r in self.rules} | set(seen["rules"])), "labels": seen["labels"],
                "cameras": sorted(set(self.cameras) | set(seen["cameras"])), "active_rules": self.rules}

    def _media(self, handler, row: dict | None, rest: str, name: str) -> None:
        column = _FILES.get(name) or ("clip" if name == "clip.mjpg" else None)
        rel = row and column and (row[column] or (row["snapshot_clean"] if column == "snapshot" else None))
        path = (self.folder / rel).resolve() if rel else None
        if path is None or not path.is_relative_to(self.folder.resolve()) or not path.is_file():
            handler._send(404, f"404 no such file: /events/{rest}\n".encode())
            return
        if name == "clip.mjpg":
            if path.suffix != ".avi":
                handler._send(404, b"404 this clip plays in a <video>: /clip\n")
                return
            self._play(handler, path)
            return
        self._file(handler, path)

    @staticmethod
    def _file(handler, path: Path) -> None:
        """Send a media file in chunks (a clip can be tens of MB: never read whole), with byte ranges
        (``Range: bytes=A-B``: what <video> asks for to seek, and Safari to play at all)."""
        size = path.stat().st_size
        start, end, code = 0, size - 1, 200
        m = re.fullmatch(r"bytes=([0-9]{0,30})-([0-9]{0,30})", handler.headers.get("Range", "").strip())
        if m and (m.group(1) or m.group(2)):
            if m.group(1):
                start, end = int(m.group(1)), min(int(m.group(2) or end), end)
            else:  # the last N bytes
                start = max(0, size - int(m.group(2)))
            if start > end:
                handler._send(416, b"416 range not satisfiable\n", extra={"Content-Range": f"bytes */{size}"})
                return
            code = 206
        handler.send_response(code)
        handler.send_header("Content-Type", _TYPES.get(path.suffix, "application/octet-stream"))
        handler.send_header("Content-Length", str(end - start + 1))
        handler.send_header("Accept-Ranges", "bytes")
        if code == 206:
            handler.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        handler.end_headers()
        if handler.command == "HEAD":
            return
        with open(path, "rb") as f:
            f.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = f.read(min(65536, left))
                if not chunk:
                    break
                handler.wfile.write(chunk)
                left -= len(chunk)

    def _play(self, handler, path: Path) -> None:
        """The AVI's JPEG frames as multipart/x-mixed-replace, at the clip's frame rate, once.

        A clip stream takes one of the HTTP output's stream slots (``http.max_clients``, shared with
        /stream.mjpg): each holds a thread, a socket and an open file for as long as it plays.
        """
        # Here, not at the top: the HTTP server's module costs ~1.2 MB (ru_maxrss after the import, AMD EPYC),
        # and this module is loaded with the events output, HTTP or not.
        from edgecam.outputs.http_server import BOUNDARY

        try:
            fps, frames = read_frames(path)
        except BadClip as e:
            if path not in self._bad_clips:  # once per file, not once per viewer
                self._bad_clips.add(path)
                logger.warning("events: cannot play a clip: %s", e)
            handler._json(500, {"error": f"the clip cannot be played: {e}"})
            return
        if handler.command == "HEAD":
            handler.send_response(200)
            handler.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            handler.end_headers()
            return
        with handler.stream_slot() as ok:
            if ok:
                self._send_frames(handler, path, fps, frames)

    @staticmethod
    def _send_frames(handler, path: Path, fps: float, frames: list[tuple[int, int]]) -> None:
        from edgecam.outputs.http_server import BOUNDARY  # here: see _play

        handler.send_response(200)
        handler.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        handler.send_header("Cache-Control", "no-store")
        handler.end_headers()
        interval = 1.0 / max(0.5, min(fps, 60.0))
        sink = handler.server.sink
        with open(path, "rb") as f:
            next_at = time.monotonic()
            for offset, size in frames:
                if sink.closing:
                    return
                f.seek(offset)
                jpeg = f.read(size)
                if len(jpeg) < size:  # the file shrank since it was read: end the stream
                    break
                handler.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {size}\r\n\r\n"
                                    .encode() + jpeg + b"\r\n")
                next_at += interval
                if sink.wait_closed(max(0.0, next_at - time.monotonic())):
                    return
        handler.wfile.write(f"--{BOUNDARY}--\r\n".encode())
