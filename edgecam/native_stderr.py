"""What native libraries print (OpenCV, FFmpeg, libcamera), kept off the user's terminal.

Native code writes to file descriptor 2 itself, past Python's logging: a video
without its index prints ``[mov,mp4,...] moov atom not found`` next to
edgecam's own one-line error. While edgecam opens or reads a source (or opens a
video writer), :func:`captured` points fd 2 at a temporary file; what the
libraries wrote there is then logged at DEBUG on the ``edgecam.native`` logger.
``edgecam --debug`` does not capture at all, so the libraries' own words reach
the terminal as they are.

fd 2 belongs to the whole process, so a redirection also catches what other
threads write to it. :func:`install` therefore first gives Python a duplicate
of the real stderr (``sys.stderr``, and so logging and the command line's
error lines, write there): only native writes can land in a capture. A native
line that another thread prints during a capture window goes to the DEBUG log
instead of the terminal, which is where such a line belongs anyway. Windows
may overlap (the capture thread reads while the output loop opens a writer):
the first one in redirects, the last one out restores, and no thread ever
waits for another's window to end.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading

logger = logging.getLogger("edgecam.native")

_lock = threading.Lock()
_real_stderr: int | None = None  # a duplicate of the original fd 2, to restore it
_capture = None  # the temporary file fd 2 points at while _depth > 0
_depth = 0


def install() -> bool:
    """Let :func:`captured` redirect fd 2; Python's own stderr keeps the real one.

    Returns False (and changes nothing) when there is no usable fd 2.
    """
    global _real_stderr, _capture
    if _real_stderr is not None:
        return True
    try:
        real = os.dup(2)
        python_fd = os.dup(2)
    except OSError:
        return False
    old = sys.stderr
    try:
        old.flush()
    except (OSError, ValueError, AttributeError):
        pass
    sys.stderr = open(python_fd, "w", buffering=1, encoding=getattr(old, "encoding", None) or "utf-8",
                      errors="backslashreplace", closefd=True)
    _real_stderr = real
    _capture = tempfile.TemporaryFile()
    return True


def installed() -> bool:
    return _real_stderr is not None


def _drain() -> list[str]:
    """The lines written to the capture file since the last drain (lock held, fd 2 restored)."""
    fd = _capture.fileno()
    if os.fstat(fd).st_size == 0:
        return []
    os.lseek(fd, 0, os.SEEK_SET)
    data = b""
    while chunk := os.read(fd, 65536):
        data += chunk
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    return [line for line in data.decode("utf-8", "replace").splitlines() if line.strip()]


@contextlib.contextmanager
def captured(what: str = ""):
    """Native writes to fd 2 inside the block go to the DEBUG log, not the terminal.

    A no-op until :func:`install` (library use, tests, ``--debug``).
    """
    global _depth
    if _real_stderr is None:
        yield
        return
    with _lock:
        if _depth == 0:
            os.dup2(_capture.fileno(), 2)
        _depth += 1
    try:
        yield
    finally:
        lines: list[str] = []
        with _lock:
            _depth -= 1
            if _depth == 0:
                os.dup2(_real_stderr, 2)
                lines = _drain()
        for line in lines:
            logger.debug("%s%s", f"{what}: " if what else "", line)
