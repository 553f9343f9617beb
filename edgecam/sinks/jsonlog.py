"""Predictions as JSON Lines: one object per result, or per label change.

Each line is written with one ``write()`` on a line-buffered file, so a crash
or SIGKILL loses at most the line being written and every line on disk parses.
The file rotates by size (``path.1`` ... ``path.N``). A write that fails (disk
full, file removed) is reported once and retried; the pipeline goes on.
"""

from __future__ import annotations

import json
import logging
import os
import time
from datetime import datetime, timezone
from pathlib import Path

from edgecam.errors import OutputError
from edgecam.sinks.base import Sink

logger = logging.getLogger(__name__)

RETRY_S = 5.0


def iso(wall_time: float) -> str:
    """ISO 8601 with milliseconds and the UTC offset."""
    return datetime.fromtimestamp(wall_time, timezone.utc).isoformat(timespec="milliseconds")


class JsonLogSink(Sink):
    """Writes results as JSON Lines to ``cfg.path`` (a :class:`edgecam.config.LogConfig`)."""

    name = "log"

    def __init__(self, cfg, top_k: int = 3, threshold: float = 0.0):
        self.path = Path(cfg.path)
        self.mode = cfg.mode
        self.max_bytes = cfg.max_bytes
        self.backups = cfg.backups
        self.top_k = top_k
        self.threshold = threshold
        self._file = None
        self._failing_since: float | None = None
        self._next_try = 0.0
        self.lines_written = 0
        self.lines_lost = 0

    def start(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._open()
        except OSError as e:
            raise OutputError(
                f"log {self.path}: cannot write ({e.strerror}); check the folder exists and is writable "
                "by this user, or change log.path"
            ) from None

    def _open(self) -> None:
        self._file = open(self.path, "a", encoding="utf-8", buffering=1)

    def _rotate(self) -> None:
        self._file.close()
        self._file = None
        for i in range(self.backups - 1, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{i}")
            if src.exists():
                os.replace(src, self.path.with_name(f"{self.path.name}.{i + 1}"))
        if self.backups > 0:
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)
        self._open()

    def record(self, result, event: dict | None = None) -> dict:
        """The JSON object logged for ``result``."""
        obj = {"timestamp": iso(result.wall_time)}
        obj.update(result.to_dict(self.top_k, self.threshold))
        if event is not None:
            obj["event"] = {"label": event["label"], "previous": event["previous"]}
        return obj

    def on_result(self, result) -> None:
        # The pipeline puts the label-change event a result caused in its extra.
        event = result.extra.get("event")
        if self.mode == "changes" and event is None:
            return
        self._write(json.dumps(self.record(result, event), ensure_ascii=False) + "\n")

    def _write(self, line: str) -> None:
        now = time.monotonic()
        if self._failing_since is not None and now < self._next_try:
            self.lines_lost += 1
            return
        try:
            if self._file is None:
                self._open()
            if self.max_bytes and self._file.tell() + len(line) > self.max_bytes and self._file.tell() > 0:
                self._rotate()
            self._file.write(line)
            self.lines_written += 1
            if self._failing_since is not None:
                logger.warning("log %s: writing again after %.0f s (%d lines lost)",
                               self.path, now - self._failing_since, self.lines_lost)
                self._failing_since = None
        except OSError as e:
            self.lines_lost += 1
            if self._failing_since is None:
                logger.error("log %s: cannot write (%s); predictions are not logged until it can, "
                             "the pipeline goes on", self.path, e.strerror or e)
                self._failing_since = now
            self._next_try = now + RETRY_S
            try:
                if self._file is not None:
                    self._file.close()
            except OSError:
                pass
            self._file = None

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError as e:
                logger.error("log %s: cannot flush (%s)", self.path, e.strerror)
            self._file = None
