"""Whether picamera2 imports and which camera modules it lists (``source: auto``, the error messages).

Split from ``picamera2_source.py``, which opens the camera. picamera2 is imported
lazily: it only exists on a Pi (from apt), and the rest of edgecam must import
without it. A picamera2 that is installed but will not import (apt's build
against another NumPy) is told apart from one that is missing.
"""

from __future__ import annotations

import logging

import numpy as np

from edgecam.errors import SourceError

logger = logging.getLogger(__name__)

INSTALL_HINT = (
    "install it with 'sudo apt install python3-picamera2' (a venv needs --system-site-packages) "
    "or set source.type: opencv"
)
UPGRADE_HINT = "update it with 'sudo apt update && sudo apt full-upgrade'"
MIN_VERSION = "0.3.20"
# What an extension built against NumPy 1 says when NumPy 2 is loaded (picamera2
# imports simplejpeg, which apt builds against apt's NumPy).
_NUMPY_ABI_SIGNS = ("numpy.dtype size changed", "_ARRAY_API", "compiled using NumPy 1.x",
                    "numpy.core.multiarray failed to import")
def import_picamera2():
    """The picamera2 module; SourceError saying why and what to do when it won't import."""
    try:
        import picamera2  # optional: only on a Pi (apt's python3-picamera2)
    except ModuleNotFoundError as exc:
        if exc.name not in ("picamera2", "libcamera"):
            raise SourceError(f"picamera2 cannot be imported ({exc}); reinstall it with "
                              "'sudo apt install --reinstall python3-picamera2'") from exc
        raise SourceError(f"picamera2 is not installed; {INSTALL_HINT}") from exc
    except Exception as exc:  # ImportError, ValueError: an extension failing to load
        text = f"{type(exc).__name__}: {exc}"
        if any(sign in text for sign in _NUMPY_ABI_SIGNS):
            # importlib.metadata (email, zipfile: about 100 ms and 1 MB) only for this message, not every run
            from edgecam.system_packages import system_version

            system = system_version("numpy")
            raise SourceError(
                f"picamera2 cannot be imported ({text}): it is built for the system's NumPy "
                f"{system or '(apt python3-numpy)'}, and this environment loads NumPy {np.__version__} "
                "instead; keep the system's: rm -rf .venv && make install (it pins numpy to it), or "
                f"pip install 'numpy=={system or 'VERSION'}' in the venv") from exc
        raise SourceError(f"picamera2 cannot be imported ({text}); check 'python3 -c \"import picamera2\"' "
                          "outside the venv, or reinstall python3-picamera2") from exc
    return picamera2


def picamera2_version() -> str:
    from importlib import metadata  # import cost: ~100 ms (email, zipfile, socket), for the "too old" message only

    try:
        return metadata.version("picamera2")
    except metadata.PackageNotFoundError:
        return "unknown"


def camera_modules(picamera2) -> list[int]:
    """Positions in ``global_camera_info()`` of the camera modules (not USB webcams)."""
    cameras = picamera2.Picamera2.global_camera_info()
    return [i for i, cam in enumerate(cameras) if "/usb" not in str(cam.get("Id", ""))]


def probe(camera_num: int = 0) -> str | None:
    """None when camera module ``camera_num`` can be tried, else why not (for ``source: auto``).

    Does not open the camera, so a camera busy in another process still counts
    as present (opening it will then say so). A picamera2 that is installed but
    cannot be imported is logged as a warning: that is a broken install, not a
    machine without a Pi camera.
    """
    try:
        picamera2 = import_picamera2()
    except SourceError as exc:
        if "is not installed" in exc.message:
            return "not installed"
        logger.warning("%s", exc.message)
        return exc.message
    try:
        modules = camera_modules(picamera2)
    except Exception as exc:
        logger.warning("picamera2 cannot list cameras: %s", exc)
        return f"libcamera cannot list cameras ({exc})"
    if camera_num < len(modules):
        return None
    if len(picamera2.Picamera2.global_camera_info()) > len(modules):
        return "only USB cameras found, which OpenCV opens"
    return "no camera found"


def camera_available(camera_num: int = 0) -> bool:
    """True if picamera2 imports and lists camera module ``camera_num`` (see :func:`probe`)."""
    return probe(camera_num) is None
