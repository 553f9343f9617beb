"""Predictions as JSON Lines: one object per result, or per label change.

The promise: every line on disk parses. Each line (or batch of whole lines)
goes to the file in one ``write()`` on a descriptor opened with ``O_APPEND``,
so a crash or SIGKILL loses at most the line being written. A write the disk
cuts short (it filled up mid-line) is cut back to the last whole line at once
with ``ftruncate``; a partial last line left by a crash or by a cut that
failed is removed when the file is next opened. So the next record is never
glued to half of an earlier one.

A write that fails (disk full, file removed, reader of a named pipe gone) is
reported once and retried; meanwhile lines wait in memory (up to
``MAX_PENDING_BYTES``, oldest dropped first and counted), so an outage shorter
than that loses nothing. The pipeline goes on. At the end the sink says what
was lost; a log where no line at all could be written ends the run with exit
code 4.

The file rotates by size (``path.1`` ... ``path.N``). Pipes and devices
(``/dev/stdout``, a FIFO) are written to as they are, without rotation.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
import time
from collections import deque
from pathlib import Path

from edgecam.config.cameras import CAMERA_FIELD
from edgecam.errors import OutputError
from edgecam.outputs.base import Sink, iso_time
from edgecam.result import Extra, LabelChange

logger = logging.getLogger(__name__)

RETRY_S = 5.0
#: Lines kept in memory while the log cannot be written (about an hour of label
#: changes, or a minute of every result at 30 fps).
MAX_PENDING_BYTES = 1 << 20
#: A line's size, for the cost a day said at start: measured 375 bytes a line with top_k 3 and ImageNet
#: labels (tools/sd_budget.py); a label with its index and score is most of it.
LINE_BYTES_BASE = 150
LINE_BYTES_PER_LABEL = 75
_TAIL_CHUNK = 64 * 1024


class JsonLogSink(Sink):
    """Writes results as JSON Lines to ``cfg.path`` (a :class:`edgecam.config.schema.LogConfig`)."""

    name = "log"

    def __init__(self, cfg, top_k: int = 3, threshold: float = 0.0, results_per_s: float | None = None,
                 camera: str | None = None):
        # Several cameras: each its own file (``{camera}`` in log.path), each line naming its camera.
        self.camera = camera
        self.path = Path(cfg.path.replace(CAMERA_FIELD, camera) if camera else cfg.path)
        self.mode = cfg.mode
        self.heartbeat_s = cfg.heartbeat_s
        self.results_per_s = results_per_s  # for the cost a day said at start (the source's frame rate)
        self._last_line_wall = -float("inf")
        self.max_bytes = cfg.max_bytes
        self.backups = cfg.backups
        self.top_k = top_k
        self.threshold = threshold
        self._fd: int | None = None
        self._regular = True  # a plain file: rotation and cutting back apply
        self._pending: deque[bytes] = deque()  # encoded lines not yet on disk
        self._pending_bytes = 0
        self._failing_since: float | None = None
        self._next_try = 0.0
        self._reason = ""
        self._closed = False
        self.lines_written = 0
        self.lines_lost = 0
        self.lines_total = 0
        #: Set by close() when not one line could be written: the run's exit code (4).
        self.failure: OutputError | None = None

    @classmethod
    def from_config(cls, cfg, ctx) -> JsonLogSink:
        return cls(cfg.log, cfg.model.top_k, cfg.model.threshold, results_per_s=cfg.source.fps, camera=ctx.camera)

    # ------------------------------------------------------------------ files

    def start(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._open()
            logger.info("log %s: %s", self.path, cost_per_day(self.mode, self.top_k, self.results_per_s,
                                                              self.heartbeat_s))
        except OSError as e:
            if e.errno == errno.ENXIO:  # O_NONBLOCK open of a FIFO nobody reads: it would block for ever
                raise OutputError(
                    f"log {self.path}: a named pipe with no reader; start the program that reads it first, "
                    "or log to a file") from None
            raise OutputError(
                f"log {self.path}: cannot write ({e.strerror}); check the folder exists and is writable "
                "by this user, or change log.path"
            ) from None

    def _open(self) -> None:
        # O_NONBLOCK only for the open itself: a FIFO without a reader fails with ENXIO
        # instead of blocking start-up for ever. Writes then block as usual.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK, 0o644)
        try:
            os.set_blocking(fd, True)
            self._regular = stat.S_ISREG(os.fstat(fd).st_mode)
            if self._regular:
                self._cut_partial_tail(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _cut_partial_tail(self, fd: int) -> None:
        """Remove bytes after the last newline: half a line from a crash or a full disk."""
        size = os.fstat(fd).st_size
        if size == 0:
            return
        with open(self.path, "rb") as f:
            end = size
            while end > 0:
                start = max(0, end - _TAIL_CHUNK)
                f.seek(start)
                chunk = f.read(end - start)
                nl = chunk.rfind(b"\n")
                if nl >= 0:
                    keep = start + nl + 1
                    break
                end = start
            else:
                keep = 0
        if keep < size:
            os.ftruncate(fd, keep)
            logger.warning("log %s: removed a partial last line (%d bytes) left by a crash or a full disk",
                           self.path, size - keep)

    def _close_fd(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None

    def _rotate(self) -> None:
        self._close_fd()
        for i in range(self.backups - 1, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{i}")
            if src.exists():
                os.replace(src, self.path.with_name(f"{self.path.name}.{i + 1}"))
        if self.backups > 0:
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)
        self._open()

    def _append(self, lines: list[bytes]) -> int:
        """Write ``lines`` in one write; return how many reached the file whole.

        A write the disk cuts short is cut back to the last whole line in it,
        so no part of a line ever stays. Raises OSError when not one did.
        """
        fd = self._fd
        data = b"".join(lines)
        if not self._regular:
            view = memoryview(data)
            while view:  # a pipe or device: cannot cut back, so finish the write
                view = view[os.write(fd, view):]
            return len(lines)
        start = os.fstat(fd).st_size
        error: OSError | None = None
        try:
            written = os.write(fd, data)
        except OSError as e:
            written, error = 0, e
        if written == len(data):
            return len(lines)
        whole = size = 0
        for line in lines:
            if size + len(line) > written:
                break
            whole, size = whole + 1, size + len(line)
        try:
            if os.fstat(fd).st_size > start + size:
                os.ftruncate(fd, start + size)
        except OSError as e:
            logger.debug("log %s: cutting back a short write failed (%s); done at the next open", self.path, e)
        if whole:
            return whole
        raise error or OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    # ---------------------------------------------------------------- lines

    def record(self, result, event: LabelChange | None = None) -> dict:
        """The JSON object logged for ``result`` (with ``regions: {name: {label, score, ...}}`` when there are)."""
        obj = {"timestamp": iso_time(result.wall_time)}
        if self.camera is not None:
            obj["camera"] = self.camera
        obj.update(result.to_dict(self.top_k, self.threshold))
        if event is not None:
            obj["event"] = {"label": event.label, "previous": event.previous}
        changes = result.extra.get(Extra.REGION_CHANGES)
        if changes:
            obj["region_events"] = [{"region": e.region, "label": e.label, "previous": e.previous} for e in changes]
        rule_events = result.extra.get(Extra.RULE_EVENTS)  # put there by the events output (edgecam.events)
        if rule_events:
            obj["rule_events"] = [{k: e.payload[k] for k in ("type", "id", "rule", "label", "region")}
                                  for e in rule_events]
        return obj

    def on_result(self, result) -> None:
        # The pipeline puts the label-change event a result caused in its extra (regions: their events).
        event = result.extra.get(Extra.LABEL_CHANGE)
        if self.mode != "every" and event is None and not result.extra.get(Extra.REGION_CHANGES) \
                and not result.extra.get(Extra.RULE_EVENTS):
            if self.mode == "changes" or result.wall_time - self._last_line_wall < self.heartbeat_s:
                return
        self._last_line_wall = result.wall_time
        self._write(json.dumps(self.record(result, event), ensure_ascii=False) + "\n")

    def _write(self, line: str) -> None:
        data = line.encode("utf-8")
        self.lines_total += 1
        self._pending.append(data)
        self._pending_bytes += len(data)
        while self._pending_bytes > MAX_PENDING_BYTES and len(self._pending) > 1:
            self._pending_bytes -= len(self._pending.popleft())
            self.lines_lost += 1  # the oldest waiting line: memory is bounded
        now = time.monotonic()
        if self._failing_since is not None and now < self._next_try:
            return
        self._flush(now)

    def _batch(self) -> int:
        """How many waiting lines go in the next write: all that fit before the file must rotate."""
        if not (self._regular and self.max_bytes):
            return len(self._pending)
        room = self.max_bytes - os.fstat(self._fd).st_size
        n = size = 0
        for data in self._pending:
            if size + len(data) > room:
                break
            n, size = n + 1, size + len(data)
        return n

    def _flush(self, now: float) -> None:
        try:
            if self._fd is None:
                self._open()
            while self._pending:
                n = self._batch()
                if n == 0:
                    if os.fstat(self._fd).st_size > 0:
                        self._rotate()
                        continue
                    n = 1  # one line longer than max_bytes: it still goes in a file of its own
                done = self._append([self._pending[i] for i in range(n)])
                for _ in range(done):
                    self._pending_bytes -= len(self._pending.popleft())
                self.lines_written += done
        except OSError as e:
            self._reason = e.strerror or str(e)
            if self._failing_since is None:
                logger.error("log %s: cannot write (%s); predictions wait in memory (up to %d KB) until it can, "
                             "the pipeline goes on", self.path, self._reason, MAX_PENDING_BYTES // 1024)
                self._failing_since = now
            self._next_try = now + RETRY_S
            self._close_fd()  # reopened at the next try: the file may have been removed or replaced
            return
        if self._failing_since is not None:
            logger.warning("log %s: writing again after %.0f s (%d lines lost)",
                           self.path, now - self._failing_since, self.lines_lost)
            self._failing_since = None

    def close(self) -> None:
        """Write what waits (one last try), close, and say what was lost."""
        if self._closed:
            return
        self._closed = True
        if self._pending:
            self._flush(time.monotonic())
        self._close_fd()
        lost = self.lines_lost + len(self._pending)
        self.lines_lost = lost
        self._pending.clear()
        if lost == 0:
            return
        if self.lines_written == 0:
            self.failure = OutputError(f"log {self.path}: none of the {lost} predictions could be written "
                                       f"({self._reason}); check the disk or change log.path")
            logger.error("%s", self.failure.message)
            self.failure.logged = True
        else:
            logger.warning("log %s: %d of %d predictions could not be written (%s)",
                           self.path, lost, self.lines_total, self._reason or "memory bound reached")


def cost_per_day(mode: str, top_k: int, results_per_s: float | None, heartbeat_s: float = 60.0) -> str:
    """What a log in ``mode`` writes a day, estimated (the figures measured: docs/pi-health.md)."""
    line = LINE_BYTES_BASE + LINE_BYTES_PER_LABEL * top_k
    if mode == "every":
        rate = results_per_s or 30.0
        cheap = 86400 / heartbeat_s * line
        return (f"mode every writes about {_size(line * rate * 86400)} a day at {rate:g} results a second "
                f"({_size(line * rate * 86400 * 365)} a year on the SD card); mode heartbeat keeps the label "
                f"changes and a line every {heartbeat_s:g} s for about {_size(cheap)} a day plus "
                f"{_size(line)} per label change")
    if mode == "heartbeat":
        return (f"mode heartbeat writes about {_size(86400 / heartbeat_s * line)} a day (a line every "
                f"{heartbeat_s:g} s) plus {_size(line)} per label change")
    return f"mode changes writes about {_size(line)} per label change"


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
