"""The Pi camera's controls from ``source:`` (focus, flips, exposure, tuning file), for picamera2.

Every name and value here is libcamera's or picamera2's, checked against their
source (libcamera at raspberrypi/libcamera 26bfadc, picamera2 0.3.36):

* The controls a camera has are the keys of ``Picamera2.camera_controls``
  (``camera_ctrl_info``). Setting one that is not there raises
  ``RuntimeError("Control X is not advertised by libcamera")`` (picamera2
  controls.py, ``Controls.__setattr__``), so each is checked here first and a
  missing one is a one-line SourceError naming the ``source:`` key.
* The Raspberry Pi IPA advertises the AF controls (AfMode, AfRange, AfSpeed,
  AfMetering, AfWindows, AfTrigger, AfPause, LensPosition) only when the sensor
  has a lens driver (``ipaAfControls``, merged ``if (lensPresent_)`` in
  src/ipa/rpi/common/ipa_base.cpp lines 106-116 and 175-177): Camera Module 3
  (imx708) has them, Camera v2 (imx219), the HQ camera (imx477) and the AI
  Camera (imx500) do not. AeExposureMode and FrameDurationLimits are there for
  every sensor (``ipaControls``, lines 52-92).
* AF starts in manual mode with the lens at the tuning's default position (about
  1 m on the imx708): AfModeManual is "the recommended default value"
  (src/libcamera/control_ids_core.yaml, AfMode, line 793), and picamera2 sets
  AfMode only in ``autofocus_cycle()``. Hence ``focus: auto`` asks for
  continuous AF where the camera has it.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import Any

from edgecam.errors import SourceError

logger = logging.getLogger(__name__)

# Enum values, src/libcamera/control_ids_core.yaml (libcamera's Python binding
# takes them as ints: py_helpers.cpp, pyToControlValue, ControlTypeInteger32).
AF_MODE = {"manual": 0, "continuous": 2}  # AfModeManual 0, AfModeAuto 1 (one scan per AfTrigger), AfModeContinuous 2
AF_RANGE = {"normal": 0, "macro": 1, "full": 2}  # AfRange, line 858; the rpi IPA maps all three (ipa_base.cpp AfRangeTable)
AF_METERING_WINDOWS = 1  # AfMetering, line 905: AfMeteringAuto 0, AfMeteringWindows 1
# AeExposureMode, line 160; the rpi IPA looks each up by name in the tuning's AGC
# "exposure_modes" (ipa_base.cpp ExposureModeTable: "normal", "short", "long").
AE_EXPOSURE_MODE = {"normal": 0, "short": 1, "long": 2}
# A tuning file named after a sensor: imx708_noir.json, ov5647.json, se327m12.json...
_SENSOR_FILE = re.compile(r"^((?:imx|ov|se|vd)\d+)")


@dataclass(frozen=True)
class CameraControls:
    """What ``source:`` asks of a Pi camera beyond size and frame rate (docs/camera.md).

    ``focus_box`` is the ``focus_region``'s box, [x0, y0, x1, y1] as fractions
    of the picture (the config resolves the name).
    """

    focus: str = "auto"  # auto | continuous | manual
    lens_position: float | None = None  # dioptres (1 / metres), with focus: manual
    focus_range: str | None = None  # normal | macro | full; None: libcamera's (normal)
    focus_region: str | None = None
    focus_box: tuple[float, float, float, float] | None = None
    hflip: bool = False
    vflip: bool = False
    exposure: str = "normal"  # normal | short | long
    max_exposure_ms: float | None = None
    tuning_file: str | None = None

    @classmethod
    def from_config(cls, cfg) -> "CameraControls":
        """From a :class:`edgecam.config.schema.SourceConfig` (rotation 180 is both flips; a key it lacks: the default)."""
        def get(name: str, default=None):
            return getattr(cfg, name, default)

        turned = get("rotation", 0) == 180
        box = get("focus_box")
        return cls(focus=get("focus", "auto"), lens_position=get("lens_position"), focus_range=get("focus_range"),
                   focus_region=get("focus_region"), focus_box=tuple(box) if box else None,
                   hflip=bool(get("hflip", False)) != turned, vflip=bool(get("vflip", False)) != turned,
                   exposure=get("exposure", "normal"), max_exposure_ms=get("max_exposure_ms"),
                   tuning_file=get("tuning_file"))

    # -- before the camera opens ------------------------------------------------- #

    def tuning(self, picamera2_cls, sensor: str, where: str) -> dict | None:
        """The tuning for ``Picamera2(camera_num, tuning=...)``, loaded as picamera2 does; None: libcamera's own.

        A bare name is looked up by ``Picamera2.load_tuning_file(name)`` in the
        platform's folders (~/libcamera/src/ipa/rpi/{vc4,pisp}/data,
        /usr/local/share/libcamera/ipa/rpi/..., /usr/share/libcamera/ipa/rpi/...;
        picamera2.py ``load_tuning_file``); a path is read from its folder.
        """
        name = self.tuning_file
        if not name:
            return None
        if "/" not in name:
            theirs, ours = _SENSOR_FILE.match(name), _SENSOR_FILE.match(sensor or "")
            if theirs and ours and theirs.group(1) != ours.group(1):
                raise SourceError(f"{where}: source.tuning_file {name} is for the {theirs.group(1)} sensor, and this "
                                  f"camera is a {sensor}; name one of its files, e.g. {ours.group(1)}_noir.json")
        directory = os.path.dirname(name) or None
        try:
            return picamera2_cls.load_tuning_file(os.path.basename(name), dir=directory)
        except RuntimeError as exc:  # "Tuning file not found"
            hint = ("check the path" if directory else
                    "the names are those in /usr/share/libcamera/ipa/rpi/pisp (Pi 5) or .../vc4 (older Pis)")
            raise SourceError(f"{where}: source.tuning_file {name}: {exc}; {hint}") from exc
        except (OSError, ValueError) as exc:  # unreadable, or not JSON
            raise SourceError(f"{where}: source.tuning_file {name} cannot be read as a tuning file ({exc}); "
                              "name a file from /usr/share/libcamera/ipa/rpi") from exc

    def transform(self, libcamera) -> Any:
        """The flips as a ``libcamera.Transform`` for the configuration (the sensor flips for free)."""
        return libcamera.Transform(hflip=int(self.hflip), vflip=int(self.vflip))

    # -- the configuration's controls -------------------------------------------- #

    def controls(self, available: dict, fps: float, where: str, sensor: str) -> dict:
        """The ``controls`` of the configuration; SourceError for one the camera lacks."""
        def lacks(key: str, control: str, what: str) -> SourceError:
            return SourceError(f"{where}: source.{key}: this camera ({sensor}) has no {what}: libcamera lists no "
                               f"{control} control for it; remove source.{key}")

        out: dict[str, Any] = {"FrameRate": fps}
        if self.max_exposure_ms is not None:
            # FrameDurationLimits (min, max) in us: its maximum bounds the exposure the AGC may
            # choose, letting the frame rate fall below fps in the dark (control_ids_core.yaml line 728).
            # The mode's own limit is known once configured: after_configure() checks it.
            fastest = int(1e6 / fps)
            out = {"FrameDurationLimits": (fastest, max(fastest, int(self.max_exposure_ms * 1000)))}
        if self.exposure != "normal":
            if "AeExposureMode" not in available:
                raise lacks("exposure", "AeExposureMode", "exposure modes")
            out["AeExposureMode"] = AE_EXPOSURE_MODE[self.exposure]
        has_af = "AfMode" in available
        if not has_af:
            if self.focus != "auto":
                raise lacks("focus", "AfMode", "focus motor (its lens is focused by hand)")
            for key, value in (("focus_range", self.focus_range), ("focus_region", self.focus_region)):
                if value is not None:
                    raise lacks(key, "AfRange" if key == "focus_range" else "AfWindows", "autofocus")
            return out
        if self.focus == "manual":
            out["AfMode"] = AF_MODE["manual"]
            if self.lens_position is not None:
                top = (available.get("LensPosition") or (0, 32.0, 1.0))[1]
                if top is not None and self.lens_position > top:
                    raise SourceError(f"{where}: source.lens_position: {self.lens_position:g} dioptres is closer "
                                      f"than this lens focuses (at most {top:g}, {100 / top:.0f} cm)")
                out["LensPosition"] = float(self.lens_position)
        else:  # auto and continuous: continuous AF, as rpicam-hello defaults to
            out["AfMode"] = AF_MODE["continuous"]
        if self.focus_range is not None:
            out["AfRange"] = AF_RANGE[self.focus_range]
        return out

    def after_configure(self, available: dict, where: str, sensor: str) -> dict:
        """Checks and controls that need the configured mode (``available``: its camera_controls).

        The longest frame the mode allows is FrameDurationLimits' maximum there
        (ipa_base.cpp ``IpaBase::configure``: the mode's maxFrameDuration); beyond
        it libcamera would clip silently.
        """
        if self.max_exposure_ms is not None:
            limit = (available.get("FrameDurationLimits") or (None, None, None))[1]
            if limit and self.max_exposure_ms * 1000 > limit:
                raise SourceError(f"{where}: source.max_exposure_ms: {self.max_exposure_ms:g} is longer than this "
                                  f"camera ({sensor}) can expose in this mode ({limit / 1000:g} ms); set at most that")
        return self.windows(available)

    def windows(self, available: dict) -> dict:
        """AfMetering=Windows and AfWindows on ``focus_box``, once the mode is known; {} without one.

        AfWindows are in the sensor's pixel-array coordinates, those of ScalerCrop
        (control_ids_core.yaml, AfWindows line 922; the IPA intersects them with
        its statistics region in those units, src/ipa/rpi/controller/rpi/af.cpp
        ``computeWeights``). What the main stream shows is the ScalerCrop default
        of this configuration (the ISP's crop of the mode to main's aspect ratio:
        pipeline_base.cpp, ``ctrlMap[&controls::ScalerCrop]``), so the region's
        fractions of the picture map into that rectangle.
        """
        if self.focus_box is None or "AfWindows" not in available:
            return {}
        crop = visible_crop(available)
        if crop is None:
            logger.warning("the camera reports no ScalerCrop; focusing on the middle, not on %s", self.focus_region)
            return {}
        x, y, w, h = crop
        x0, y0, x1, y1 = self.focus_box
        window = (x + round(x0 * w), y + round(y0 * h), max(1, round((x1 - x0) * w)), max(1, round((y1 - y0) * h)))
        return {"AfMetering": AF_METERING_WINDOWS, "AfWindows": [window]}

    def describe(self, available: dict) -> str:
        """One line for the log: what was asked of the camera."""
        parts = []
        if "AfMode" in available:
            if self.focus == "manual":
                parts.append("focus manual" + (f" {self.lens_position:g} dioptres" if self.lens_position is not None
                                               else " (the lens's default position)"))
            else:
                parts.append("continuous autofocus")
            if self.focus_range:
                parts.append(f"range {self.focus_range}")
            if self.focus_region:
                parts.append(f"on region {self.focus_region}")
        else:
            parts.append("fixed focus")
        if self.hflip or self.vflip:
            parts.append("flipped " + "+".join(n for n, f in (("h", self.hflip), ("v", self.vflip)) if f))
        if self.exposure != "normal":
            parts.append(f"exposure {self.exposure}")
        if self.max_exposure_ms is not None:
            parts.append(f"exposure up to {self.max_exposure_ms:g} ms")
        if self.tuning_file:
            parts.append(f"tuning {self.tuning_file}")
        return ", ".join(parts)


def visible_crop(available: dict) -> tuple[int, int, int, int] | None:
    """The sensor rectangle the main stream shows: ScalerCrop's default (x, y, w, h), or None."""
    info = available.get("ScalerCrop")
    default = info[2] if info and len(info) > 2 else None
    if not default or len(default) != 4 or not default[2] or not default[3]:
        return None
    return tuple(int(v) for v in default)


def field_of_view(available: dict, pixel_array: tuple[int, int] | None) -> tuple[float, float] | None:
    """The fractions (of width, of height) of the sensor's pixel array the main stream shows."""
    crop = visible_crop(available)
    if crop is None or not pixel_array or not pixel_array[0] or not pixel_array[1]:
        return None
    return min(1.0, crop[2] / pixel_array[0]), min(1.0, crop[3] / pixel_array[1])
