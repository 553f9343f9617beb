"""Frame sources behind one interface (:class:`FrameSource`) and the factory that picks one.

``base.py`` the interface (and the real-time ``Pacer`` of files and folders),
``opencv_source.py`` (webcams, files, URLs, GStreamer), ``images_source.py``
(a folder) and ``picamera2_source.py`` (the Raspberry Pi camera; imported
only when chosen); :func:`open_source` picks one from the config.
"""

from __future__ import annotations

import logging
from pathlib import Path

from edgecam.errors import SourceError
from edgecam.sources.base import FrameSource

logger = logging.getLogger(__name__)

__all__ = ["FrameSource", "open_source", "parse_source"]


def parse_source(spec: str) -> dict:
    """Turn a ``--source`` value into source config keys.

    ``auto``/``picamera2`` pick that type; a folder means ``images``; anything
    else (a webcam index, file, URL or pipeline) goes to OpenCV.
    """
    if spec in ("auto", "picamera2"):
        return {"type": spec, "uri": None}
    if Path(spec).is_dir():
        return {"type": "images", "uri": spec}
    return {"type": "opencv", "uri": spec}


def lores_size(main: tuple[int, int], model: tuple[int, int] | None) -> tuple[int, int] | None:
    """The ISP-scaled stream's size: ``model``'s short side, the camera's aspect ratio.

    ``model`` is the classifier's view size (its input size divided by the
    crop fraction: 256 for a 224 model with the default centre crop), so that
    the crop is the model's input without resampling. Keeping the aspect ratio
    lets preprocessing crop an undistorted picture; a lores stream of exactly
    the model's size would squash the field of view, like a stretch resize
    (0.742 instead of 0.789 top-1 for V3-Small on 900 ImageNet photos).
    """
    if model is None:
        return None
    side = min(model)
    w, h = main
    if w >= h:
        return (max(side, int(round(side * w / h / 2)) * 2), side)
    return (side, max(side, int(round(side * h / w / 2)) * 2))


def open_source(cfg, model_input_size: tuple[int, int] | None = None) -> FrameSource:
    """Open the source a :class:`edgecam.config.SourceConfig` names."""
    kind = cfg.type
    size = (cfg.width, cfg.height)
    lores = lores_size(size, model_input_size)
    if kind == "images":
        from edgecam.sources.images_source import ImageFolderSource

        if not cfg.uri:
            raise SourceError("source.uri: a folder of images is needed for source.type images")
        return ImageFolderSource(cfg.uri, fps=cfg.fps, realtime=cfg.realtime, loop=cfg.loop)
    if kind == "opencv":
        from edgecam.sources.opencv_source import OpenCVSource

        return OpenCVSource(cfg.uri if cfg.uri is not None else 0, size=size, fps=cfg.fps,
                            realtime=cfg.realtime, loop=cfg.loop, timeout_s=cfg.timeout_s)
    if kind == "picamera2":
        from edgecam.sources.picamera2_source import Picamera2Source

        # source.uri picks the camera on boards with two (Pi 5, CM4): 0 or 1.
        camera = int(cfg.uri) if cfg.uri and str(cfg.uri).isdigit() else 0
        return Picamera2Source(size=size, fps=cfg.fps, lores_size=lores, camera_num=camera, timeout_s=cfg.timeout_s)
    return _open_auto(cfg, size, lores)


def _open_auto(cfg, size: tuple[int, int], lores: tuple[int, int] | None) -> FrameSource:
    """``auto``: the Pi camera module when there is one and it opens, else webcam 0.

    A Pi camera that is listed but fails to open (too old a picamera2, a
    configuration it refuses) is reported and the webcam is tried next; when
    both fail, the one-line error says why each did.
    """
    from edgecam.sources.picamera2_source import Picamera2Source, probe

    tried = []
    why_not = probe()
    if why_not is None:
        try:
            return Picamera2Source(size=size, fps=cfg.fps, lores_size=lores, timeout_s=cfg.timeout_s)
        except SourceError as exc:
            logger.warning("source auto: %s; trying webcam 0", exc.message)
            why_not = exc.message
    tried.append(f"picamera2 ({why_not})")
    from edgecam.sources.opencv_source import OpenCVSource

    try:
        return OpenCVSource(0, size=size, fps=cfg.fps, timeout_s=cfg.timeout_s)
    except SourceError:
        tried.append("webcam 0 (cannot open)")
    raise SourceError(
        "source auto: no camera found (tried " + "; ".join(tried) + "); "
        "pass --source VIDEO_FILE, --source FOLDER or --source 0 for a webcam"
    )
