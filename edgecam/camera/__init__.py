"""Frame sources behind one interface (:class:`FrameSource`) and the factory that picks one.

``base.py`` the interface (and the real-time ``Pacer`` of files and folders),
``opencv_source.py`` (webcams, files, URLs, GStreamer), ``images_source.py``
(a folder), ``picamera2_source.py`` (the Raspberry Pi camera; imported only
when chosen; ``picamera2_probe.py`` says whether picamera2 imports and what it
lists) and ``demo_source.py`` (a slideshow of the registry's photos);
:func:`open_source` picks one from the config.

``auto`` picks a camera (:func:`open_source`); :func:`open_camera_or_demo`,
for an interactive first run only (``edgecam run --demo-fallback``, which
``make run`` passes), plays the demo instead when there is none.
"""

from __future__ import annotations

import logging
from pathlib import Path

from edgecam.errors import ConfigError, EdgecamError, SourceError
from edgecam.camera.base import FrameSource
from edgecam.camera.images_source import ImageFolderSource

logger = logging.getLogger(__name__)

__all__ = ["FrameSource", "NoCamera", "open_camera_or_demo", "open_source", "parse_source"]

#: How to choose a source, for the lines that say which one a run took.
CHOOSE = ('pick one with --source (make run ARGS="--source 0"): a webcam index, a video file, '
          'a folder of photos, picamera2, or demo')


class NoCamera(SourceError):
    """``source: auto`` found no camera that opens; ``tried`` says what was tried and why each failed."""

    def __init__(self, tried: list[str]):
        self.tried = list(tried)
        super().__init__("source auto: no camera found (tried " + "; ".join(tried) + "); "
                         "pass --source VIDEO_FILE, --source FOLDER or --source 0 for a webcam "
                         "(or --source demo for a slideshow of photos)")


def parse_source(spec: str) -> dict:
    """Turn a ``--source`` value into source config keys.

    ``auto``/``picamera2``/``demo`` pick that type, ``picamera2:1`` the Pi
    camera number 1 (``source.uri``, on boards with two); a folder means
    ``images``; anything else (a webcam index, file, URL or pipeline) goes to OpenCV.
    """
    if spec in ("auto", "picamera2", "demo"):
        return {"type": spec, "uri": None}
    if spec.startswith("picamera2:"):
        number = spec.partition(":")[2]
        if not (number.isascii() and number.isdigit()):
            raise ConfigError(f"--source {spec}: expected picamera2:N, N the Pi camera's number (0, 1)",
                              what="bad flag")
        return {"type": "picamera2", "uri": str(int(number))}
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


# The source: keys only the Pi camera applies (docs/camera.md), with their defaults;
# OpenCV applies the flips too.
_PI_ONLY = {"focus": "auto", "lens_position": None, "focus_range": None, "focus_region": None,
            "exposure": "normal", "max_exposure_ms": None, "tuning_file": None}
_FLIPS = {"hflip": False, "vflip": False, "rotation": 0}


def _unapplied(cfg, kind: str) -> list[str]:
    """The ``source:`` controls set that a source of this kind cannot apply."""
    keys = dict(_PI_ONLY, **({} if kind == "opencv" else _FLIPS))
    return [k for k, default in keys.items() if getattr(cfg, k, default) != default]


def _warn_unapplied(cfg, kind: str) -> None:
    """One WARNING for controls this kind of source ignores (a camera's config run on a file, say)."""
    keys = _unapplied(cfg, kind)
    if keys:
        logger.warning("source.%s: set, but a source.type %s source cannot apply %s (only the Raspberry Pi camera, "
                       "source.type picamera2, can%s); ignoring %s", ", source.".join(keys), kind,
                       "it" if len(keys) == 1 else "them", "; OpenCV applies the flips" if kind != "opencv" else "",
                       "it" if len(keys) == 1 else "them")


def _flips(cfg) -> tuple[bool, bool]:
    turned = getattr(cfg, "rotation", 0) == 180
    return bool(getattr(cfg, "hflip", False)) != turned, bool(getattr(cfg, "vflip", False)) != turned


def _camera_controls(cfg):
    from edgecam.camera.picamera2_controls import CameraControls  # import cost: 8 ms of `edgecam --help`; Pi only

    return CameraControls.from_config(cfg)


