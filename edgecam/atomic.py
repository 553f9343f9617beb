"""Writing a file so that a reader sees the old file or the whole new one, never a part.

Used for everything edgecam writes in place: downloaded models and their
checksum records (:mod:`edgecam.registry`), the ``threads: auto`` cache
(:mod:`edgecam.model.calibration`) and the service's files (:mod:`edgecam.service.install`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: int = 0o644, *, owner: tuple[int, int] | None = None,
                 suffix: str = ".part") -> Iterator[BinaryIO]:
    """Yield a binary file whose bytes replace ``path`` when the block ends without an exception.

    The bytes go to a hidden temporary file beside ``path`` (the same file
    system, so that ``os.replace`` is atomic), created readable by its owner
    only and given ``mode`` (and ``owner``, a ``(uid, gid)``) just before the
    rename: never briefly readable by others. It is flushed to disk first, so
    that after a power cut ``path`` is the old file or the whole new one. On
    an exception the temporary file is removed and ``path`` is left as it
    was. Raises OSError from any step; the caller says what to do about it.
    """
    import tempfile  # here: it imports shutil, which loads bz2 and lzma (memory a run that writes nothing keeps)

    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)  # opened again by name: the file object's .name is then the path
    tmp = Path(name)
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # mkstemp made it 0600
        if owner is not None:
            os.chown(tmp, *owner)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: str | os.PathLike, data: bytes, mode: int = 0o644, *,
                 owner: tuple[int, int] | None = None) -> None:
    """Replace ``path`` with ``data`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path, mode, owner=owner) as f:
        f.write(data)
