"""Media files of events: where they go, and writing them whole or not at all.

Layout under the events folder: ``media/<YYYY-MM-DD>/<id>-<rule>-<kind>.<ext>``
(the day of the event's start, local time), e.g.
``media/2026-11-28/12-bins_out-snapshot.jpg``; in a run of several cameras
the camera's name comes before the rule's: ``12-door-bins_out-snapshot.jpg``. A file is written under a
hidden ``.part`` name, flushed to the disk and renamed: a reader (and the
repair after a power cut) sees the whole file or none.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np

from edgecam.events.history import MEDIA

THUMB_WIDTH = 320


def media_path(folder: Path, event, kind: str, ext: str) -> Path:
    """Where ``event``'s ``kind`` file (snapshot, clip...) goes; its day folder is created."""
    day = time.strftime("%Y-%m-%d", time.localtime(event.start))
    camera = "" if event.camera is None else f"{event.camera}-"
    name = f"{event.id}-{camera}{event.rule}-{kind}.{ext}"
    path = Path(folder) / MEDIA / day / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def part_path(path: Path) -> Path:
    """The hidden name a file is written under before it is whole."""
    return path.with_name(f".{path.name}.part")


def write_whole(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through its ``.part`` name, synced; raises OSError (the part removed)."""
    tmp = part_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def finish_part(tmp: Path, path: Path) -> Path:
    """A file written at ``tmp`` (a clip) is whole: sync it and give it its name."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path


def jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise OSError(f"cannot encode a {image.shape} picture as JPEG")
    return buf.tobytes()


def thumbnail(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    if w <= THUMB_WIDTH:
        return image
    return cv2.resize(image, (THUMB_WIDTH, max(1, round(h * THUMB_WIDTH / w))), interpolation=cv2.INTER_AREA)


def write_snapshot(folder: Path, event, clean: np.ndarray, annotated: np.ndarray | None,
                   quality: int) -> dict[str, Path]:
    """The event's snapshot files (annotated, clean, thumbnail); column -> path, all written whole."""
    files: dict[str, Path] = {}
    try:
        files["snapshot_clean"] = write_whole(media_path(folder, event, "clean", "jpg"), jpeg(clean, quality))
        if annotated is not None:
            files["snapshot"] = write_whole(media_path(folder, event, "snapshot", "jpg"), jpeg(annotated, quality))
        # The thumbnail from the clean frame: the overlay's text, shrunk to 160 px, is unreadable noise.
        files["thumb"] = write_whole(media_path(folder, event, "thumb", "jpg"), jpeg(thumbnail(clean), 75))
    except BaseException:
        for path in files.values():  # all or none: a file no row will name is not left behind
            path.unlink(missing_ok=True)
        raise
    return files
