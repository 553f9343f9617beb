"""The Raspberry Pi camera, through picamera2 (libcamera).

Two streams come from each sensor frame:

* ``main`` at the display size, format ``RGB888``. libcamera names formats
  after DRM, so "RGB888" is stored B, G, R in memory: exactly the BGR that
  :attr:`Frame.image` and OpenCV want, no conversion needed.
* ``lores`` at the model's input size, scaled by the ISP for free, which
  spares the CPU a resize per frame. Its format depends on the board:

  - Pi 5 (PiSP) can output ``RGB888`` on lores (B, G, R in memory: we flip it
    to RGB);
  - Pi 4 and older (VC4) refuse anything but YUV on lores ("lores stream must
    be YUV"), so we ask for ``YUV420`` and convert it on the CPU (cheap at
    224x224). Its array is ``(h*3/2, stride)`` with each line padded to the
    stride, two chroma lines per array row; we cut the padding per plane
    before OpenCV's I420 conversion.

  We *try* RGB888 and fall back to YUV420 when configure() refuses, rather
  than test the board: older picamera2 releases refuse RGB lores on a Pi 5
  too, and the fallback covers them.

Both arrays come from ONE ``capture_request()`` so they show the same instant
(two ``capture_array`` calls would pick two different frames).

Field of view: left to itself picamera2 picks the sensor mode nearest the main
size, which for 640x480 is a cropped mode on the Camera v2 (a 1280x960 centre
crop of the IMX219) and the Camera 3 (3072x1728 of the IMX708's 4608x2592): the
model would see a zoomed-in picture. We ask for the sensor output size of half
the full resolution, the binned mode every Pi camera module has that reads the
whole pixel array (picamera2 issues 558, 683, 1233). The ISP then crops that
mode, centred, to the main stream's aspect ratio (libcamera's rpi pipeline:
``boundedToAspectRatio`` of each output, pisp.cpp and vc4.cpp): a 4:3 main sees
everything on the 4:3 IMX219 and IMX477 but only the middle 75% of the width of
the 16:9 IMX708 (all its modes are 16:9); a 16:9 ``source.width``/``height``
(640x360) sees all of it. The fraction shown is logged at start (``field_of_view``).

Controls beyond size and rate (focus, flips, exposure, tuning file):
``picamera2_controls.py`` and docs/camera.md.

USB webcams are listed by picamera2 too (libcamera's UVC support) but have one
stream, no lores, and OpenCV opens them better: this source skips them, so
camera 0 is the first camera module.

picamera2 >= 0.3.20 is needed: before it, ``capture_request(wait=seconds)``
ignored the timeout and ``cancel_all_and_flush`` did not exist, so a stalled
camera would block ``read()`` and ``close()`` for ever.

picamera2 is imported lazily: it only exists on a Pi (from apt), and the rest
of edgecam must import without it. Whether it imports and which cameras it
lists: ``picamera2_probe.py``.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import CancelledError

import cv2
import numpy as np

from edgecam.errors import SourceError
from edgecam.camera.frame import Frame
from edgecam.camera.base import FrameSource
from edgecam.camera.picamera2_controls import CameraControls, field_of_view
from edgecam.camera.picamera2_probe import MIN_VERSION, UPGRADE_HINT, camera_modules, import_picamera2, picamera2_version
from edgecam.camera.yuv import i420_to_rgb

logger = logging.getLogger(__name__)

# Each stream holds this many buffers. We keep one request only while copying
# it out, so 4 leaves the camera enough to run at full rate.
_BUFFER_COUNT = 4


def _causes(exc: BaseException) -> str:
    """The messages of an exception's __cause__ chain: picamera2 hides why its
    init failed behind "Camera __init__ sequence did not complete."."""
    parts, seen = [], set()
    cause = exc.__cause__ or exc.__context__
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        text = str(cause).strip()
        if text and text not in parts:
            parts.append(text)
        cause = cause.__cause__ or cause.__context__
    return ": ".join(parts)


def _even(size: tuple[int, int]) -> tuple[int, int]:
    """picamera2 rejects odd widths and heights."""
    w, h = (int(v) for v in size)
    return max(2, w - w % 2), max(2, h - h % 2)


class Picamera2Source(FrameSource):
    """Frames from a Raspberry Pi camera, with the model input scaled by the ISP.

    Args:
        size: (width, height) of ``Frame.image`` (the ``main`` stream, BGR).
        fps: frame rate asked of the sensor.
        lores_size: the model's (width, height) input, delivered as
            ``Frame.model_input`` (RGB); None for no lores stream.
        camera_num: index in ``Picamera2.global_camera_info()``.
        timeout_s: a capture that waits longer than this is a failure.
        controls: focus, flips, exposure and tuning file (default: continuous
            AF where the camera has it, nothing else).

    Raises:
        SourceError: picamera2 missing, no such camera, camera busy, or the
            configuration refused; one line saying what to do.
    """

    live = True

    def __init__(self, size: tuple[int, int] = (640, 480), fps: float = 30.0,
                 lores_size: tuple[int, int] | None = (224, 224), camera_num: int = 0,
                 timeout_s: float = 5.0, controls: CameraControls | None = None):
        self.name = f"picamera2:{camera_num}"
        self.controls = controls or CameraControls()
        self.field_of_view: tuple[float, float] | None = None  # of the sensor's width, height
        self.fps = float(fps)
        self.camera_num = camera_num
        self.timeout_s = float(timeout_s)
        self.lores_size = tuple(int(v) for v in lores_size) if lores_size else None
        self.lores_format: str | None = None  # what the camera accepted: RGB888 or YUV420
        self._lores_actual: tuple[int, int] | None = None
        self._index = -1
        self._last_sensor_ns: int | None = None
        self._closed = False
        self._lock = threading.Lock()  # read's copy-out vs close()
        self._cam = None

        try:
            picamera2 = import_picamera2()
        except SourceError as exc:
            raise SourceError(f"{self.name}: {exc.message}") from exc
        if not hasattr(picamera2.Picamera2, "cancel_all_and_flush"):
            raise SourceError(
                f"{self.name}: picamera2 {picamera2_version()} is too old: edgecam needs {MIN_VERSION} or "
                f"newer (older ones never time out a stalled camera); {UPGRADE_HINT}")
        try:
            modules = camera_modules(picamera2)
        except Exception as exc:
            raise SourceError(f"{self.name}: libcamera cannot list cameras ({exc}); "
                              "check 'rpicam-hello --list-cameras'") from exc
        if not 0 <= camera_num < len(modules):
            raise self._no_camera(len(modules), usb=len(picamera2.Picamera2.global_camera_info()) - len(modules))
        info = picamera2.Picamera2.global_camera_info()
        self.sensor = str(info[modules[camera_num]].get("Model", "?")) if camera_num < len(info) else "?"
        tuning = self.controls.tuning(picamera2.Picamera2, self.sensor, self.name)
        try:
            self._cam = picamera2.Picamera2(modules[camera_num], **({"tuning": tuning} if tuning else {}))
        except IndexError as exc:  # unplugged between the listing and the open
            raise self._no_camera(0) from exc
        except Exception as exc:
            raise self._open_failed(exc) from exc
        try:
            self._configure(size)
            self._cam.start()
        except BaseException as exc:
            # Never leave the camera acquired: the next run would find it "busy".
            self._shutdown()
            if isinstance(exc, Exception) and not isinstance(exc, SourceError):
                raise SourceError(f"{self.name}: cannot start the camera ({exc}); check that "
                                  "'rpicam-hello' works, else reboot") from exc
            raise
        sensor = (self._cam.camera_configuration() or {}).get("sensor") or {}
        fov = f"{self.field_of_view[0]:.0%} x {self.field_of_view[1]:.0%}" if self.field_of_view else "?"
        logger.info("%s: %s, main %s RGB888, lores %s %s, %.1f fps, sensor mode %s showing %s of the sensor; %s",
                    self.name, self.sensor, self.size, self._lores_actual, self.lores_format, self.fps,
                    "x".join(str(v) for v in sensor["output_size"]) if sensor.get("output_size") else "?", fov,
                    self.controls.describe(self._cam.camera_controls))

    def _no_camera(self, found: int, usb: int = 0) -> SourceError:
        if found == 0:
            usb_text = (f" (only {usb} USB camera(s), which this source skips: use --source 0 for a webcam)"
                        if usb else "")
            return SourceError(f"{self.name}: no camera found{usb_text}; check the ribbon cable and "
                               "'rpicam-hello --list-cameras', or set source.type: opencv")
        return SourceError(f"{self.name}: only {found} camera(s) found (numbered from 0); "
                           "set a smaller camera number")

    def _open_failed(self, exc: Exception) -> SourceError:
        why = _causes(exc) or str(exc)
        if "busy" in why.lower():
            return SourceError(f"{self.name}: camera busy: another process (rpicam-hello, a crashed edgecam) "
                               f"holds it; stop it or reboot ({why})")
        return SourceError(f"{self.name}: cannot open the camera: {why}; check that "
                           "'rpicam-hello --list-cameras' lists it, else reboot")

    def _configure(self, size: tuple[int, int]) -> None:
        cam = self._cam
        main_size = _even(size)
        wanted = self.controls.controls(cam.camera_controls, self.fps, self.name, self.sensor)
        common = {"main": {"size": main_size, "format": "RGB888"}, "controls": wanted, "buffer_count": _BUFFER_COUNT}
        full = getattr(cam, "sensor_resolution", None)
        if full:
            # The binned full-field-of-view mode (see the module docstring).
            common["sensor"] = {"output_size": _even((full[0] // 2, full[1] // 2))}
        import libcamera  # optional: comes with picamera2, only on a Pi

        # BT.601 limited range: what OpenCV's I420 conversion assumes. picamera2
        # would pick BT.709 by itself once main reaches 1280x720.
        common["colour_space"] = libcamera.ColorSpace.Smpte170m()
        common["transform"] = self.controls.transform(libcamera)  # flips, done by the sensor
        self._configure_lores(common, main_size)
        self._check_configured()

    def _configure_lores(self, common: dict, main_size: tuple[int, int]) -> None:
        """configure() with lores in RGB888, else YUV420 (see the module docstring); SourceError if refused."""
        cam = self._cam
        if self.lores_size is None:
            attempts = [None]
        else:
            lores = _even(self.lores_size)
            # The ISP cannot make lores bigger than main; we upscale on the CPU then.
            lores = (min(lores[0], main_size[0]), min(lores[1], main_size[1]))
            if lores != self.lores_size:
                logger.warning("%s: lores %s not possible with main %s; using %s and resizing",
                               self.name, self.lores_size, main_size, lores)
            attempts = [{"size": lores, "format": fmt} for fmt in ("RGB888", "YUV420")]

        error: Exception | None = None
        for lores_cfg in attempts:
            try:
                config = cam.create_video_configuration(lores=lores_cfg, **common)
                cam.configure(config)
                break
            except Exception as exc:
                error = exc
                if lores_cfg is not None and lores_cfg["format"] == "RGB888":
                    logger.info("%s: camera refuses RGB888 lores (%s); using YUV420", self.name, exc)
        else:
            lores_text = f" + lores {attempts[-1]['size']}" if attempts[-1] else ""
            raise SourceError(f"{self.name}: the camera refuses main {main_size}{lores_text} at "
                              f"{self.fps:g} fps ({error}); try another source size or fps") from error

    def _check_configured(self) -> None:
        """libcamera may adjust what it was asked for: make sure we got what we read, and note the sizes."""
        cam = self._cam
        main = cam.stream_configuration("main")
        if main["format"] != "RGB888":
            raise SourceError(f"{self.name}: the camera gives {main['format']} instead of RGB888 on its main "
                              "stream; use it through OpenCV (source.type: opencv)")
        self.size = tuple(main["size"])
        available = cam.camera_controls  # this mode's: ScalerCrop's default is what main shows
        self.field_of_view = field_of_view(available, (cam.camera_properties or {}).get("PixelArraySize"))
        more = self.controls.after_configure(available, self.name, self.sensor)
        if more:
            cam.set_controls(more)  # applied with the others at start()
        if self.lores_size is not None:
            lores = cam.stream_configuration("lores")
            if lores is None or lores["format"] not in ("RGB888", "YUV420"):
                got = "no lores stream" if lores is None else f"lores {lores['format']}"
                raise SourceError(f"{self.name}: the camera gives {got} instead of RGB888 or YUV420; "
                                  "use it through OpenCV (source.type: opencv)")
            self.lores_format = lores["format"]
            self._lores_actual = tuple(lores["size"])
            if self._lores_actual != self.lores_size:
                logger.info("%s: lores is %s, resized to %s on the CPU", self.name,
                            self._lores_actual, self.lores_size)

    def read(self) -> Frame | None:
        """The next frame; None once closed. Raises SourceError on a stall."""
        cam = self._cam
        if self._closed or cam is None:
            return None
        try:
            request = cam.capture_request(wait=self.timeout_s)
        except TimeoutError:
            if self._closed:
                return None
            # The timed-out capture stays queued in picamera2 and would swallow
            # (and never release) a later frame; cancel it.
            self._cancel_pending(cam)
            raise SourceError(f"{self.name}: no frame for {self.timeout_s:g} s "
                              "(cable loose? camera in use by another process?)") from None
        except CancelledError:
            if self._closed:
                return None
            raise SourceError(f"{self.name}: capture cancelled") from None
        except Exception as exc:
            if self._closed:
                return None
            raise SourceError(f"{self.name}: capture failed: {exc}") from exc

        # Capture time: libcamera's SensorTimestamp is when the frame's first row
        # was exposed, in ns on CLOCK_MONOTONIC (the kernel's V4L2 buffer clock;
        # picamera2's own flush compares it with time.monotonic_ns()). Using it
        # measures latency from the sensor, not from when we got round to reading
        # (up to a frame later, as picamera2 keeps one frame queued).
        mono_now, wall_now = time.monotonic_ns(), time.time()
        with self._lock:
            try:
                if self._closed:
                    return None
                image = request.make_array("main")
                lores = request.make_array("lores") if self.lores_size else None
                metadata = request.get_metadata()
            except Exception as exc:
                raise SourceError(f"{self.name}: cannot read the captured frame: {exc}") from exc
            finally:
                self._release(request)

        sensor_ns = metadata.get("SensorTimestamp")
        age = 0.0
        if sensor_ns:
            age = (mono_now - sensor_ns) / 1e9
            if not 0.0 <= age < 1.0:  # not the clock we expect: trust our own
                age = 0.0
        self._index += self._frames_since_last(sensor_ns, metadata.get("FrameDuration"))
        model_input = self._model_input(lores) if lores is not None else None
        return Frame(image=image, index=self._index, timestamp=mono_now / 1e9 - age,
                     wall_time=wall_now - age, model_input=model_input, sensor_result=self._sensor_result(metadata))

    def _sensor_result(self, metadata: dict):
        """What the sensor computed for this frame (an AI Camera: edgecam.model.backends.imx500); None here."""
        return None

    def _frames_since_last(self, sensor_ns, frame_duration_us) -> int:
        """Sensor frames elapsed since the previous read, so index gaps show drops."""
        step = 1
        if sensor_ns and frame_duration_us and self._last_sensor_ns is not None:
            step = max(1, round((sensor_ns - self._last_sensor_ns) / (frame_duration_us * 1000)))
        if sensor_ns:
            self._last_sensor_ns = sensor_ns
        return step

    def _model_input(self, lores: np.ndarray) -> np.ndarray:
        w, h = self._lores_actual
        if self.lores_format == "YUV420":
            rgb = i420_to_rgb(lores, w, h)
        else:  # RGB888: B, G, R in memory
            rgb = cv2.cvtColor(lores, cv2.COLOR_BGR2RGB)
        if (w, h) != self.lores_size:
            # The ISP could not give exactly the model size (clamped to main, or
            # adjusted by libcamera): a CPU resize at this size costs little.
            rgb = cv2.resize(rgb, self.lores_size, interpolation=cv2.INTER_AREA)
        return rgb

    def _release(self, request) -> None:
        """Give the buffers back at once, or the camera runs out of them."""
        try:
            request.release()
        except Exception as exc:
            # After close() picamera2 has dropped its allocator and release() fails;
            # the buffers are gone with the camera anyway.
            log = logger.debug if self._closed else logger.warning
            log("%s: releasing a request failed: %s", self.name, exc)

    @staticmethod
    def _cancel_pending(cam) -> None:
        try:
            cam.cancel_all_and_flush()  # picamera2 >= 0.3.20, checked at open
        except Exception as exc:
            logger.debug("cancel_all_and_flush failed: %s", exc)

    def close(self) -> None:
        """Stop and release the camera. Idempotent; safe from another thread."""
        if self._closed:
            return
        self._closed = True
        cam = self._cam
        if cam is not None:
            self._cancel_pending(cam)  # wake a read() blocked in capture_request
        with self._lock:
            self._shutdown()

    def _shutdown(self) -> None:
        cam, self._cam = self._cam, None
        if cam is None:
            return
        for step in (cam.stop, cam.close):
            try:
                step()
            except Exception as exc:  # keep going: close() must still release the camera
                logger.warning("%s: %s() failed: %s", self.name, step.__name__, exc)
