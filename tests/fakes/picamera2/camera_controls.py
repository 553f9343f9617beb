"""Which controls libcamera's Raspberry Pi IPA advertises, per sensor and mode: ``Picamera2.camera_controls``.

From raspberrypi/libcamera (26bfadc) src/ipa/rpi/common/ipa_base.cpp: ``ipaControls``
(lines 52-92) for every sensor, ``ipaColourControls`` for colour ones, and
``ipaAfControls`` (lines 106-116) only when the sensor has a lens driver
(``lensPresent_``): of the fake's sensors only the imx708 (Camera Module 3).
At configure time (``IpaBase::configure``, lines 257-290) FrameDurationLimits
takes the mode's limits and LensPosition the tuning's lens map (imx708.json:
0 to 15 dioptres, default 1); the pipeline sets ScalerCrop to (the ISP's
minimum crop, the mode's analogue crop, the crop main shows: the mode's output
bounded to main's aspect ratio, centred; pipeline_base.cpp lines 577-582,
pisp.cpp 1573-1574, vc4.cpp 749-750). picamera2's ``camera_controls`` gives
each as (min, max, default), Rectangles as (x, y, w, h) tuples.
"""

from __future__ import annotations

_ALL = {  # ipaControls: (min, max, default); enums as their first and last values
    "AeEnable": (False, True, True), "ExposureTimeMode": (0, 1, 0), "ExposureTime": (1, 66666, 20000),
    "AnalogueGainMode": (0, 1, 0), "AnalogueGain": (1.0, 16.0, 1.0), "AeMeteringMode": (0, 3, 0),
    "AeConstraintMode": (0, 3, 0), "AeExposureMode": (0, 3, 0), "ExposureValue": (-8.0, 8.0, 0.0),
    "AeFlickerMode": (0, 1, 0), "AeFlickerPeriod": (100, 1000000, None), "Brightness": (-1.0, 1.0, 0.0),
    "Contrast": (0.0, 32.0, 1.0), "HdrMode": (0, 4, 0), "Sharpness": (0.0, 16.0, 1.0),
    "ScalerCrop": ((0, 0, 0, 0), (65535, 65535, 65535, 65535), (0, 0, 0, 0)),
    "FrameDurationLimits": (33333, 250000000, (33333, 33333)), "NoiseReductionMode": (0, 4, 0),
    "StatsOutputEnable": (False, True, False), "CnnEnableInputTensor": (False, True, False),
    "SyncMode": (0, 1, 0), "SyncFrames": (100, 100000, 1000),
}
_COLOUR = {  # ipaColourControls
    "AwbEnable": (False, True, None), "AwbMode": (0, 7, 0), "ColourGains": (0.0, 32.0, None),
    "ColourCorrectionMatrix": (0.0, 8.0, None), "ColourTemperature": (100, 100000, None),
    "Saturation": (0.0, 32.0, 1.0),
}
_AF = {  # ipaAfControls
    "AfMode": (0, 2, 0), "AfRange": (0, 2, 0), "AfSpeed": (0, 1, 0), "AfMetering": (0, 1, 0),
    "AfWindows": ((0, 0, 0, 0), (65535, 65535, 65535, 65535), ((0, 0, 0, 0),)), "AfTrigger": (0, 1, 0),
    "AfPause": (0, 2, 0), "LensPosition": (0.0, 32.0, 1.0),
}
#: Sensors with a focus motor the kernel drives (Camera Module 3's dw9807 VCM).
LENS = {"imx708": (0.0, 15.0, 1.0)}  # the tuning's lens map: (min, max, default) dioptres
#: The longest frame (us) each sensor allows, so the longest exposure: the Raspberry
#: Pi camera documentation's maximum exposure times (approximate).
MAX_FRAME_US = {"imx219": 11_760_000, "imx708": 112_000_000, "imx477": 670_740_000, "imx500": 10_000_000}


def _bounded_to_aspect(size: tuple[int, int], ratio: tuple[int, int]) -> tuple[int, int]:
    """libcamera's Size::boundedToAspectRatio (geometry.cpp)."""
    w, h = size
    r1, r2 = w * ratio[1], ratio[0] * h
    return (r2 // ratio[1], h) if r1 > r2 else (w, r1 // ratio[0])


def controls_for(sensor: str, pisp: bool, mode: dict | None, main_size: tuple[int, int] | None) -> dict:
    """``camera_controls`` of a ``sensor`` camera, configured in ``mode`` with that main size (None: not yet)."""
    out = dict(_ALL, **_COLOUR)
    if pisp:
        out["ScalerCrops"] = out["ScalerCrop"]  # platformControls["pisp"]
    if sensor in LENS:
        out.update(_AF, LensPosition=LENS[sensor])
    if mode is not None:
        min_us = int(1e6 / mode["fps"])
        out["FrameDurationLimits"] = (min_us, MAX_FRAME_US.get(sensor, 10_000_000), (min_us, min_us))
        cx, cy, cw, ch = mode["crop_limits"]  # the analogue crop, in pixel-array coordinates
        ow, oh = mode["size"]
        shown = _bounded_to_aspect((ow, oh), main_size or (ow, oh))
        w, h = shown[0] * cw // ow, shown[1] * ch // oh  # scaled back to native pixels
        default = (cx + (cw - w) // 2, cy + (ch - h) // 2, w, h)
        out["ScalerCrop"] = ((0, 0, 64 * cw // ow, 64 * ch // oh), (cx, cy, cw, ch), default)
    return out
