"""The fake picamera2 itself; see tests/fakes/README.md for what it models.

Everything a test steers goes through :data:`fake_control`. Everything code
under test calls is on :class:`Picamera2` / :class:`CompletedRequest`, with the
real signatures, return shapes, and error types and messages.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError, Future

import libcamera
import numpy as np

from picamera2.camera_controls import controls_for
from picamera2.platform import Platform

# The real picamera2 imports simplejpeg at import time (picamera2/request.py). On
# Raspberry Pi OS Bookworm apt's simplejpeg is built against apt's NumPy 1.24, so
# a venv that pulled NumPy 2 over it cannot import picamera2 at all:
# "ValueError: numpy.dtype size changed, may indicate binary incompatibility".
# Where a simplejpeg is installed the fake imports it too, so that break is real;
# $EDGECAM_FAKE_PICAMERA2_IMPORT_ERROR=numpy-abi plays it without one.
IMPORT_ERROR_ENV = "EDGECAM_FAKE_PICAMERA2_IMPORT_ERROR"
if os.environ.get(IMPORT_ERROR_ENV) == "numpy-abi":
    raise ValueError("numpy.dtype size changed, may indicate binary incompatibility. "
                     "Expected 96 from C header, got 88 from PyObject")
try:
    import simplejpeg  # noqa: F401
except ModuleNotFoundError as _exc:
    if _exc.name != "simplejpeg":
        raise


class _LazyCv2:
    """OpenCV, imported at first use: the fake draws its frames with it, but the
    real picamera2 does not import it, so neither does importing the fake (as a
    stand-in in a system's dist-packages, it must import where apt's would)."""

    def __getattr__(self, name):
        import cv2

        return getattr(cv2, name)


cv2 = _LazyCv2()

_log = logging.getLogger("picamera2.picamera2")

MODEL_ENV = "EDGECAM_FAKE_PICAMERA2_MODEL"
# For a program under test run as a subprocess, where set_source() cannot reach:
# what the sensor sees (a picture, a folder of pictures or a video file), and a
# JSON file written at exit saying which cameras were opened, closed, left open.
PICTURES_ENV = "EDGECAM_FAKE_PICAMERA2_PICTURES"
REPORT_ENV = "EDGECAM_FAKE_PICAMERA2_REPORT"
# Which picamera2 release to behave as ("0.3.19"...); the default is 0.3.36.
VERSION_ENV = "EDGECAM_FAKE_PICAMERA2_VERSION"
DEFAULT_VERSION = "0.3.36"
# A path: while a file exists there, every camera stalls (as after stall());
# a program under test (e.g. a systemd service) is stalled from outside.
STALL_FILE_ENV = "EDGECAM_FAKE_PICAMERA2_STALL_FILE"
# The camera module on the board ("imx500": an AI Camera), for a program under test; default the board's usual one.
SENSOR_ENV = "EDGECAM_FAKE_PICAMERA2_SENSOR"

# What each fake board looks like: its ISP, the camera usually found on it, and the device-tree
# nodes of the I2C buses of its two camera connectors. libcamera's camera Id is the sensor's node
# under one of them ("<bus>/imx708@1a"), and picamera2 sorts the Ids in reverse (global_camera_info),
# so the first bus here is camera 0, as `rpicam-hello --list-cameras` lists two cameras: on a Pi 5
# i2c@88000 then i2c@80000; on the VC4 a Compute Module 4's i2c0mux channel 1 then channel 0 (a Pi 4
# Model B has one connector, channel 1).
MODELS = {
    "pi4": {"platform": Platform.VC4, "sensor": "imx219",
            "connectors": ("/base/soc/i2c0mux/i2c@1", "/base/soc/i2c0mux/i2c@0")},
    "pi5": {"platform": Platform.PISP, "sensor": "imx708",
            "connectors": ("/base/axi/pcie@120000/rp1/i2c@88000", "/base/axi/pcie@120000/rp1/i2c@80000")},
}

# Sensor modes as `rpicam-hello --list-cameras` and Picamera2.sensor_modes report
# them: (raw format, output size, max fps, crop_limits on the full pixel array).
# A mode whose crop is not the whole array sees only the middle of the scene:
# the IMX219's 640x480 mode reads a 1280x960 centre crop, the IMX708's 1536x864
# mode a 3072x1728 one; the binned half-resolution modes see everything.
# "address" and "rotation" are the sensor's I2C address (the "@10" of its Id) and the
# rotation the kernel's overlay (imx219.dtsi...) gives it, which libcamera reports as the
# Rotation property (global_camera_info() on a Camera v2: 'Rotation': 180).
SENSORS = {
    "imx219": {  # Camera Module v2
        "address": "10", "rotation": 180,
        "resolution": (3280, 2464),
        "modes": [(fmt, size, fps, crop) for fmt in ("SRGGB10_CSI2P", "SRGGB8") for size, fps, crop in (
            ((640, 480), 103.33, (1000, 752, 1280, 960)),
            ((1640, 1232), 41.85, (0, 0, 3280, 2464)),
            ((1920, 1080), 47.57, (680, 692, 1920, 1080)),
            ((3280, 2464), 21.19, (0, 0, 3280, 2464)))],
    },
    "imx708": {  # Camera Module 3
        "address": "1a", "rotation": 180,
        "resolution": (4608, 2592),
        "modes": [("SRGGB10_CSI2P", (1536, 864), 120.13, (768, 432, 3072, 1728)),
                  ("SRGGB10_CSI2P", (2304, 1296), 56.03, (0, 0, 4608, 2592)),
                  ("SRGGB10_CSI2P", (4608, 2592), 14.35, (0, 0, 4608, 2592))],
    },
    "imx500": {  # Raspberry Pi AI Camera (rpicam-hello --list-cameras)
        "address": "1a", "rotation": 0,
        "resolution": (4056, 3040),
        "modes": [("SRGGB10_CSI2P", (2028, 1520), 30.02, (0, 0, 4056, 3040)),
                  ("SRGGB10_CSI2P", (4056, 3040), 10.0, (0, 0, 4056, 3040))],
    },
    "imx477": {  # HQ camera
        "address": "1a", "rotation": 180,
        "resolution": (4056, 3040),
        "modes": [("SRGGB10_CSI2P", (1332, 990), 120.05, (696, 528, 2664, 1980)),
                  ("SRGGB12_CSI2P", (2028, 1080), 50.03, (0, 440, 4056, 2160)),
                  ("SRGGB12_CSI2P", (2028, 1520), 40.01, (0, 0, 4056, 3040)),
                  ("SRGGB12_CSI2P", (4056, 3040), 10.0, (0, 0, 4056, 3040))],
    },
}
# A USB webcam as libcamera's UVC pipeline lists it (the Id holds "/usb").
USB_CAMERA = {"Model": "UVC Camera (046d:0825)", "id": "/base/scb/pcie@7d500000/pci@0,0/usb@0,0-1.3:1.0-046d:0825"}


def _bit_depth(raw_format: str) -> int:
    """SRGGB10_CSI2P -> 10 (picamera2's SensorFormat.bit_depth)."""
    return int("".join(c for c in raw_format.split("_")[0] if c.isdigit()))


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


# Row alignment (bytes) the kernel ISP drivers give each format: bcm2835-isp
# aligns YUV420 lines to 64 and RGB24 to 32 bytes; on the Pi 5 the PiSP pads
# YUV420 to 128 (so that each chroma line is 64-aligned) and RGB to 64.
_STRIDE_ALIGN = {
    Platform.VC4: {"YUV420": 64, "YVU420": 64, "RGB888": 32, "BGR888": 32, "XRGB8888": 64, "XBGR8888": 64,
                   "YUYV": 32},
    Platform.PISP: {"YUV420": 128, "YVU420": 128, "RGB888": 64, "BGR888": 64, "XRGB8888": 64, "XBGR8888": 64,
                    "YUYV": 64},
}
_BYTES_PER_PIXEL = {"RGB888": 3, "BGR888": 3, "XRGB8888": 4, "XBGR8888": 4, "YUV420": 1, "YVU420": 1, "YUYV": 2}
_YUV_FORMATS = {"YUV420", "YVU420", "NV12", "NV21", "YUYV", "YVYU", "UYVY", "VYUY"}
_RGB_FORMATS = {"RGB888", "BGR888", "XRGB8888", "XBGR8888", "RGB161616", "BGR161616"}
_STREAM_KEYS = ("format", "size", "stride", "preserve_ar")
# The tuning files libcamera installs for the fake's sensors, per ISP folder
# (raspberrypi/libcamera src/ipa/rpi/{vc4,pisp}/data, installed in /usr/share/libcamera/ipa/rpi/...).
_TUNING_COMMON = {"imx219.json", "imx219_noir.json", "imx477.json", "imx477_noir.json", "imx477_scientific.json",
                  "imx500.json", "imx708.json", "imx708_noir.json", "imx708_wide.json", "imx708_wide_noir.json",
                  "uncalibrated.json"}
TUNING_FILES = {Platform.VC4: _TUNING_COMMON | {"imx477_v1.json"},
                Platform.PISP: _TUNING_COMMON | {"imx477_16mm.json", "imx477_6mm.json"}}
_NR_MINIMAL, _NR_FAST = 3, 1  # libcamera.controls.draft.NoiseReductionModeEnum values


def _align_up(value: int, align: int) -> int:
    return (value + align - 1) // align * align


# --------------------------------------------------------------------------- #
# Test-side control
# --------------------------------------------------------------------------- #


class _Slot:
    """One camera connector: what is plugged in and who holds it."""

    def __init__(self, num: int, usb: bool = False):
        self.num = num  # libcamera's camera number
        self.usb = usb  # a UVC webcam rather than a CSI camera module
        self.attached = True
        self.open_error: BaseException | None = None  # what opening it fails with
        self.held_externally = False  # another process (rpicam-hello...) has it
        self.owner: Picamera2 | None = None
        self.stalled = threading.Event()
        self.fail_next: BaseException | None = None
        self.frames_produced = 0
        self.controls: dict = {}  # the controls of the last configuration, with set_controls() after it
        self.transform: dict | None = None  # the last configuration's flips
        self.tuning = None  # what the last open passed as tuning=
        self.opened = 0
        self.closed = 0  # by close(), not by the garbage collector


class FakeControl:
    """How a test sets up and steers the fake cameras.

    Reset to the defaults (one camera, model from ``$EDGECAM_FAKE_PICAMERA2_MODEL``
    or "pi4", synthetic pictures) with :meth:`reset`, which also force-closes and
    reports any camera the code under test left open.
    """

    def __init__(self):
        self._lock = threading.RLock()
        self.model = "pi4"
        self.sensor: str | None = None  # every camera module's, unless set per camera; None: the model's usual one
        self._sensors: dict[int, str] = {}  # set_sensor(name, camera_num)
        self.version = _version_tuple(DEFAULT_VERSION)
        self.slots: list[_Slot] = []
        # f(stream name, format, size) -> the size libcamera makes of it, for every camera
        # (set_adjust_size() sets one for one camera); None: sizes stay.
        self.adjust_size: Callable[[str, str, tuple[int, int]], tuple[int, int]] | None = None
        self._adjust_sizes: dict[int, Callable[[str, str, tuple[int, int]], tuple[int, int]]] = {}
        self.hang_guard_s = 20.0
        self._default_source: Callable[[int], np.ndarray] = _synthetic_picture  # what a camera without set_source sees
        self._sources: dict[int, Callable[[int], np.ndarray]] = {}
        self.reset()

    # -- set-up ----------------------------------------------------------- #

    def reset(self, model: str | None = None) -> list[int]:
        """Back to defaults; returns the numbers of cameras that were still open."""
        with self._lock:
            leaked = [s.num for s in self.slots if s.owner is not None]
            owners = [s.owner for s in self.slots if s.owner is not None]
        for cam in owners:
            cam.close()
        with self._lock:
            Picamera2._cm.cameras.clear()  # what failed opens left registered (picamera2 < 0.3.37)
            self.set_model(model or os.environ.get(MODEL_ENV, "pi4"))
            self.sensor = os.environ.get(SENSOR_ENV) or None
            self._sensors = {}
            self.set_version(os.environ.get(VERSION_ENV) or DEFAULT_VERSION)
            self.slots = [_Slot(0)]
            self.adjust_size = None
            self._adjust_sizes = {}
            self.hang_guard_s = 20.0
            self._default_source = _pictures_from_env() or _synthetic_picture
            self._sources = {}
            # f(camera, picture the whole pixel array sees) -> metadata the sensor adds to each
            # frame (picamera2.imx500_kernel: the AI Camera's output tensor); None: nothing.
            self.sensor_metadata = None
        return leaked

    def set_model(self, model: str) -> None:
        """Pretend to be a "pi4" (VC4 ISP) or a "pi5" (PiSP)."""
        if model not in MODELS:
            raise ValueError(f"fake picamera2: model must be one of {sorted(MODELS)}, not {model!r}")
        self.model = model
        Picamera2.platform = MODELS[model]["platform"]

    @property
    def platform(self) -> Platform:
        return MODELS[self.model]["platform"]

    @property
    def sensor_name(self) -> str:
        """Camera 0's sensor."""
        return self.sensor_of(0)

    def sensor_of(self, camera_num: int = 0) -> str:
        """The sensor of camera module ``camera_num`` (a connector: libcamera's Num)."""
        return self._sensors.get(camera_num) or self.sensor or MODELS[self.model]["sensor"]

    def set_sensor(self, sensor: str | None, camera_num: int = 0) -> None:
        """Put another camera module on connector ``camera_num`` ("imx219", "imx708", "imx477",
        "imx500"); None: the board's usual one (or $EDGECAM_FAKE_PICAMERA2_SENSOR's).
        It shows in global_camera_info() (Model, Id) and in the next Picamera2 opened on it."""
        if sensor is not None and sensor not in SENSORS:
            raise ValueError(f"fake picamera2: sensor must be one of {sorted(SENSORS)}, not {sensor!r}")
        with self._lock:
            if sensor is None:
                self._sensors.pop(camera_num, None)
            else:
                self._sensors[camera_num] = sensor

    def set_version(self, version: str) -> None:
        """Behave as this picamera2 release. Before 0.3.20 there is no
        cancel_all_and_flush() and ``capture_request(wait=seconds)`` ignores the
        timeout (it blocks until a frame comes); before 0.3.13 configurations
        take no ``sensor`` argument."""
        self.version = _version_tuple(version)

    def set_cameras(self, count: int, usb: int = 0) -> None:
        """Plug in ``count`` camera modules (0, 1 or 2: a Pi 5 or a Compute Module
        has two connectors) and ``usb`` USB webcams (0, 0 = none).

        libcamera numbers them in that order (Num); global_camera_info() lists the
        camera modules first, as picamera2 sorts USB cameras to the back. What
        was set per camera (set_source, set_sensor...) stays.
        """
        if not 0 <= count <= len(MODELS[self.model]["connectors"]):
            raise ValueError(f"fake picamera2: a Raspberry Pi has {len(MODELS[self.model]['connectors'])} camera "
                             f"connectors, not room for {count} camera modules (add USB cameras with usb=)")
        with self._lock:
            self.slots = [_Slot(i) for i in range(count)] + [_Slot(count + i, usb=True) for i in range(usb)]

    def fail_open(self, exc: BaseException | None, camera_num: int = 0) -> None:
        """Make opening the camera fail inside picamera2's init sequence with ``exc``
        (e.g. RuntimeError("Failed to initialize camera")); None clears it."""
        self._slot(camera_num).open_error = exc

    def set_source(self, source: Iterable[np.ndarray] | Callable[[int], np.ndarray] | None,
                   camera_num: int = 0) -> None:
        """What camera ``camera_num``'s sensor sees: BGR uint8 HxWx3 pictures, any size.

        A list (or tuple) is cycled; an iterator repeats its last picture when it
        runs out; a callable gets the frame sequence number (that camera's own);
        None means a synthetic moving pattern. A camera without a source of its
        own sees $EDGECAM_FAKE_PICAMERA2_PICTURES, else the pattern.
        """
        if source is None:
            picture = _synthetic_picture
        elif callable(source):
            picture = source
        elif isinstance(source, (list, tuple)):
            pictures = [_check_picture(p) for p in source]
            if not pictures:
                raise ValueError("fake picamera2: empty picture list")
            picture = lambda i: pictures[i % len(pictures)]  # noqa: E731
        else:
            picture = _RepeatLast(iter(source))
        with self._lock:
            self._sources[camera_num] = picture

    def picture(self, index: int, camera_num: int = 0) -> np.ndarray:
        """Frame ``index`` of what camera ``camera_num`` sees."""
        return _check_picture(self._sources.get(camera_num, self._default_source)(index))

    def set_adjust_size(self, adjust: Callable[[str, str, tuple[int, int]], tuple[int, int]] | None,
                        camera_num: int = 0) -> None:
        """Play libcamera's validate() moving camera ``camera_num``'s stream sizes:
        ``adjust(stream name, format, size)`` -> the size it gets; None: that camera
        follows :attr:`adjust_size` (every camera's) again."""
        with self._lock:
            if adjust is None:
                self._adjust_sizes.pop(camera_num, None)
            else:
                self._adjust_sizes[camera_num] = adjust

    def _adjust_for(self, camera_num: int):
        return self._adjust_sizes.get(camera_num, self.adjust_size)

    # -- faults ----------------------------------------------------------- #

    def _slot(self, camera_num: int) -> _Slot:
        with self._lock:
            return self.slots[camera_num]

    def hold(self, camera_num: int = 0, held: bool = True) -> None:
        """Simulate another process holding the camera (opening it then fails)."""
        self._slot(camera_num).held_externally = held

    def stall(self, camera_num: int = 0) -> None:
        """Stop delivering frames (what a loose ribbon cable looks like).

        Returns once no frame is being made: what is queued then (see
        :meth:`queued_frames`, at most one, as picamera2 keeps) is all a
        capture still gets before it times out.
        """
        slot = self._slot(camera_num)
        slot.stalled.set()
        self._settle(slot)

    def _settle(self, slot: "_Slot") -> None:
        cam = slot.owner
        if cam is not None:
            with cam._frame_lock:  # the sensor thread finishes a frame it had started
                pass

    def queued_frames(self, camera_num: int = 0) -> int:
        """Completed frames waiting for a capture (picamera2 keeps one)."""
        cam = self._slot(camera_num).owner
        if cam is None:
            return 0
        with cam._cond:
            return len(cam._completed)

    def wait_for_blocked_capture(self, camera_num: int = 0, timeout: float = 20.0) -> None:
        """Return once a capture_request() is waiting for a frame (a reader blocked in it), so that a
        test acts on a blocked reader rather than sleeping and hoping it got there."""
        cam = self._slot(camera_num).owner
        if cam is None:
            raise RuntimeError("fake picamera2: no open camera to wait on")
        with cam._cond:
            if not cam._cond.wait_for(lambda: cam._jobs, timeout):
                raise TimeoutError(f"fake picamera2: no capture waited for a frame within {timeout} s")

    def resume(self, camera_num: int = 0) -> None:
        self._slot(camera_num).stalled.clear()

    def disconnect(self, camera_num: int = 0) -> None:
        """Unplug: frames stop and the camera vanishes from global_camera_info().

        Real libcamera does not raise on the open handle: captures just never
        complete, so callers see their capture timeout.
        """
        slot = self._slot(camera_num)
        slot.stalled.set()
        slot.attached = False
        self._settle(slot)

    def fail_next_capture(self, exc: BaseException, camera_num: int = 0) -> None:
        """Make the next capture call raise ``exc`` (a libcamera error surfacing)."""
        self._slot(camera_num).fail_next = exc

    # -- inspection ------------------------------------------------------- #

    def frames_produced(self, camera_num: int = 0) -> int:
        return self._slot(camera_num).frames_produced

    def open_cameras(self) -> list[int]:
        with self._lock:
            return [s.num for s in self.slots if s.owner is not None]

    def camera(self, camera_num: int = 0) -> "Picamera2 | None":
        """The Picamera2 object that has this camera open, if any."""
        return self._slot(camera_num).owner

    def held_requests(self, camera_num: int = 0) -> int:
        """Requests handed out by capture_request() and not yet released."""
        owner = self._slot(camera_num).owner
        return 0 if owner is None else len(owner._held)


class _RepeatLast:
    def __init__(self, it: Iterator[np.ndarray]):
        self._it = it
        self._last: np.ndarray | None = None
        self._lock = threading.Lock()

    def __call__(self, index: int) -> np.ndarray:
        with self._lock:
            try:
                self._last = next(self._it)
            except StopIteration:
                if self._last is None:
                    raise ValueError("fake picamera2: picture iterator was empty") from None
            return self._last


class _VideoLoop:
    """Frames of a video file, one per call, from the start again at its end."""

    def __init__(self, path: str):
        self._cap = cv2.VideoCapture(path)
        self._lock = threading.Lock()
        ok, self._first = self._cap.read()
        if not ok:
            raise ValueError(f"fake picamera2: ${PICTURES_ENV}={path} is not a readable picture or video")
        self._pending = self._first

    def __call__(self, index: int) -> np.ndarray:
        with self._lock:
            picture, self._pending = self._pending, None
            if picture is None:
                ok, picture = self._cap.read()
                if not ok:
                    self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    picture = self._first
            return picture


def _pictures_from_env() -> Callable[[int], np.ndarray] | None:
    """The source $EDGECAM_FAKE_PICAMERA2_PICTURES names: a picture file (shown
    in every frame), a folder of pictures (cycled in name order) or a video (looped)."""
    spec = os.environ.get(PICTURES_ENV)
    if not spec:
        return None
    if os.path.isdir(spec):
        names = sorted(os.listdir(spec))
        pictures = [p for p in (cv2.imread(os.path.join(spec, n), cv2.IMREAD_COLOR) for n in names)
                    if p is not None]
        if not pictures:
            raise ValueError(f"fake picamera2: ${PICTURES_ENV}={spec} holds no readable picture")
        return lambda i: pictures[i % len(pictures)]
    picture = cv2.imread(spec, cv2.IMREAD_COLOR)
    if picture is not None:
        return lambda i: picture
    return _VideoLoop(spec)


def _stalled_from_outside() -> bool:
    stall_file = os.environ.get(STALL_FILE_ENV)
    return bool(stall_file) and os.path.exists(stall_file)


def _write_report(path: str) -> None:
    """At exit: per camera, how often it was opened and closed, whether it is
    still open, and how many frames it made (see $EDGECAM_FAKE_PICAMERA2_REPORT)."""
    import json

    with fake_control._lock:
        cameras = [{"num": s.num, "opened": s.opened, "closed": s.closed, "open": s.owner is not None,
                    "frames_produced": s.frames_produced,
                    "sensor": USB_CAMERA["Model"] if s.usb else fake_control.sensor_of(s.num),
                    "controls": _jsonable(s.controls), "transform": s.transform,
                    "tuning": (s.tuning or {}).get("fake_path") if isinstance(s.tuning, dict) else s.tuning}
                   for s in fake_control.slots]
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"model": fake_control.model, "cameras": cameras}, f)


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value if isinstance(value, (int, float, str, bool, type(None))) else repr(value)


