"""Pictures read and written by path: the one place edgecam hands a file name to OpenCV's image codecs.

OpenCV's Python functions that take a path (``cv2.imread``, ``cv2.imwrite``,
``cv2.VideoCapture``, ``cv2.VideoWriter``) crash the whole process
(SIGSEGV, no message) when given a name that is not UTF-8 text: a file or
folder named with a byte such as ``\\xff``, which Linux allows and Python
carries as a lone surrogate. So:

* :func:`read_image` reads the file's bytes with Python (any name works)
  and decodes them with ``cv2.imdecode``; :func:`write_image` encodes with
  ``cv2.imencode`` and writes atomically. Every picture edgecam reads or
  writes by path goes through them.
* :func:`opencv_path` is for the calls that must take a path (video files,
  video writers): a name OpenCV cannot take is refused with one line
  (:class:`PictureError`, exit 2) instead of crashing.

A picture is checked before it is decoded: a file over :data:`MAX_FILE_BYTES`
is not read, and the size in its header (PNG, JPEG, WebP, GIF, BMP, TIFF) is
read first, so that a small file declaring a huge picture (a 1.1 MB PNG of
20000 x 20000 pixels decodes into 1.2 GB) is refused before any memory is
taken. A JPEG over :data:`MAX_PIXELS` is decoded at 1/2, 1/4 or 1/8 of its
size instead (libjpeg scales while decoding: a 400 MP JPEG then peaks at
~140 MB), which is still far more than a model's 224 x 224 input.
"""

from __future__ import annotations

import logging
import os
import struct
from pathlib import Path

import numpy as np

from edgecam.atomic import write_atomic
from edgecam.errors import EXIT_CONFIG, EdgecamError

logger = logging.getLogger(__name__)

#: Pictures larger than this (width x height) are refused, or for a JPEG decoded at a fraction of their size.
MAX_PIXELS = 50_000_000
#: Files larger than this are not read as pictures (an uncompressed 50 MP picture is 150-200 MB).
MAX_FILE_BYTES = 4 * MAX_PIXELS + (1 << 20)


class PictureError(EdgecamError):
    """A picture (or a video file's name) that cannot be used as given: exit 2, restarting will not help."""

    exit_code = EXIT_CONFIG


def shown(path: str | os.PathLike) -> str:
    """``path`` as text that can always be printed: a byte that is not UTF-8 shows as ``\\xff``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def opencv_path(path: str | os.PathLike, what: str = "file") -> str:
    """``path`` as a string OpenCV can take without crashing; a PictureError (one line) when there is none.

    ``what`` names the file in the message (``source``, ``record.path``).
    """
    text = os.fsdecode(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise PictureError(f"{what} {shown(path)}: its name is not UTF-8 text, which OpenCV cannot open; "
                           "rename it (e.g. convmv -f latin1 -t utf8 --notest NAME)") from None
    return text


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start of frame
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + length
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    end = "<" if data[:2] == b"II" else ">"
    try:
        (ifd,) = struct.unpack(end + "I", data[4:8])
        (n,) = struct.unpack(end + "H", data[ifd:ifd + 2])
        found = {}
        for k in range(min(n, 512)):
            tag, kind, _, value = struct.unpack(end + "HHI4s", data[ifd + 2 + 12 * k:ifd + 14 + 12 * k])
            if tag in (256, 257):
                found[tag] = struct.unpack(end + ("H" if kind == 3 else "I"), value[:2 if kind == 3 else 4])[0]
        return (found[256], found[257]) if len(found) == 2 else None
    except (struct.error, KeyError):
        return None


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) read from a picture's header without decoding it; None for a format not known here."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            return struct.unpack(">II", data[16:24])
        if data[:2] == b"\xff\xd8":
            return _jpeg_size(data)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            chunk = data[12:16]
            if chunk == b"VP8X":
                return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
            if chunk == b"VP8L":
                bits = int.from_bytes(data[21:25], "little")
                return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
            if chunk == b"VP8 ":
                w, h = struct.unpack("<HH", data[26:30])
                return w & 0x3FFF, h & 0x3FFF
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", data[6:10])
        if data[:2] == b"BM":
            w, h = struct.unpack("<ii", data[18:26])
            return abs(w), abs(h)
        if data[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff_size(data)
    except struct.error:
        return None
    return None


def decode(data: bytes, name: str = "picture") -> np.ndarray:
    """A BGR picture from the bytes of an image file; PictureError ``name: why`` when it is not one."""
    import cv2  # import cost: 100 ms of every `edgecam --help`, which imports this module

    if not data:
        raise PictureError(f"{name}: empty file (0 bytes), not a picture")
    flag = cv2.IMREAD_COLOR
    size = header_size(data)
    if size is not None and size[0] * size[1] > MAX_PIXELS:
        w, h = size
        reduced = next((f for div, f in ((2, cv2.IMREAD_REDUCED_COLOR_2), (4, cv2.IMREAD_REDUCED_COLOR_4),
                                          (8, cv2.IMREAD_REDUCED_COLOR_8))
                        if (w // div) * (h // div) <= MAX_PIXELS), None) if data[:2] == b"\xff\xd8" else None
        if reduced is None:
            raise PictureError(f"{name}: {w}x{h} pixels ({w * h / 1e6:.0f} MP) is over edgecam's limit of "
                               f"{MAX_PIXELS / 1e6:.0f} MP; scale it down first")
        logger.info("%s: %dx%d pixels, decoded at a fraction of its size", name, w, h)
        flag = reduced
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    except cv2.error as e:  # e.g. over OpenCV's own pixel limit, in a format whose header is not read above
        raise PictureError(f"{name}: OpenCV cannot decode it ({str(e).strip().splitlines()[-1][:120]})") from None
    if image is None:
        raise PictureError(f"{name}: not a picture OpenCV can decode (a damaged or truncated file, or another "
                           "format)")
    return image


def read_image(path: str | os.PathLike) -> np.ndarray:
    """The picture in file ``path`` as BGR; PictureError (``path: why``, one line) when it cannot be read.

    Any file name works (see the module docstring); the file is checked
    before it is decoded (size, then the size its header declares).
    """
    name = shown(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise PictureError(f"{name}: cannot read it ({e.strerror or e})") from None
    if len(data) > MAX_FILE_BYTES:
        raise PictureError(f"{name}: larger than {MAX_FILE_BYTES >> 20} MB, more than any picture edgecam "
                           "reads; scale it down first")
    return decode(data, name)


def write_image(path: str | os.PathLike, image: np.ndarray, params: tuple[int, ...] = ()) -> Path:
    """Write ``image`` to ``path`` (its suffix picks the format), atomically: a reader sees all of it or none.

    Raises OSError when it cannot be encoded or written; the caller says what to do about it.
    """
    import cv2  # import cost: 100 ms of every `edgecam --help`, which imports this module

    path = Path(path)
    try:
        ok, buf = cv2.imencode(path.suffix or ".png", image, list(params))
    except cv2.error:  # a suffix no codec writes
        ok = False
    if not ok:
        raise OSError(f"cannot encode a {image.shape} picture as {path.suffix or '.png'}")
    write_atomic(path, buf.tobytes())
    return path
