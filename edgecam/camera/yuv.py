"""picamera2's YUV420 buffers to RGB (the Pi 4's lores stream: VC4 gives it only as YUV)."""

from __future__ import annotations

import cv2
import numpy as np


def i420_to_rgb(array: np.ndarray, width: int, height: int) -> np.ndarray:
    """RGB from picamera2's YUV420 array of shape (h*3/2, stride).

    The buffer is a Y plane of ``height`` lines of ``stride`` bytes, then U and
    V planes of ``height/2`` lines of ``stride/2`` bytes each; only the first
    ``width`` (``width/2``) bytes of a line are picture. Cropping the array's
    columns alone would be wrong: every array row of the chroma part holds two
    chroma lines, padding between them.
    """
    stride = array.shape[1]
    if stride != width:
        flat = array.reshape(-1)
        cstride, cw, ch = stride // 2, width // 2, height // 2
        y = flat[: height * stride].reshape(height, stride)[:, :width]
        u_start = height * stride
        v_start = u_start + ch * cstride
        u = flat[u_start:v_start].reshape(ch, cstride)[:, :cw]
        v = flat[v_start: v_start + ch * cstride].reshape(ch, cstride)[:, :cw]
        array = np.concatenate([y.reshape(-1), u.reshape(-1), v.reshape(-1)]).reshape(
            height * 3 // 2, width)
    return cv2.cvtColor(array, cv2.COLOR_YUV2RGB_I420)
