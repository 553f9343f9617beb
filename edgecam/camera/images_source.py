"""A folder of photos, in name order: for demos and tests."""

from __future__ import annotations

import logging
from pathlib import Path

from edgecam.errors import SourceError
from edgecam.camera.frame import Frame
from edgecam.pictures import PictureError, read_image, shown
from edgecam.camera.base import FrameSource, Pacer

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def list_images(folder: Path) -> list[Path]:
    """The pictures in ``folder`` (not recursive), sorted by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


class ImageFolderSource(FrameSource):
    """Each picture of a folder as one frame; ``fps`` paces them when ``realtime``."""

    live = False

    def __init__(self, folder: str | Path, fps: float = 1.0, realtime: bool = False, loop: bool = False):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise SourceError(f"source {shown(folder)}: not a folder of images")
        self.paths = list_images(self.folder)
        if not self.paths:
            raise SourceError(f"source {shown(folder)}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder")
        self.name = f"images:{shown(self.folder)}"
        self.fps = fps
        self.realtime = realtime
        self.loop = loop
        self._i = 0  # position in this pass over the folder
        self._base = 0  # frames of earlier passes (loop), so indexes keep increasing
        self._readable = 0  # readable pictures seen in this pass
        self._closed = False
        self._pacer = Pacer(fps)
        self._first = self._first_readable()  # (position, picture), read again by nobody

    def _first_readable(self) -> tuple[int, object]:
        """Read up to the first picture that decodes: a folder of none is an error now, not an empty run."""
        first = None
        for i, path in enumerate(self.paths):
            try:
                image = read_image(path)
            except PictureError as e:
                first = first or e.message
                continue
            if i:
                logger.warning("skipping %d unreadable file(s) at the start of %s (first: %s)",
                               i, shown(self.folder), first)
            self._i = i
            return i, image
        raise SourceError(
            f"source {shown(self.folder)}: none of its {len(self.paths)} image files can be read as a picture "
            f"(first: {first}); check they are not empty or truncated")

    def read(self) -> Frame | None:
        while not self._closed:
            if self._i >= len(self.paths):
                if not self.loop or self._readable == 0:
                    return None  # the end (or, looping, a folder with nothing readable)
                self._i, self._readable = 0, 0
                self._base += len(self.paths)
            path = self.paths[self._i]
            if self._first is not None and self._first[0] == self._i:
                image, self._first = self._first[1], None
            else:
                try:
                    image = read_image(path)
                except PictureError as e:
                    image = None
                    logger.warning("skipping %s", e.message)
            index = self._base + self._i
            self._i += 1
            if image is None:
                continue
            self._readable += 1
            return self._pacer.frame(image, index, self.realtime)
        return None

    def close(self) -> None:
        self._closed = True