def _check_picture(picture: np.ndarray) -> np.ndarray:
    if not (isinstance(picture, np.ndarray) and picture.dtype == np.uint8
            and picture.ndim == 3 and picture.shape[2] == 3):
        raise ValueError("fake picamera2: pictures must be BGR uint8 arrays of shape HxWx3")
    return picture


def _synthetic_picture(index: int) -> np.ndarray:
    """Colour bars that scroll one column per frame, so frames differ."""
    bars = np.array([[255, 255, 255], [0, 255, 255], [255, 255, 0], [0, 255, 0],
                     [255, 0, 255], [0, 0, 255], [255, 0, 0], [0, 0, 0]], dtype=np.uint8)
    cols = (np.arange(640) + index) % 640 * len(bars) // 640
    return np.repeat(bars[cols][np.newaxis], 480, axis=0)


# --------------------------------------------------------------------------- #
# Pixel encoding, as the ISP lays frames out in memory
# --------------------------------------------------------------------------- #


def _bgr_to_i420(bgr: np.ndarray, colour_space) -> np.ndarray:
    """Planar Y, U, V (h*3/2 rows of w bytes) in the stream's colour space."""
    h, w = bgr.shape[:2]
    ycbcr = getattr(colour_space, "ycbcr", "601") or "601"
    full = getattr(colour_space, "range", "limited") == "full"
    if ycbcr == "601" and not full:
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)  # OpenCV's is limited-range BT.601
    kr, kb = (0.299, 0.114) if ycbcr == "601" else (0.2126, 0.0722)
    f = bgr.astype(np.float32) / 255.0
    y = kr * f[..., 2] + (1 - kr - kb) * f[..., 1] + kb * f[..., 0]
    cb = (f[..., 0] - y) / (2 * (1 - kb))
    cr = (f[..., 2] - y) / (2 * (1 - kr))
    if full:
        y, cb, cr = y * 255, cb * 255 + 128, cr * 255 + 128
    else:
        y, cb, cr = 16 + 219 * y, 128 + 224 * cb, 128 + 224 * cr
    u = cv2.resize(cb, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    v = cv2.resize(cr, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    planes = np.concatenate([y.ravel(), u.ravel(), v.ravel()])
    return np.clip(np.rint(planes), 0, 255).astype(np.uint8).reshape(h * 3 // 2, w)


def _fill(plane: np.ndarray, pixels: np.ndarray, rng: np.random.Generator) -> None:
    """Write ``pixels`` at the left of each line of ``plane``; the rest of the
    line is padding and gets garbage, as on the real ISP."""
    width = pixels.shape[1]
    plane[:, :width] = pixels
    if plane.shape[1] > width:
        plane[:, width:] = rng.integers(0, 256, (plane.shape[0], plane.shape[1] - width), dtype=np.uint8)


def _encode(bgr: np.ndarray, cfg: dict, colour_space, rng: np.random.Generator) -> np.ndarray:
    """The stream's 1-D buffer (``framesize`` bytes): pixels in the format's
    byte order, every line padded to the stride."""
    fmt, (w, h), stride = cfg["format"], cfg["size"], cfg["stride"]
    buf = np.empty(cfg["framesize"], dtype=np.uint8)
    if fmt in ("YUV420", "YVU420"):
        i420 = _bgr_to_i420(bgr, colour_space).ravel()
        y, u, v = i420[: w * h], i420[w * h: w * h * 5 // 4], i420[w * h * 5 // 4:]
        if fmt == "YVU420":
            u, v = v, u
        _fill(buf[: h * stride].reshape(h, stride), y.reshape(h, w), rng)
        cstride, ch, cw = stride // 2, h // 2, w // 2  # chroma lines: half as long, half as many
        base = h * stride
        for plane in (u, v):
            _fill(buf[base: base + ch * cstride].reshape(ch, cstride), plane.reshape(ch, cw), rng)
            base += ch * cstride
        return buf
    if fmt == "YUYV":  # packed 4:2:2 (what a UVC webcam gives): Y0 U Y1 V per pixel pair
        yuv = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV).astype(np.uint16)
        pixels = np.empty((h, w, 2), np.uint8)
        pixels[..., 0] = yuv[..., 0]
        pixels[:, 0::2, 1] = (yuv[:, 0::2, 1] + yuv[:, 1::2, 1] + 1) // 2
        pixels[:, 1::2, 1] = (yuv[:, 0::2, 2] + yuv[:, 1::2, 2] + 1) // 2
        _fill(buf.reshape(h, stride), pixels.reshape(h, w * 2), rng)
        return buf
    if fmt == "RGB888":  # libcamera/DRM naming: memory order is B, G, R
        pixels = bgr
    elif fmt == "BGR888":  # memory order R, G, B
        pixels = bgr[..., ::-1]
    elif fmt == "XRGB8888":  # B, G, R, 255
        pixels = np.dstack([bgr, np.full((h, w), 255, np.uint8)])
    else:  # XBGR8888: R, G, B, 255
        pixels = np.dstack([bgr[..., ::-1], np.full((h, w), 255, np.uint8)])
    bpp = _BYTES_PER_PIXEL[fmt]
    _fill(buf.reshape(h, stride), pixels.reshape(h, w * bpp), rng)
    return buf


def _make_array(buffer: np.ndarray, cfg: dict) -> np.ndarray:
    """Turn a stream buffer into the array picamera2's make_array() returns."""
    fmt, (w, h), stride = cfg["format"], cfg["size"], cfg["stride"]
    if fmt in ("YUV420", "YVU420"):
        # picamera2 keeps the padding here: (h*3/2, stride), two chroma lines per row.
        return buffer.reshape(h * 3 // 2, stride)
    if fmt == "YUYV":
        # picamera2's shape, made for cv2.cvtColor(array, cv2.COLOR_YUV2BGR_YUYV); padding kept.
        return buffer.reshape(h, stride // 2, 2)
    bpp = _BYTES_PER_PIXEL[fmt]
    array = buffer.reshape(h, stride)
    if stride != w * bpp:
        array = np.ascontiguousarray(array[:, : w * bpp])
    return array.reshape(h, w, bpp)


# --------------------------------------------------------------------------- #
# The camera
# --------------------------------------------------------------------------- #


class CompletedRequest:
    """One completed capture: every configured stream from the same sensor frame."""

    def __init__(self, picam2: "Picamera2", buffers: dict[str, np.ndarray], metadata: dict):
        self.picam2 = picam2
        self.ref_count = 1
        self.stop_count = picam2.stop_count
        self.config = picam2.camera_config.copy()
        self.stream_map = dict(picam2.stream_map)
        self._buffers = buffers
        self._metadata = metadata
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            if self.ref_count == 0:
                raise RuntimeError("CompletedRequest: acquiring lock with ref_count 0")
            self.ref_count += 1

    def release(self) -> None:
        """Give the buffers back to the camera (once the count reaches zero)."""
        with self._lock:
            self.ref_count -= 1
            if self.ref_count < 0:
                raise RuntimeError("CompletedRequest: lock now has negative ref_count")
            if self.ref_count > 0:
                return
        if not self.picam2.is_open:
            # Picamera2.close() drops its allocator, which the real release() then calls.
            raise AttributeError("'NoneType' object has no attribute 'release'")
        self.picam2._recycle(self)
        self.config = None
        self.stream_map = None
        self._buffers = None

    def make_buffer(self, name: str) -> np.ndarray:
        if self.stream_map is None:
            # The real object has dropped its config by now and fails just as obscurely.
            raise TypeError("'NoneType' object is not subscriptable (request used after release())")
        if self.stream_map.get(name) is None:
            raise RuntimeError(f"Stream {name!r} is not defined")
        return self._buffers[name].copy()  # the real one copies out of the dmabuf too

    def make_array(self, name: str) -> np.ndarray:
        buffer = self.make_buffer(name)
        return _make_array(buffer, self.config[name])

    def get_metadata(self) -> dict:
        return dict(self._metadata)


class _Job:
    def __init__(self):
        self.future: Future = Future()
        self.future.set_running_or_notify_cancel()


class _Since:
    """A method that only exists from a picamera2 release on: on an older
    fake_control.version, hasattr() says False and calling it is an AttributeError."""

    def __init__(self, version: str):
        self.version = _version_tuple(version)

    def __call__(self, func):
        self.func = func
        return self

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, owner=None):
        if fake_control.version < self.version:
            raise AttributeError(f"'Picamera2' object has no attribute '{self.name}'")
        return self.func if obj is None else self.func.__get__(obj, owner)


_UNSET = object()  # an argument the caller did not pass


def _score_mode(mode: dict, bit_depth: int, output_size: tuple[int, int]) -> float:
    """picamera2's (and libcamera's) sensor mode score: lower is better."""
    mode_w, mode_h = mode["size"]

    def score_format(desired, actual):
        score = desired - actual
        return -score / 4 if score < 0 else score * 2

    score = score_format(output_size[0], mode_w) + score_format(output_size[1], mode_h)
    score += 1500 * score_format(output_size[0] / output_size[1], mode_w / mode_h)
    score += 500 * abs(bit_depth - _bit_depth(mode["format"]))
    return score


class _CameraManager:
    """picamera2's CameraManager bookkeeping (picamera2.py, class CameraManager): which
    Picamera2 object gets the completed requests of each camera (libcamera's number,
    the request's cookie), one entry per camera, shared by every Picamera2 in the process."""

    def __init__(self):
        self._lock = threading.Lock()
        self.cameras: dict[int, "Picamera2"] = {}

    def add(self, index: int, camera: "Picamera2") -> None:
        with self._lock:
            self.cameras[index] = camera

    def cleanup(self, index: int) -> None:
        with self._lock:
            self.cameras.pop(index, None)  # the real one: del self.cameras[index]


class Picamera2:
    """The subset of ``picamera2.Picamera2`` edgecam uses, behaving like the real one."""

    platform = Platform.VC4  # class attribute, as in picamera2; set by fake_control.set_model
    _cm = _CameraManager()  # class attribute, as in picamera2: one for every camera in the process

    # -- discovery / lifetime -------------------------------------------- #

    @staticmethod
    def global_camera_info() -> list[dict]:
        """One dict per attached camera: Model, Location, Rotation, Id, Num.

        As picamera2's: libcamera's properties Model, Location and Rotation (a
        UVC camera has no Rotation), its Id, and Num, its libcamera number, which
        Picamera2(camera_num) looks up by position in this list. As in picamera2
        >= 0.3.13, sorted by Id in reverse, camera modules first and USB cameras
        (libcamera's UVC pipeline, an Id with "/usb") at the back.
        """
        connectors = MODELS[fake_control.model]["connectors"]
        with fake_control._lock:
            slots = [s for s in fake_control.slots if s.attached]
        cameras = []
        for s in slots:
            if s.usb:
                cameras.append({"Model": USB_CAMERA["Model"], "Location": 2,
                                "Id": USB_CAMERA["id"].replace("1.3:", f"1.{3 + s.num}:"), "Num": s.num})
            else:
                # libcamera's Id is the sensor's device-tree node: .../i2c@88000/imx500@1a for an AI Camera.
                sensor = fake_control.sensor_of(s.num)
                cameras.append({"Model": sensor, "Location": 2, "Rotation": SENSORS[sensor]["rotation"],
                                "Id": f"{connectors[s.num]}/{sensor}@{SENSORS[sensor]['address']}", "Num": s.num})
        return sorted(cameras, key=lambda cam: ("/usb" not in cam["Id"], cam["Id"]), reverse=True)

    def __init__(self, camera_num: int = 0, verbose_console=None, tuning=None, allocator=None):
        # Set first: close() (also called from __del__) looks at them.
        self.is_open = False
        self.started = False
        self._thread: threading.Thread | None = None
        cameras = self.global_camera_info()
        if fake_control.version >= (0, 3, 37) and camera_num >= len(cameras):
            raise RuntimeError(f'No camera number {camera_num} found - use "rpicam-hello --list-cameras" to '
                               "check connected cameras")
        # Before 0.3.37 an absent camera is an IndexError from this lookup. camera_num is a
        # position in the sorted list; Num is libcamera's number, the one picamera2 keeps.
        camera_num = cameras[camera_num]["Num"]
        self.camera_idx = camera_num
        early_registration = fake_control.version < (0, 3, 37)
        if early_registration:
            # Before 0.3.37 picamera2 registers with its CameraManager before opening the camera,
            # so a failed open still takes the camera's entry: opening a camera already open in
            # this process "trashes" the open one, whose frames then go to the failed object
            # (picamera2 PR #1402 moved the registration after a successful open).
            Picamera2._cm.add(camera_num, self)
        with fake_control._lock:
            slot = fake_control.slots[camera_num]
            # picamera2 wraps every failure of its init sequence (no camera manager,
            # libcamera's "Initialization failed.", acquire() refused) in one
            # RuntimeError whose __cause__ says what happened.
            cause = slot.open_error
            if cause is None and slot.owner is not None:
                # libcamera's Camera::acquire(): this process has the camera already (-EBUSY).
                _log.error("Camera in %s state trying acquire() requiring state Available",
                           "Running" if slot.owner.started else "Configured" if slot.owner.camera_config
                           else "Acquired")
                cause = RuntimeError("Failed to acquire camera: Device or resource busy")
            elif cause is None and slot.held_externally:
                _log.info("Pipeline handler in use by another process")
                cause = RuntimeError("Failed to acquire camera: Device or resource busy")
            if cause is not None:
                _log.error("Camera __init__ sequence did not complete.")
                raise RuntimeError("Camera __init__ sequence did not complete.") from cause
            slot.owner = self
            slot.opened += 1
        if not early_registration:
            Picamera2._cm.add(camera_num, self)  # 0.3.37: "All is good, now safe to register"
        self._slot = slot
        # picamera2 hands a tuning dict to libcamera through a temporary file named in
        # $LIBCAMERA_RPI_TUNING_FILE; the fake keeps it, and what was set, for tests to see.
        self.tuning = tuning
        self.applied_controls: dict = {}
        slot.tuning = tuning
        self.is_open = True
        self._sensor: str | None = None  # a camera module's; None for a USB camera
        if slot.usb:
            self.sensor_resolution = (1280, 720)
            self.sensor_format = "MJPEG"
            self._raw_modes: list[dict] = []
            self.camera_properties = {"Model": USB_CAMERA["Model"], "PixelArraySize": self.sensor_resolution,
                                      "Location": 2}
        else:
            self._sensor = fake_control.sensor_of(camera_num)
            sensor = SENSORS[self._sensor]
            self._raw_modes = [{"format": fmt, "size": size, "fps": fps, "crop_limits": crop}
                               for fmt, size, fps, crop in sensor["modes"]]
            # picamera2's _select_native_mode: the biggest mode, then the deepest.
            native = max(self._raw_modes, key=lambda m: (m["size"][0] * m["size"][1], _bit_depth(m["format"])))
            self.sensor_resolution = native["size"]
            self.sensor_format = native["format"]
            self.camera_properties = {"Model": self._sensor, "PixelArraySize": sensor["resolution"],
                                      "ColorFilterArrangement": 0, "Location": 2, "Rotation": sensor["rotation"]}
        self._mode: dict | None = None  # the sensor mode of the current configuration
        self.camera_config: dict | None = None
        self.stream_map: dict | None = None
        self.stop_count = 0
        self._cond = threading.Condition()
        self._frame_lock = threading.Lock()
        self._completed: list[CompletedRequest] = []
        self._held: set[CompletedRequest] = set()
        self._given_away = 0  # requests picamera2 < 0.3.37 handed to a failed re-open (see _run)
        self._jobs: list[_Job] = []
        self._stop_evt = threading.Event()
        self._frame_duration_us = 33333
        self._max_queue_len = 1
        self._sequence = 0
        self._rng = np.random.default_rng(1234 + camera_num)

    @property
    def camera_controls(self) -> dict:
        """name -> (min, max, default), as picamera2 reports libcamera's controls for this sensor and mode."""
        if self._slot.usb:
            return {"FrameDurationLimits": (33333, 1000000, None), "Brightness": (-1.0, 1.0, 0.0)}
        main = (self.camera_config or {}).get("main") or {}
        return controls_for(self._sensor, Picamera2.platform == Platform.PISP, self._mode,
                            tuple(main["size"]) if main.get("size") else None)

    @staticmethod
    def load_tuning_file(tuning_file, dir=None) -> dict:
        """As picamera2's: ``dir`` or the platform's folders; RuntimeError("Tuning file not found")."""
        import json

        if dir is not None:
            path = os.path.join(dir, tuning_file)
            if not os.path.isfile(path):
                raise RuntimeError("Tuning file not found")
            with open(path, "r") as fp:
                return json.load(fp)
        if tuning_file not in TUNING_FILES[Picamera2.platform]:
            raise RuntimeError("Tuning file not found")
        platform_dir = "vc4" if Picamera2.platform == Platform.VC4 else "pisp"
        # The content is libcamera's; the fake's stands in with the version-2 layout and where it came from.
        return {"version": 2.0, "target": "bcm2835" if platform_dir == "vc4" else "pisp", "algorithms": [],
                "fake_path": f"/usr/share/libcamera/ipa/rpi/{platform_dir}/{tuning_file}"}

    def __enter__(self) -> "Picamera2":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        # The real class closes itself when garbage-collected, too.
        try:
            self._close(by_gc=True)
        except Exception:
            pass

    def close(self) -> None:
        self._close(by_gc=False)

    def _close(self, by_gc: bool) -> None:
        if not self.is_open:
            return
        self.stop()
        Picamera2._cm.cleanup(self.camera_idx)  # as picamera2's close(): whoever holds the entry
        with fake_control._lock:
            if self._slot.owner is self:
                self._slot.owner = None
            if not by_gc:
                self._slot.closed += 1
        self.is_open = False
        self.camera_config = None
        self.stream_map = None

    # -- configuration ---------------------------------------------------- #

    @staticmethod
    def _make_initial_stream_config(defaults: dict, updates: dict | None) -> dict | None:
        if updates is None:
            return None
        for key, value in updates.items():
            if key not in _STREAM_KEYS:
                raise ValueError(f"Bad key {key!r}: valid stream configuration keys are {_STREAM_KEYS}")
            defaults[key] = value
        return defaults

    def _create(self, use_case, main_defaults, main, lores, raw, transform, colour_space,
                buffer_count, default_controls, controls, display, encode, queue, sensor=_UNSET) -> dict:
        if not self.is_open:
            raise RuntimeError("Camera not opened")
        if sensor is not _UNSET and fake_control.version < (0, 3, 13):
            raise TypeError(f"create_{use_case}_configuration() got an unexpected keyword argument 'sensor'")
        sensor = {} if sensor is _UNSET else sensor
        if self._slot.usb:  # USB cams can't deliver a raw stream
            raw, sensor = None, None
        main = self._make_initial_stream_config(main_defaults, main)
        self.align_stream(main, optimal=False)
        lores = self._make_initial_stream_config(
            {"format": "YUV420", "size": main["size"], "preserve_ar": False}, lores)
        if lores is not None:
            self.align_stream(lores, optimal=False)
        raw = self._make_initial_stream_config({"format": self.sensor_format, "size": main["size"]}, raw)
        config = {"use_case": use_case, "transform": transform or libcamera.Transform(),
                  "colour_space": colour_space, "buffer_count": buffer_count, "queue": queue,
                  "main": main, "lores": lores, "raw": raw,
                  "controls": dict(controls or {}), "sensor": sensor}
        # As picamera2: its defaults only where the camera has both controls (a UVC camera has no
        # NoiseReductionMode).
        if "NoiseReductionMode" in self.camera_controls and "FrameDurationLimits" in self.camera_controls:
            config["controls"] = default_controls | config["controls"]
        for role, stream in (("Display", display), ("Encode", encode)):
            if stream is not None and config.get(stream) is None:
                raise RuntimeError(f"{role} stream {stream} was not defined")
        config["display"], config["encode"] = display, encode
        return config

    def create_video_configuration(self, main={}, lores=None, raw={}, transform=None, colour_space=None,
                                   buffer_count=6, controls={}, display="main", encode="main",
                                   queue=True, sensor=_UNSET, use_case="video") -> dict:
        main_defaults = {"format": "XBGR8888", "size": (1280, 720), "preserve_ar": True}
        config = self._create(use_case, main_defaults, main, lores, raw, transform, colour_space,
                              buffer_count, {"NoiseReductionMode": _NR_FAST,
                                             "FrameDurationLimits": (33333, 33333)},
                              controls, display, encode, queue, sensor)
        if config["colour_space"] is None:
            w, h = config["main"]["size"]
            # picamera2 picks SD video (BT.601) below 1280x720 and HD (BT.709) from there.
            config["colour_space"] = (libcamera.ColorSpace.Smpte170m() if w < 1280 or h < 720
                                      else libcamera.ColorSpace.Rec709())
        return config

    def create_preview_configuration(self, main={}, lores=None, raw={}, transform=None,
                                     colour_space=None, buffer_count=4, controls={}, display="main",
                                     encode="main", queue=True, sensor=_UNSET, use_case="preview") -> dict:
        main_defaults = {"format": "XBGR8888", "size": (640, 480), "preserve_ar": True}
        return self._create(use_case, main_defaults, main, lores, raw, transform,
                            colour_space or libcamera.ColorSpace.Sycc(), buffer_count,
                            {"NoiseReductionMode": _NR_MINIMAL, "FrameDurationLimits": (100, 83333)},
                            controls, display, encode, queue, sensor)

    @property
    def sensor_modes(self) -> list[dict]:
        """The raw modes, as picamera2 lists them. As in picamera2, reading this
        configures the camera once per mode (so configure again afterwards), and
        fails while the camera runs."""
        if self._slot.usb:  # not a raw sensor: only the format names
            return [{"format": "MJPEG"}, {"format": "YUYV"}]
        modes = []
        for mode in self._raw_modes:
            self.configure(self.create_preview_configuration(raw={"format": mode["format"], "size": mode["size"]}))
            modes.append({"format": mode["format"], "unpacked": mode["format"].replace("_CSI2P", ""),
                          "bit_depth": _bit_depth(mode["format"]), "size": mode["size"], "fps": mode["fps"],
                          "crop_limits": mode["crop_limits"], "exposure_limits": (75, 11766829, None)})
        return modes

    @staticmethod
    def align_stream(stream_config: dict, optimal: bool = True) -> None:
        """Round the size down: to even numbers, or (optimal) to the ISP's best width."""
        if optimal:
            align = 32 if Picamera2.platform == Platform.VC4 else 64
            if stream_config["format"] in ("YUV420", "YVU420"):
                align *= 2  # the chroma planes have half the width
            elif stream_config["format"] in ("XBGR8888", "XRGB8888"):
                align //= 2
        else:
            align = 2
        w, h = stream_config["size"]
        stream_config["size"] = (w - w % align, h - h % 2)

    @staticmethod
    def align_configuration(config: dict, optimal: bool = True) -> None:
        Picamera2.align_stream(config["main"], optimal=optimal)
        if config.get("lores") is not None:
            Picamera2.align_stream(config["lores"], optimal=optimal)

    @staticmethod
    def _check_stream_config(stream: dict, name: str) -> None:
        if type(stream) is not dict:
            raise RuntimeError(name + " stream should be a dictionary")
        for key in ("format", "size"):
            if key not in stream:
                raise RuntimeError(f"{key} not found in {name} stream")
        fmt = stream["format"]
        if type(fmt) is not str:
            raise RuntimeError("format in " + name + " stream should be a string")
        if name != "raw" and fmt not in _YUV_FORMATS | _RGB_FORMATS:
            raise RuntimeError("Bad format " + fmt + " in stream " + name)
        size = stream["size"]
        if type(size) is not tuple or len(size) != 2:
            raise RuntimeError("size in " + name + " stream should be (width, height)")
        if size[0] % 2 or size[1] % 2:
            raise RuntimeError("width and height should be even")

    def _check_camera_config(self, config: dict) -> None:
        for key in ("colour_space", "transform", "main", "lores", "raw"):
            if key not in config:
                raise RuntimeError(f"{key!r} key expected in camera configuration")
        if not isinstance(config["colour_space"], libcamera.ColorSpace):
            raise RuntimeError("Colour space has incorrect type")
        if not isinstance(config["transform"], libcamera.Transform):
            raise RuntimeError("Transform has incorrect type")
        self._check_stream_config(config["main"], "main")
        if config["lores"] is not None:
            self._check_stream_config(config["lores"], "lores")
            (mw, mh), (lw, lh) = config["main"]["size"], config["lores"]["size"]
            if lw > mw or lh > mh:
                raise RuntimeError("lores stream dimensions may not exceed main stream")
            if Picamera2.platform == Platform.VC4 and config["lores"]["format"] not in _YUV_FORMATS:
                raise RuntimeError("lores stream must be YUV")
        if config["raw"] is not None:
            self._check_stream_config(config["raw"], "raw")

    def _apply_controls(self, controls: dict) -> None:
        for name, value in controls.items():
            if name == "FrameRate":  # picamera2's virtual control
                rates = value if isinstance(value, (tuple, list)) else (value, value)
                name, value = "FrameDurationLimits", (int(1e6 / rates[1]), int(1e6 / rates[0]))
            if name not in self.camera_controls:  # picamera2 controls.py, Controls.__setattr__
                raise RuntimeError(f"Control {name} is not advertised by libcamera")
            self.applied_controls[name] = value
            if name == "FrameDurationLimits":
                # Run as fast as the limits allow (a fake sensor has no exposure to wait for).
                self._frame_duration_us = max(int(value[0]), 1000)

    def configure(self, camera_config=None) -> None:
        """Validate and apply a configuration; fills in each stream's stride."""
        if self.started:
            raise RuntimeError("Camera must be stopped before configuring")
        if camera_config is None or camera_config == "preview":
            camera_config = self.create_preview_configuration()
        elif camera_config == "video":
            camera_config = self.create_video_configuration()
        elif isinstance(camera_config, dict):
            camera_config = camera_config.copy()  # shallow, like the real one
        else:
            raise NotImplementedError(f"fake picamera2: cannot configure from {type(camera_config)}")
        self.camera_config = None
        self.stream_map = None
        if self._slot.usb:
            camera_config["raw"] = None  # as picamera2: never a raw stream from a USB camera
        self._check_camera_config(camera_config)
        if camera_config.get("sensor") is not None:
            bad_keys = set(camera_config["sensor"]).difference({"bit_depth", "output_size"})
            if bad_keys:
                raise RuntimeError(f"Unexpected keys {bad_keys} in sensor configuration")
        if self._slot.usb and camera_config["lores"] is not None:
            # libcamera's UVC pipeline has one stream: there is no second one to
            # configure (in the real bindings an out-of-range at(1); it fails).
            raise RuntimeError(f"Configuration failed: {camera_config}")
        self.applied_controls = {}  # a configuration replaces the controls (picamera2: Controls(self, ...))
        self._apply_controls(camera_config.get("controls") or {})
        adjusted = False
        if self._slot.usb:
            if camera_config["main"]["format"] != "YUYV":
                camera_config["main"] = dict(camera_config["main"], format="YUYV")  # all UVC gives uncompressed
                adjusted = True
            self._mode = None
        else:
            self._mode = self._pick_mode(camera_config)
            camera_config["sensor"] = {"bit_depth": _bit_depth(self._mode["format"]),
                                       "output_size": self._mode["size"]}
        for name in ("main", "lores"):
            stream = camera_config[name]
            if stream is None:
                continue
            fmt = stream["format"]
            if fmt not in _BYTES_PER_PIXEL:
                raise NotImplementedError(f"fake picamera2: format {fmt} is not modelled")
            size = tuple(stream["size"])
            adjust = fake_control._adjust_for(self._slot.num)
            if adjust is not None:  # libcamera's validate() may move sizes
                new = tuple(int(v) for v in adjust(name, fmt, size))
                adjusted |= new != size
                size = new
            w, h = size
            stride = stream.get("stride") or _align_up(w * _BYTES_PER_PIXEL[fmt],
                                                       _STRIDE_ALIGN[Picamera2.platform][fmt])
            stream["size"] = size
            stream["stride"] = stride
            stream["framesize"] = stride * h * 3 // 2 if fmt in ("YUV420", "YVU420") else stride * h
        if adjusted:
            _log.info("Camera configuration has been adjusted!")
        self._max_queue_len = 1 if camera_config["queue"] and camera_config["buffer_count"] > 1 else 0
        self.stream_map = {"main": "main", "lores": "lores" if camera_config["lores"] else None,
                           "raw": None}  # raw frames are not modelled
        self.camera_config = camera_config
        self._slot.controls = self.applied_controls  # the same dict: set_controls() adds to it
        self._slot.transform = {"hflip": bool(camera_config["transform"].hflip),
                                "vflip": bool(camera_config["transform"].vflip)}

    def _pick_mode(self, camera_config: dict) -> dict:
        """The sensor mode for a configuration, chosen as picamera2's _make_libcamera_config
        does: sensor={'output_size', 'bit_depth'} if given, else the raw stream's, else
        main's size (so a 640x480 main picks the sensor's 640x480-ish mode, cropped or not)."""
        sensor = camera_config.get("sensor") or {}
        raw = camera_config.get("raw")
        if sensor.get("bit_depth") is not None:
            bit_depth = sensor["bit_depth"]
        elif raw is not None and "format" in raw:
            bit_depth = _bit_depth(raw["format"])
        else:
            bit_depth = _bit_depth(self.sensor_format)
        if sensor.get("output_size") is not None:
            output_size = tuple(sensor["output_size"])
        elif raw is not None and "size" in raw:
            output_size = tuple(raw["size"])
        else:
            output_size = tuple(camera_config["main"]["size"])
        return min(self._raw_modes, key=lambda mode: _score_mode(mode, bit_depth, output_size))

    def camera_configuration(self) -> dict | None:
        return self.camera_config

    def stream_configuration(self, name: str = "main") -> dict:
        return self.camera_config[name]

    def set_controls(self, controls: dict) -> None:
        self._apply_controls(controls)

    # -- running ------------------------------------------------------------ #

    def start(self, config=None, show_preview=False) -> None:
        if self.camera_config is None and config is None:
            config = "preview"
        if config is not None:
            self.configure(config)
        if self.camera_config is None:
            raise RuntimeError("Camera has not been configured")
        if self.started:
            return
        self._stop_evt.clear()
        self._given_away = 0  # picamera2 makes new requests for every buffer at each start
        self.started = True
        self._thread = threading.Thread(target=self._run, name=f"fake-picamera2-{self.camera_idx}",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if not self.started:
            return
        self._stop_evt.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._thread = None
        with self._cond:
            self.started = False
            self.stop_count += 1
            self._completed.clear()  # queued frames are dropped; held ones stay valid

    @_Since("0.3.20")
    def cancel_all_and_flush(self) -> None:
        """Fail every pending capture with CancelledError (tidy-up after a timeout).
        Only from picamera2 0.3.20 on."""
        with self._cond:
            jobs, self._jobs = self._jobs, []
        for job in jobs:
            if not job.future.done():
                job.future.set_exception(CancelledError())

    def _free_buffers(self) -> int:
        return self.camera_config["buffer_count"] - len(self._held) - len(self._completed) - self._given_away

    def _run(self) -> None:
        """The sensor: one frame per frame duration while a buffer is free."""
        next_t = time.monotonic()
        while True:
            next_t += self._frame_duration_us / 1e6
            delay = next_t - time.monotonic()
            if delay > 0:
                if self._stop_evt.wait(delay):
                    return
            else:
                next_t = time.monotonic()  # fell behind: skip, don't burst
                if self._stop_evt.is_set():
                    return
            # One frame from the stall check to its delivery under _frame_lock, so that
            # fake_control.stall() returns only once no frame is in flight.
            with self._frame_lock:
                if self._slot.stalled.is_set() or _stalled_from_outside():
                    continue
                with self._cond:
                    if self._free_buffers() <= 0:
                        continue  # the application holds every buffer: this frame is lost
                request = self._capture_frame()
                with self._cond:
                    if self._stop_evt.is_set():
                        return
                    self._slot.frames_produced += 1
                    if Picamera2._cm.cameras.get(self.camera_idx) is not self:
                        # picamera2's CameraManager.handle_request hands the request to whoever
                        # holds this camera's entry: before 0.3.37 a failed re-open does, which
                        # never reads nor releases it. This camera sees no frame again (until it
                        # is closed) and each one given away keeps a buffer (until the next start).
                        self._given_away += 1
                        continue
                    self._completed.append(request)
                    # Pending captures take the oldest completed frame, as in picamera2.
                    while self._jobs and self._completed:
                        job, req = self._jobs.pop(0), self._completed.pop(0)
                        self._held.add(req)
                        job.future.set_result(req)
                    while len(self._completed) > self._max_queue_len:
                        self._completed.pop(0)  # recycled to the camera

    def _capture_frame(self) -> CompletedRequest:
        picture = full_picture = fake_control.picture(self._sequence, self._slot.num)
        if self._mode is not None:
            # The picture is what the whole pixel array sees; a cropped mode reads
            # only its crop_limits, which the ISP then scales to each stream.
            full_w, full_h = SENSORS[self._sensor]["resolution"]
            x, y, w, h = self._mode["crop_limits"]
            ph, pw = picture.shape[:2]
            x0, x1 = round(x * pw / full_w), round((x + w) * pw / full_w)
            y0, y1 = round(y * ph / full_h), round((y + h) * ph / full_h)
            if (x0, y0, x1, y1) != (0, 0, pw, ph):
                picture = picture[y0:y1, x0:x1]
        transform = self.camera_config["transform"]
        if transform.hflip:
            picture = picture[:, ::-1]
        if transform.vflip:
            picture = picture[::-1]
        buffers = {}
        for name in ("main", "lores"):
            cfg = self.camera_config[name]
            if cfg is None:
                continue
            w, h = cfg["size"]
            scaled = picture if picture.shape[:2] == (h, w) else cv2.resize(
                np.ascontiguousarray(picture), (w, h), interpolation=cv2.INTER_AREA)
            buffers[name] = _encode(np.ascontiguousarray(scaled), cfg,
                                    self.camera_config["colour_space"], self._rng)
        # libcamera stamps frames with the kernel's V4L2 buffer time: CLOCK_MONOTONIC
        # (picamera2's flush compares SensorTimestamp with time.monotonic_ns()).
        now_ns = time.monotonic_ns()
        metadata = {"SensorTimestamp": now_ns, "FrameDuration": self._frame_duration_us,
                    "ExposureTime": min(self._frame_duration_us - 100, 20000), "AnalogueGain": 1.0,
                    "DigitalGain": 1.0, "Lux": 400.0}
        if fake_control.sensor_metadata is not None:  # a sensor that computes (the AI Camera's network)
            metadata.update(fake_control.sensor_metadata(self, full_picture))
        self._sequence += 1
        return CompletedRequest(self, buffers, metadata)

    def _recycle(self, request: CompletedRequest) -> None:
        with self._cond:
            self._held.discard(request)

    # -- capturing ----------------------------------------------------------- #

    def capture_request(self, wait=None, signal_function=None, flush=None) -> CompletedRequest:
        """The next completed request; the caller must release() it.

        ``wait``: None/True blocks, a number is a timeout in seconds that raises
        TimeoutError. As in picamera2, a capture that timed out stays queued and
        will swallow (and never release) a later frame unless the caller runs
        cancel_all_and_flush().
        """
        if signal_function is not None or wait is False or flush:
            raise NotImplementedError("fake picamera2: only blocking captures are modelled")
        exc, self._slot.fail_next = self._slot.fail_next, None
        if exc is not None:
            raise exc
        job = _Job()
        with self._cond:
            if not self._jobs and self._completed:
                req = self._completed.pop(0)
                self._held.add(req)
                return req
            self._jobs.append(job)
            self._cond.notify_all()  # fake_control.wait_for_blocked_capture()
        # picamera2's dispatch_functions: `if timeout is True: timeout = None`, an identity test, so a
        # timeout of 1 or 1.0 s (equal to True) is a timeout, not "wait for ever".
        timeout = None if wait is None or wait is True else float(wait)
        if fake_control.version < (0, 3, 20):
            timeout = None  # before 0.3.20 picamera2 waited for ever whatever the number
        if timeout is None:
            try:
                return job.future.result(timeout=fake_control.hang_guard_s)
            except TimeoutError:
                raise RuntimeError(
                    f"fake picamera2: capture blocked for {fake_control.hang_guard_s} s without a "
                    "timeout; the real picamera2 would block forever") from None
        return job.future.result(timeout=timeout)  # TimeoutError / CancelledError

    def capture_array(self, name: str = "main", wait=None, signal_function=None) -> np.ndarray:
        request = self.capture_request(wait=wait, signal_function=signal_function)
        try:
            return request.make_array(name)
        finally:
            request.release()

    def capture_metadata(self, wait=None, signal_function=None) -> dict:
        request = self.capture_request(wait=wait, signal_function=signal_function)
        try:
            return request.get_metadata()
        finally:
            request.release()


fake_control = FakeControl()

if os.environ.get(REPORT_ENV):
    import atexit

    atexit.register(_write_report, os.environ[REPORT_ENV])

__all__ = ["CompletedRequest", "FakeControl", "MODEL_ENV", "PICTURES_ENV", "REPORT_ENV", "Picamera2", "fake_control"]
