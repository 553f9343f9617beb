"""The AI Camera's picamera2 source: frames that carry the sensor's own classification.

Apart from :mod:`edgecam.model.backends.imx500` so that reading the backend's
declaration (every run does, for ``auto`` and ``doctor``) does not load the
picamera2 source.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from edgecam.camera.picamera2_controls import CameraControls
from edgecam.camera.picamera2_source import Picamera2Source
from edgecam.errors import RuntimeMissingError, SourceError

logger = logging.getLogger("edgecam.model.backends.imx500")

FW_NETWORK_STAGE = 2  # picamera2's stage number of the network upload
UPLOAD_TIMEOUT_S = 900.0  # Raspberry Pi: a first upload "may take several minutes"
EXTEND_S = 60  # each EXTEND_TIMEOUT_USEC gives the service this much more time


@dataclass(frozen=True)
class SensorResult:
    """What the AI Camera's network computed for one frame: raw scores and the sensor's own times (ms)."""

    scores: np.ndarray
    dnn_ms: float | None = None
    dsp_ms: float | None = None


class Imx500Source(Picamera2Source):
    """edgecam's picamera2 source on the AI Camera: frames carry the sensor's :class:`SensorResult`."""

    def __init__(self, imx500, source_cfg, notifier=None, upload_timeout_s: float = UPLOAD_TIMEOUT_S):
        self.imx500 = imx500
        intrinsics = imx500.network_intrinsics
        self.tensorless = 0
        self._skew: str | None = None
        import picamera2  # an optional dependency (apt's python3-picamera2, on a Pi only)

        cameras = picamera2.Picamera2.global_camera_info()
        modules = [c["Num"] for c in cameras if "/usb" not in str(c.get("Id", ""))]
        fps = float(intrinsics.inference_rate or source_cfg.fps) if intrinsics else source_cfg.fps
        super().__init__(size=(source_cfg.width, source_cfg.height), fps=fps, lores_size=None,
                         camera_num=modules.index(imx500.camera_num) if imx500.camera_num in modules else 0,
                         timeout_s=source_cfg.timeout_s, controls=CameraControls.from_config(source_cfg))
        self.name = f"imx500:{imx500.camera_num}"
        if intrinsics is not None and intrinsics.preserve_aspect_ratio:
            imx500.set_auto_aspect_ratio()  # the inference crop: the square middle of the sensor
        try:
            self._first = self._wait_for_network(notifier, upload_timeout_s)
        except BaseException:
            self.close()
            raise

    def _sensor_result(self, metadata: dict):
        try:
            outputs = self.imx500.get_outputs(metadata)
        except ValueError as e:  # "tensor info length 708 does not match expected size 712"
            raise RuntimeMissingError(
                f"AI Camera: picamera2 cannot read the sensor's output ({e}): libcamera and picamera2 do not "
                "match; update both: sudo apt update && sudo apt full-upgrade") from None
        if outputs is None:
            return None
        kpi = self.imx500.get_kpi_info(metadata)
        return SensorResult(np.asarray(outputs[0]).reshape(-1), *(kpi if kpi else (None, None)))

    def _wait_for_network(self, notifier, timeout_s: float):
        """Read frames until one carries a tensor (the first upload takes minutes); return it."""
        t0 = last = time.monotonic()
        said = False
        while True:
            frame = self.read()
            if frame is None:
                raise SourceError(f"{self.name}: the camera closed while the network was loading")
            if frame.sensor_result is not None:
                if said:
                    logger.info("%s: the network is running on the sensor (%.0f s)", self.name, time.monotonic() - t0)
                return frame
            self.tensorless += 1
            now = time.monotonic()
            if now - t0 > timeout_s:
                raise SourceError(f"{self.name}: no result from the sensor's network in {timeout_s:.0f} s; check "
                                  "'rpicam-hello -t 0 --post-process-file /usr/share/rpi-camera-assets/"
                                  "imx500_mobilenet_ssd.json', else power the Pi off and on")
            if not said or now - last >= 5.0:
                status = f"AI Camera: uploading the network to the sensor{self._progress()} (the first time takes minutes)"
                if not said:
                    logger.info("%s", status)
                said, last = True, now
                if notifier is not None:
                    notifier.notify(f"EXTEND_TIMEOUT_USEC={EXTEND_S * 1_000_000}\nSTATUS={status}")

    def _progress(self) -> str:
        try:
            if int(self.imx500.fw_progress) == 0:  # FwProgressType.NONE: debugfs not readable
                return ""
            done, total = self.imx500.get_fw_upload_progress(FW_NETWORK_STAGE)
        except Exception as e:  # the progress files are a nicety, never a failure
            logger.debug("AI Camera upload progress: %s", e)
            return ""
        return f": {100 * done // total}%" if total else ""

    def read(self):
        first, self._first = getattr(self, "_first", None), None
        return first if first is not None else super().read()
