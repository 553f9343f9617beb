"""A Motion-JPEG AVI written from JPEG bytes as they come: clips without decoding or encoding again.

The pre-roll ring already holds every frame as a JPEG; OpenCV's own MJPG
writer would decode each one and encode it again (measured: 4.5 ms a frame
here, several times that on a Pi). This writes the JPEGs as the AVI's video
chunks: the layout of the RIFF AVI 1.0 file (``hdrl`` with ``avih``, one
``strl`` with ``strh`` and a BITMAPINFOHEADER ``strf``, the ``movi`` list,
an ``idx1`` index), sizes and frame rate filled in at :meth:`close`, when
they are known. FFmpeg (so OpenCV) and VLC read it; browsers do not play
AVI, which is why the web page streams a clip's frames (:func:`read_frames`).
"""

from __future__ import annotations

import struct
from typing import BinaryIO

_KEYFRAME = 0x10
_HAS_INDEX = 0x10


class MjpegAviWriter:
    """Append JPEG frames (:meth:`write`) to an open binary file; :meth:`close` writes the headers and index."""

    def __init__(self, f: BinaryIO, width: int, height: int):
        self.f, self.width, self.height = f, width, height
        self.frames = 0
        self.biggest = 0
        self._index: list[tuple[int, int]] = []
        f.write(self._header(1.0))
        self._movi = f.tell() - 4  # where 'movi' is: idx1 offsets count from it

    def _header(self, fps: float) -> bytes:
        w, h, n = self.width, self.height, self.frames
        scale, rate = 1000, max(1, round(fps * 1000))
        avih = struct.pack("<14I", round(1e6 / fps), 0, 0, _HAS_INDEX, n, 0, 1, self.biggest, w, h, 0, 0, 0, 0)
        strh = b"vidsMJPG" + struct.pack("<IHHIIIIIIIIhhhh", 0, 0, 0, 0, scale, rate, 0, n, self.biggest,
                                         0xFFFFFFFF, 0, 0, 0, w, h)
        strf = struct.pack("<IiiHH4sIiiII", 40, w, h, 1, 24, b"MJPG", w * h * 3, 0, 0, 0, 0)
        strl = b"strl" + _chunk(b"strh", strh) + _chunk(b"strf", strf)
        hdrl = b"hdrl" + _chunk(b"avih", avih) + _chunk(b"LIST", strl)
        # RIFF and movi sizes are placeholders here; close() writes the real ones.
        return b"RIFF" + b"\0\0\0\0" + b"AVI " + _chunk(b"LIST", hdrl) + b"LIST" + b"\0\0\0\0" + b"movi"

    def write(self, jpeg: bytes) -> None:
        """One frame (a whole JPEG file's bytes)."""
        offset = self.f.tell() - self._movi
        self.f.write(_chunk(b"00dc", jpeg))
        self._index.append((offset, len(jpeg)))
        self.frames += 1
        self.biggest = max(self.biggest, len(jpeg))

    def close(self, fps: float) -> None:
        """Write the index and the headers (``fps``: the clip's frame rate). The file stays open (the caller's)."""
        end_movi = self.f.tell()
        idx = b"".join(struct.pack("<4sIII", b"00dc", _KEYFRAME, off, size) for off, size in self._index)
        self.f.write(_chunk(b"idx1", idx))
        end = self.f.tell()
        self.f.seek(0)
        self.f.write(self._header(fps))
        self.f.seek(4)
        self.f.write(struct.pack("<I", end - 8))
        self.f.seek(self._movi - 4)
        self.f.write(struct.pack("<I", end_movi - self._movi))
        self.f.seek(end)


def _chunk(fourcc: bytes, data: bytes) -> bytes:
    return fourcc + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")


class BadClip(ValueError):
    """A file :func:`read_frames` cannot play: not a Motion-JPEG AVI, or its headers are damaged (one line)."""


#: How much of the file's start the headers must fit in (ours take 224 bytes).
_HEADER_BYTES = 4096


def read_frames(path) -> tuple[float, list[tuple[int, int]]]:
    """(frame rate, [(offset, size) of each JPEG]) of a Motion-JPEG AVI (for streaming it).

    The frames are the ``00dc`` chunks of the ``movi`` list, walked in the file
    itself rather than taken from the ``idx1`` index: a clip cut short (a copy
    that stopped, damage) still gives every frame that is whole. Every size
    read from the file is checked against the file's own size, so damage gives
    fewer frames or :class:`BadClip` (no header, no usable frame rate), never
    a read past the end or a division by zero.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(_HEADER_BYTES)
            size = f.seek(0, 2)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"AVI ":
                raise BadClip(f"{path}: not an AVI file (no RIFF AVI header)")
            at = head.find(b"vidsMJPG")
            if at < 0 or at + 28 > len(head):
                raise BadClip(f"{path}: not a Motion-JPEG AVI (no MJPG video stream header)")
            scale, rate = struct.unpack_from("<II", head, at + 20)
            if not scale or not rate or not 0.01 <= rate / scale <= 1000:
                raise BadClip(f"{path}: damaged header (frame rate {rate}/{scale})")
            return rate / scale, _movi_frames(f, size)
    except OSError as e:
        raise BadClip(f"{path}: cannot read it: {e.strerror or e}") from None


def _movi_frames(f: BinaryIO, size: int) -> list[tuple[int, int]]:
    """The (offset, size) of every whole ``00dc`` chunk of the first ``movi`` list."""
    frames: list[tuple[int, int]] = []
    pos, end = 12, size  # after "RIFF<size>AVI "
    in_movi = False
    while pos + 8 <= end:
        f.seek(pos)
        head = f.read(12)
        if len(head) < 8:
            break
        fourcc, length = struct.unpack_from("<4sI", head)
        if fourcc == b"LIST" and len(head) == 12:
            if head[8:12] == b"movi":  # go inside: its chunks are the frames
                end = min(size, pos + 8 + length)
                pos += 12
                in_movi = True
                continue
        elif in_movi and fourcc[2:] in (b"dc", b"db"):
            if pos + 8 + length > end:
                break  # cut short: this frame is not whole
            if length:
                frames.append((pos + 8, length))
        elif in_movi and fourcc == b"idx1":
            break
        pos += 8 + length + (length % 2)
    return frames
