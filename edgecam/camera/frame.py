"""The unit that flows through the pipeline: one captured picture."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured picture.

    Attributes:
        image: HxWx3 uint8 array in BGR order (OpenCV's convention; the
            display, overlay and encoders all want BGR).
        index: the frame's number, 0-based, counting every frame the source
            produced, so that gaps show drops: frames the camera skipped
            (picamera2 counts sensor frames), unreadable files of a folder,
            and frames the pipeline itself dropped (``latest`` policy) all
            leave a gap in the numbers a log or MQTT shows. A reconnected
            source goes on after the last number (the frames missed while it
            was away cannot be counted). Numbers only ever increase.
        timestamp: capture time on the ``time.monotonic()`` clock, taken as
            close to the sensor as the source allows; latency is measured from it.
        wall_time: capture time on the ``time.time()`` clock, for logs.
        model_input: optional RGB picture already scaled by the camera's ISP
            to the model's input size (picamera2's ``lores`` stream); when
            present, preprocessing uses it instead of scaling ``image``.
        sensor_result: what a camera that runs the network itself (the
            Raspberry Pi AI Camera) computed for this frame: an
            :class:`edgecam.model.backends.imx500_source.SensorResult`, or None when the
            sensor sent no result with it (see :mod:`edgecam.model.backends`).
    """

    image: np.ndarray
    index: int
    timestamp: float
    wall_time: float
    model_input: np.ndarray | None = field(default=None, compare=False)
    sensor_result: object = field(default=None, compare=False)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of ``image``."""
        return int(self.image.shape[1]), int(self.image.shape[0])
