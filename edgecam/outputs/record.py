"""Writes the annotated video to a file."""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from pathlib import Path

import cv2

from edgecam.config.cameras import CAMERA_FIELD
from edgecam.errors import ConfigError, OutputError
from edgecam.native_stderr import captured
from edgecam.pictures import opencv_path
from edgecam.outputs.base import Sink, refusals

logger = logging.getLogger(__name__)


def codec_works(fourcc: str, suffix: str) -> bool:
    """Whether this OpenCV can write ``fourcc`` video into a ``suffix`` (``.mp4``) file.

    Opens a tiny writer in a temporary folder: what a codec name means, and
    which containers take it, depends on how OpenCV and FFmpeg were built, so
    only trying tells. ``record.fourcc`` itself is checked (4 characters) by the config.
    """
    with tempfile.TemporaryDirectory(prefix="edgecam-codec-") as d:
        with captured("record"):  # FFmpeg says "tag ... is not found" on stderr itself
            writer = cv2.VideoWriter(str(Path(d) / f"probe{suffix}"), cv2.VideoWriter_fourcc(*fourcc), 30.0, (64, 64))
        try:
            return bool(writer.isOpened())
        finally:
            writer.release()


def check_codec(cfg) -> None:
    """Raise a ConfigError (exit 2) when ``cfg.fourcc`` cannot be written to ``cfg.path`` here (a
    PictureError, exit 2 too, when OpenCV cannot take the path's name at all)."""
    opencv_path(cfg.path, "record.path")
    suffix = Path(cfg.path).suffix
    if not codec_works(cfg.fourcc, suffix):
        raise ConfigError(
            f"record.fourcc: got {cfg.fourcc!r}, expected a codec this OpenCV can write into a "
            f"{suffix or 'suffix-less'} file; MJPG with a .avi path works everywhere (mp4v with .mp4 usually)")


class RecordSink(Sink):
    """Records annotated frames with ``cv2.VideoWriter``, opened at the first frame's size."""

    name = "record"
    wants_frames = True

    def __init__(self, cfg, fps: float | None):
        self.cfg = cfg
        self.path = Path(cfg.path)
        self.fourcc = cfg.fourcc
        self.fps = fps or 30.0
        self.writer = None
        self.frames = 0

    @classmethod
    def from_config(cls, cfg, ctx) -> RecordSink:
        rec = cfg.record
        if ctx.camera is not None and rec.path:  # several cameras: each its own file
            rec = dataclasses.replace(rec, path=rec.path.replace(CAMERA_FIELD, ctx.camera))
        return cls(rec, ctx.source_fps)

    @classmethod
    def check(cls, cfg) -> list[str]:
        """A codec this OpenCV cannot write into the recording's file (:func:`check_codec`)."""
        return refusals(lambda: check_codec(cfg.record)) if cfg.record.path else []

    def source_opened(self, source) -> None:
        if source.fps:
            self.fps = source.fps  # a file's own rate, known only now: play back at true speed

    def start(self) -> None:
        # Before the source opens: a codec that cannot work is bad input (exit
        # 2), not a recording that silently stops at the first frame.
        check_codec(self.cfg)
        if not self.path.parent.exists() or not self.path.parent.is_dir():
            raise OutputError(f"record {self.path}: folder {self.path.parent} does not exist; create it or change record.path")
        existed = self.path.exists()
        try:
            with open(self.path, "ab"):
                pass
        except OSError as e:
            raise OutputError(f"record {self.path}: cannot write ({e.strerror}); change record.path") from None
        if not existed:
            self.path.unlink()  # the writer makes it at the first frame: no empty file if the run ends before

    def on_frame(self, frame, annotated, result) -> None:
        image = annotated if annotated is not None else frame.image
        if self.writer is None:
            h, w = image.shape[:2]
            with captured("record"):
                self.writer = cv2.VideoWriter(opencv_path(self.path), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, (w, h))
            if not self.writer.isOpened():
                raise OutputError(f"record {self.path}: OpenCV cannot encode {self.fourcc!r} at {w}x{h}; "
                                  "try record.fourcc: MJPG with a .avi path")
        self.writer.write(image)
        self.frames += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
            logger.info("record %s: %d frames written", self.path, self.frames)
