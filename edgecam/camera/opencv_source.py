"""Webcams, video files, URLs and GStreamer pipelines through ``cv2.VideoCapture``."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import cv2

from edgecam.errors import SourceError
from edgecam.camera.frame import Frame
from edgecam.native_stderr import captured
from edgecam.pictures import opencv_path
from edgecam.camera.base import FrameSource, Pacer

logger = logging.getLogger(__name__)

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
# OpenCV takes a camera index as a C int; webcams are numbered from 0.
_MAX_INDEX = 2**31 - 1


def is_live_uri(uri: str | int) -> bool:
    """Webcam indexes, device nodes, network streams and GStreamer pipelines are live."""
    if isinstance(uri, int) or str(uri).isdigit():
        return True
    s = str(uri)
    if s.startswith("/dev/video") or "!" in s:  # a device node, or a GStreamer pipeline
        return True
    return bool(_URL.match(s)) and not s.startswith("file://")


class OpenCVSource(FrameSource):
    """Frames from ``cv2.VideoCapture``.

    Args:
        uri: a webcam index (``0`` or ``"0"``), a video file, a URL or a
            GStreamer pipeline string.
        size / fps: what to ask a webcam for (files keep their own).
        realtime: pace a file at its native frame rate, as a camera would
            deliver it (frames are not skipped: the reader sleeps).
        loop: start a file again at its end.
        timeout_s: a live source that returns no frame for this long fails
            with SourceError (then the pipeline may reconnect).
        flip: (horizontal, vertical) mirroring of every frame (``source.hflip``,
            ``vflip``, ``rotation: 180``), by ``cv2.flip`` on the CPU.
    """

    def __init__(self, uri: str | int, size: tuple[int, int] | None = None, fps: float | None = None,
                 realtime: bool = False, loop: bool = False, timeout_s: float = 5.0,
                 flip: tuple[bool, bool] = (False, False)):
        self.uri = int(uri) if isinstance(uri, str) and uri.isdigit() else uri
        self.live = is_live_uri(self.uri)
        self.name = f"opencv:{self.uri}"
        self.realtime = realtime and not self.live
        self.loop = loop and not self.live
        self.timeout_s = timeout_s
        # cv2.flip's code: 1 mirrors left-right, 0 upside down, -1 both (rotation 180).
        self._flip_code = {(True, False): 1, (False, True): 0, (True, True): -1}.get(tuple(bool(f) for f in flip))
        if isinstance(self.uri, int) and not 0 <= self.uri <= _MAX_INDEX:
            raise SourceError(f"source {uri}: no such webcam index; webcams are numbered 0, 1, 2... "
                              "(try --source 0, or a video file)")
        if not self.live and not Path(str(uri).removeprefix("file://")).exists():
            raise SourceError(f"source {uri}: no such file; check the path (or use a webcam index like 0)")
        # Files: one decoder thread. The capture thread already decodes in
        # parallel with inference, and FFmpeg's frame threading on top only
        # adds CPU per frame (thread hand-offs) and a frame buffer per thread.
        params = [] if self.live else [cv2.CAP_PROP_N_THREADS, 1]
        if self.live:
            # Don't let a dead network stream block the capture thread forever.
            ms = int(timeout_s * 1000)
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
        if isinstance(self.uri, str):
            opencv_path(self.uri, "source")  # a name OpenCV would crash on: one line instead
        api = cv2.CAP_GSTREAMER if isinstance(self.uri, str) and "!" in self.uri else cv2.CAP_ANY
        try:
            with captured("opencv"):
                self.cap = cv2.VideoCapture(self.uri, api, params)
        except cv2.error as e:  # OpenCV refused the arguments themselves
            logger.debug("cv2.VideoCapture(%r): %s", self.uri, e)
            raise SourceError(f"source {uri}: OpenCV refuses it as a source; pass a webcam index (0), "
                              "a video file, a URL or a GStreamer pipeline") from None
        if not self.cap.isOpened():
            self.cap.release()
            camera = isinstance(self.uri, int) or str(self.uri).startswith("/dev/video")
            what = "camera" if camera else "stream" if self.live else "video file"
            hint = ("is it plugged in and not used by another program? try --source with another index, or a file"
                    if isinstance(self.uri, int) else "check the path or URL and that OpenCV has the codec")
            raise SourceError(f"source {uri}: cannot open this {what}; {hint}")
        if self.live and isinstance(self.uri, int):
            if size:
                self.cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
                self.cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
            if fps:
                self.cap.set(cv2.CAP_PROP_FPS, fps)
            # A webcam's internal queue adds latency; keep it to one frame where supported.
            self.cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        native = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(native) if native and native > 0 and native < 1000 else fps
        self._index = 0
        self._pacer = Pacer(self.fps)
        self._closed = False
        self.last_decode_s: float | None = None
        logger.info("opened %s (%s, %.1f fps)", self.name, "live" if self.live else "file", self.fps or 0)

    def read(self) -> Frame | None:
        if self._closed:
            return None
        t0 = time.perf_counter()
        with captured("opencv"):  # FFmpeg's decoder warnings, webcam driver complaints
            ok, image = self.cap.read()
            if not ok and self.loop and self._index > 0:
                self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, image = self.cap.read()
        if not ok:
            if self.live:
                raise SourceError(f"source {self.uri}: the camera stopped delivering frames")
            return None
        if self._flip_code is not None:
            image = cv2.flip(image, self._flip_code)
        self.last_decode_s = time.perf_counter() - t0  # without the pacing sleep below
        frame = self._pacer.frame(image, self._index, self.realtime)
        self._index += 1
        return frame

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.cap.release()
