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


def read_frames(path) -> tuple[float, list[tuple[int, int]]]:
    """(frame rate, [(offset, size) of each JPEG]) of an AVI this module wrote (for streaming it)."""
    with open(path, "rb") as f:
        data = f.read(4096)
        rate_at = data.find(b"vidsMJPG")
        scale, rate = struct.unpack_from("<II", data, rate_at + 8 + 12)
        f.seek(0, 2)
        size = f.tell()
        f.seek(12)
        frames, movi = [], None
        while f.tell() < size - 8:
            fourcc, length = struct.unpack("<4sI", f.read(8))
            if fourcc == b"LIST":
                kind = f.read(4)
                if kind == b"movi":
                    movi = f.tell() - 4
                    continue
                f.seek(length - 4 + (length % 2), 1)
            elif fourcc == b"idx1" and movi is not None:
                for i in range(length // 16):
                    _, _, off, n = struct.unpack("<4sIII", f.read(16))
                    frames.append((movi + off + 8, n))
                break
            else:
                f.seek(length + (length % 2), 1)
    return rate / scale, frames