def open_source(cfg, model_input_size: tuple[int, int] | None = None, *, model_dir=None) -> FrameSource:
    """Open the source a :class:`edgecam.config.schema.SourceConfig` names.

    ``model_dir`` is the model folder (``model.dir``; None: the default one),
    where the demo keeps its photos.
    """
    kind = cfg.type
    size = (cfg.width, cfg.height)
    lores = lores_size(size, model_input_size)
    if kind in ("images", "opencv", "demo"):
        _warn_unapplied(cfg, kind)
    if kind == "images":
        if not cfg.uri:
            raise SourceError("source.uri: a folder of images is needed for source.type images")
        return ImageFolderSource(cfg.uri, fps=cfg.fps, realtime=cfg.realtime, loop=cfg.loop)
    if kind == "opencv":
        from edgecam.camera.opencv_source import OpenCVSource  # import cost: cv2, 66 ms of `edgecam --help`

        return OpenCVSource(cfg.uri if cfg.uri is not None else 0, size=size, fps=cfg.fps,
                            realtime=cfg.realtime, loop=cfg.loop, timeout_s=cfg.timeout_s, flip=_flips(cfg))
    if kind == "picamera2":
        from edgecam.camera.picamera2_source import Picamera2Source  # import cost: cv2 (see _open_auto)

        # source.uri picks the camera on boards with two (Pi 5, CM4): 0 or 1.
        camera = int(cfg.uri) if cfg.uri and str(cfg.uri).isdigit() else 0
        return Picamera2Source(size=size, fps=cfg.fps, lores_size=lores, camera_num=camera, timeout_s=cfg.timeout_s,
                               controls=_camera_controls(cfg))
    if kind == "demo":
        from edgecam.camera.demo_source import open_demo  # import cost: cv2, 93 ms of `edgecam --help`

        return open_demo(cfg, model_dir)
    return _open_auto(cfg, size, lores)


def open_camera_or_demo(cfg, model_input_size: tuple[int, int] | None = None, *,
                        model_dir=None) -> tuple[FrameSource, str]:
    """``source: auto``, or the demo when no camera is found; and one line saying which, and how to choose.

    Only for an interactive first run (``--demo-fallback``): a service with
    ``source: auto`` must fail (and reconnect) when its camera is missing,
    never show photos instead, so :func:`open_source` never falls back. Only
    the first open may: a camera that goes away later is reconnected, as always.
    """
    try:
        source = _open_auto(cfg, (cfg.width, cfg.height), lores_size((cfg.width, cfg.height), model_input_size))
    except NoCamera as no_camera:
        why = "; ".join(no_camera.tried)
        try:
            from edgecam.camera.demo_source import open_demo  # import cost: cv2, 93 ms of `edgecam --help`

            demo = open_demo(cfg, model_dir)
        except EdgecamError as e:
            raise SourceError(f"source auto: no camera found (tried {why}), and the demo cannot start either: "
                              f"{e.message}") from None
        seconds = demo.frame_count / demo.fps
        return demo, (f"no camera found (tried {why}), so playing the demo: a slideshow of "
                      f"{len(demo.slides)} photos, {seconds:.0f} s. To choose the source, {CHOOSE}")
    return source, f"source: {source.name} (the camera source auto found). To choose another, {CHOOSE}"


def _open_auto(cfg, size: tuple[int, int], lores: tuple[int, int] | None) -> FrameSource:
    """``auto``: the Pi camera module when there is one and it opens, else webcam 0.

    A Pi camera that is listed but fails to open (too old a picamera2, a
    configuration it refuses) is reported and the webcam is tried next; when
    both fail, the one-line error says why each did.
    """
    # import cost: cv2 and importlib.metadata, 100 ms each of `edgecam --help` (every command imports this package)
    from edgecam.camera.picamera2_probe import probe
    from edgecam.camera.picamera2_source import Picamera2Source

    tried = []
    why_not = probe()
    if why_not is None:
        try:
            return Picamera2Source(size=size, fps=cfg.fps, lores_size=lores, timeout_s=cfg.timeout_s,
                                   controls=_camera_controls(cfg))
        except SourceError as exc:
            logger.warning("source auto: %s; trying webcam 0", exc.message)
            why_not = exc.message
    tried.append(f"picamera2 ({why_not})")
    from edgecam.camera.opencv_source import OpenCVSource  # import cost: cv2, 66 ms of `edgecam --help`

    unapplied = _unapplied(cfg, "opencv")
    try:
        webcam = OpenCVSource(0, size=size, fps=cfg.fps, timeout_s=cfg.timeout_s, flip=_flips(cfg))
        if unapplied:
            logger.warning("source auto: webcam 0 cannot apply source.%s (only the Pi camera can); ignoring it",
                           ", source.".join(unapplied))
        return webcam
    except SourceError:
        tried.append("webcam 0 (cannot open)")
    raise NoCamera(tried)
