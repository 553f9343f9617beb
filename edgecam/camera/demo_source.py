"""``--source demo``: a short slideshow of real photos, with a slow pan and zoom, paced like a camera.

For a first run on a machine with no camera (and no video at hand): the
registry's photos (``photos:`` in ``models/models.yaml``: the Coral test
photos of a cat, Grace Hopper and a chickadee), fetched and checked like a
model, each shown for a few seconds while the view slowly zooms and pans
across it (the "Ken Burns" effect), so the classifier has a moving picture to
work on and its scores move with it.

It is a finite source: it ends after the last photo (``source.loop`` plays it
again), and it is never reopened. Frames come at ``source.fps`` in real time,
as a camera delivers them, so the pipeline treats it like one (drop policy
``latest``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from edgecam import registry
from edgecam.errors import SourceError
from edgecam.camera.frame import Frame
from edgecam.camera.base import FrameSource, Pacer
from edgecam.pictures import PictureError, read_image

logger = logging.getLogger(__name__)

SECONDS_PER_PHOTO = 4.0
ZOOM = 0.25  # the view zooms by this much over one photo (in on one, out on the next)
PAN = 0.6  # and pans across this share of the room the photo leaves on each side


class DemoSource(FrameSource):
    """A slideshow of ``photos`` (paths, or BGR arrays) as ``size`` frames at ``fps``.

    Each photo fills the frame (cropped, never letterboxed) and is shown for
    ``seconds`` while the view zooms in or out by :data:`ZOOM` and pans from
    one side to the other; the next one follows with a cut. ``realtime``
    paces frames at ``fps`` (tests turn it off); ``loop`` starts again after
    the last photo.
    """

    live = False  # finite: it ends, and a reconnect would only play it again

    def __init__(self, photos: Sequence[Path | np.ndarray], size: tuple[int, int] = (640, 480), fps: float = 30.0,
                 seconds: float = SECONDS_PER_PHOTO, loop: bool = False, realtime: bool = True):
        if not photos:
            raise SourceError("source demo: no photos to show")
        self.slides = [_Slide(self._read(p), size) for p in photos]
        self.size = size
        self.fps = fps
        self.realtime = realtime
        self.loop = loop
        self.frames_per_photo = max(1, round(seconds * fps))
        self.frame_count = self.frames_per_photo * len(self.slides)  # one pass
        self.name = "demo"
        self._index = 0
        self._pacer = Pacer(fps)
        self._closed = False
        self.last_decode_s: float | None = None

    @staticmethod
    def _read(photo: Path | np.ndarray) -> np.ndarray:
        if isinstance(photo, np.ndarray):
            return photo
        try:
            return read_image(photo)
        except PictureError as e:
            # The registry checked its SHA-256 when it was fetched: it was damaged since.
            raise SourceError(f"source demo: {e.message}; delete it and run again (it is fetched again)") from None

    def view(self, index: int) -> np.ndarray:
        """Frame ``index`` of the slideshow (the same picture for the same index)."""
        number, step = divmod(index, self.frames_per_photo)
        slide = self.slides[number % len(self.slides)]
        t = step / max(1, self.frames_per_photo - 1)
        ease = (1 - math.cos(math.pi * t)) / 2  # starts and ends slowly, as a camera operator would
        forward = number % 2 == 0  # alternate: zoom in panning right, then zoom out panning left
        zoom = 1 + ZOOM * (ease if forward else 1 - ease)
        pan = PAN * (2 * ease - 1) * (1 if forward else -1)  # -PAN .. +PAN of the room to each side
        return slide.draw(zoom, pan)

    def read(self) -> Frame | None:
        if self._closed:
            return None
        if self._index >= self.frame_count and not self.loop:
            return None
        t0 = time.perf_counter()
        image = self.view(self._index)
        self.last_decode_s = time.perf_counter() - t0  # drawing the frame; the pacing sleep apart
        frame = self._pacer.frame(image, self._index, self.realtime)
        self._index += 1
        return frame

    def close(self) -> None:
        self._closed = True


class _Slide:
    """One photo, ready to be drawn at any zoom and pan into ``size`` frames."""

    def __init__(self, photo: np.ndarray, size: tuple[int, int]):
        self.photo = photo
        self.size = width, height = size
        h, w = photo.shape[:2]
        # The frame's centre square shows the photo's centre square at zoom 1: the part
        # the classifier looks at (its crop is central) is the part a still photo shows it.
        # A photo narrower than the frame leaves bars at the sides: filled with a dark,
        # blurred copy of itself, drawn once.
        self.base = min(width, height) / min(w, h)
        cover = max(width / w, height / h)
        back = cv2.resize(photo, (max(1, round(w * cover)), max(1, round(h * cover))), interpolation=cv2.INTER_AREA)
        y0, x0 = (back.shape[0] - height) // 2, (back.shape[1] - width) // 2
        back = back[y0:y0 + height, x0:x0 + width]
        self.background = (cv2.GaussianBlur(back, (0, 0), 12) * 0.45).astype(np.uint8)

    def draw(self, zoom: float, pan: float) -> np.ndarray:
        """The photo scaled by ``zoom`` (1 = :attr:`base`), its view moved by ``pan`` (-1..1) of the room left.

        One affine warp (scale and shift in one resampling step, about a
        millisecond for 640x480). The pan runs along each axis with room to move.
        """
        width, height = self.size
        h, w = self.photo.shape[:2]
        scale = self.base * zoom
        view_w, view_h = width / scale, height / scale  # the part of the photo in view
        cx = w / 2 + pan * max(0.0, (w - view_w) / 2)
        cy = h / 2 + pan * max(0.0, (h - view_h) / 2)
        m = np.float32([[scale, 0, width / 2 - scale * cx], [0, scale, height / 2 - scale * cy]])
        out = self.background.copy()
        # One bilinear step: the registry's photos (about 512 px) are enlarged for 640x480; a much
        # smaller source.width would alias a little, which a demo can live with.
        cv2.warpAffine(self.photo, m, (width, height), dst=out, flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_TRANSPARENT)
        return out


def open_demo(cfg, model_dir: str | Path | None = None) -> DemoSource:
    """The demo on the registry's photos, fetched first if needed (mirror folders honoured).

    ``cfg`` is the :class:`edgecam.config.schema.SourceConfig` (size, fps, loop);
    ``model_dir`` the model folder (``model.dir``), whose ``demo`` folder
    keeps the photos. Raises RegistryError when they cannot be fetched.
    """
    paths = registry.fetch_photos(dest_dir=model_dir)
    source = DemoSource(paths, size=(cfg.width, cfg.height), fps=cfg.fps, loop=cfg.loop)
    logger.info("demo: %d photos (%s), %.0f s each, %dx%d at %.0f fps%s", len(paths),
                ", ".join(p.stem for p in paths), source.frames_per_photo / cfg.fps, cfg.width, cfg.height,
                cfg.fps, ", looping" if cfg.loop else "")
    return source
