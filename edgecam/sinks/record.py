"""Writes the annotated video to a file."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2

from edgecam.errors import OutputError
from edgecam.sinks.base import Sink

logger = logging.getLogger(__name__)


class RecordSink(Sink):
    """Records annotated frames with ``cv2.VideoWriter``, opened at the first frame's size."""

    name = "record"
    wants_frames = True

    def __init__(self, cfg, fps: float | None):
        self.path = Path(cfg.path)
        self.fourcc = cfg.fourcc
        self.fps = fps or 30.0
        self.writer = None
        self.frames = 0

    def start(self) -> None:
        if not self.path.parent.exists() or not self.path.parent.is_dir():
            raise OutputError(f"record {self.path}: folder {self.path.parent} does not exist; create it or change record.path")
        try:
            with open(self.path, "ab"):
                pass
        except OSError as e:
            raise OutputError(f"record {self.path}: cannot write ({e.strerror}); change record.path") from None

    def on_frame(self, frame, annotated, result) -> None:
        image = annotated if annotated is not None else frame.image
        if self.writer is None:
            h, w = image.shape[:2]
            self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, (w, h))
            if not self.writer.isOpened():
                raise OutputError(f"record {self.path}: OpenCV cannot encode {self.fourcc!r} here; try record.fourcc: MJPG with a .avi path")
        self.writer.write(image)
        self.frames += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
            logger.info("record %s: %d frames written", self.path, self.frames)
