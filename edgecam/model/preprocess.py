"""From a camera picture to the model's input tensor.

The default crop is ``center_fraction``: the centre 87.5% of the picture's
centred square (the framing the MobileNets were evaluated with upstream),
resized in integer arithmetic only, the same on every CPU (``Preprocessor.resize``).
``square`` (the whole centred square) and
``stretch`` (the whole picture, distorted) are options.

Why ``center_fraction`` is the default, with each crop's measured top-1 (900
ImageNet photos, and what the 100 in ../shared can and cannot tell): see
docs/models.md, "Which crop". The figures live there only, so that the two
never disagree; ``edgecam eval --compare crop=square`` measures them again.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np

CROPS = ("center_fraction", "square", "stretch")


def crop_box(width: int, height: int, crop: str = "center_fraction", fraction: float = 0.875) -> tuple[int, int, int, int]:
    """The ``(x, y, w, h)`` region of a ``width`` x ``height`` picture fed to the model."""
    if crop == "stretch":
        return 0, 0, width, height
    side = min(width, height)
    if crop == "center_fraction":
        side = max(1, int(round(side * fraction)))
    elif crop != "square":
        raise ValueError(f"unknown crop {crop!r}; expected one of {CROPS}")
    x = (width - side) // 2
    y = (height - side) // 2
    return x, y, side, side


@dataclass(frozen=True)
class InputSpec:
    """What the model's input wants, read from the model itself."""

    width: int
    height: int
    dtype: type  # np.uint8, np.int8 or np.float32
    scale: float  # quantization scale (0 for float models)
    zero_point: int
    mean: float = 127.5  # the model's real input is (pixel - mean) / std
    std: float = 127.5


def build_lut(spec: InputSpec) -> np.ndarray | None:
    """A 256-entry table from pixel value to quantized input, or None for pass-through.

    Quantized MobileNets take real inputs (pixel - 127.5) / 127.5 quantized with
    scale ~1/128 and zero point 128, which maps each pixel to itself: then the
    pixels go straight into the tensor. Any other quantization gets a lookup table.
    """
    if spec.dtype == np.float32 or spec.scale == 0:
        return None
    pixels = np.arange(256, dtype=np.float64)
    q = np.round((pixels - spec.mean) / spec.std / spec.scale + spec.zero_point)
    info = np.iinfo(spec.dtype)
    q = np.clip(q, info.min, info.max).astype(spec.dtype)
    if spec.dtype == np.uint8 and np.abs(q.astype(np.int16) - pixels.astype(np.int16)).max() <= 1:
        return None  # within one step of identity: pass pixels through as they are
    return q


class Preprocessor:
    """Crops, resizes, reorders colours and quantizes into a caller's buffer.

    One instance per model; it keeps a small scratch buffer so that a frame
    costs one resize and one colour conversion and no allocation.
    """

    def __init__(self, spec: InputSpec, crop: str = "center_fraction", fraction: float = 0.875):
        if crop not in CROPS:
            raise ValueError(f"unknown crop {crop!r}; expected one of {CROPS}")
        self.spec = spec
        self.crop = crop
        self.fraction = fraction
        self.lut = build_lut(spec)
        # Scratch arrays, one set per thread: several cameras' capture threads preprocess for one
        # shared model at once, and one set between them mixed their pictures (a camera's result
        # on another camera's frame, found by tests/pipeline/test_cameras_picamera2.py).
        self._local = threading.local()

    def _scratch(self):
        """This thread's scratch arrays: ``rgb`` (model size) and the resizing's, by shape (:meth:`_buffer`)."""
        local = self._local
        if not hasattr(local, "rgb"):
            spec = self.spec
            local.rgb = np.empty((spec.height, spec.width, 3), np.uint8)
            local.buffers = {}
            local.mid = None  # the two-step shrink's middle picture, last made (tests look at it)
        return local

    def _buffer(self, role: str, shape: tuple[int, ...]) -> np.ndarray:
        """This thread's uint8 scratch array for ``role`` at ``shape`` (made once per shape)."""
        buffers = self._scratch().buffers
        buf = buffers.get((role, shape))
        if buf is None:
            if len(buffers) > 16:  # a source whose size keeps changing: don't hoard one array per size
                buffers.clear()
            buf = buffers[(role, shape)] = np.empty(shape, np.uint8)
        return buf

    @property
    def view_size(self) -> tuple[int, int]:
        """The (width, height) of a picture whose crop is the model's input size.

        What to ask a camera's ISP to scale to (keeping its aspect ratio, the
        short side this long): then the crop needs no resampling. 256 for a
        224 model with ``center_fraction`` 0.875, the model's size otherwise.
        """
        w, h = self.spec.width, self.spec.height
        if self.crop != "center_fraction":
            return w, h
        return int(round(w / self.fraction)), int(round(h / self.fraction))

    def region(self, image: np.ndarray) -> np.ndarray:
        """The cropped view of ``image`` (no copy)."""
        x, y, w, h = crop_box(image.shape[1], image.shape[0], self.crop, self.fraction)
        return image[y : y + h, x : x + w]

    def resize(self, region: np.ndarray) -> np.ndarray:
        """Shrink ``region`` to the model's size, with the same result to the bit on every CPU.

        Only integer arithmetic: INTER_AREA by a whole number k (averaging k x k
        pixels) and INTER_LINEAR_EXACT, OpenCV's bit-exact fixed-point bilinear.
        A shrink by a ratio r >= 2 goes in two steps: bilinear by less than 2x
        to k = floor(r) times the model size, then INTER_AREA by k (no
        aliasing). A shrink by less than 2x (or an enlargement) is one bilinear
        step.

        Not INTER_AREA by a ratio that is not whole: it works in floating point,
        whose SIMD paths round differently on aarch64 than on x86 (measured: a
        few values in 5 of the 100 ImageNet photos with the default crop, in 25
        with the square crop), and it is slower (0.74 ms for 420->224, against
        0.28 ms bilinear). Nor plain INTER_LINEAR, which differed by +-1 in a
        quarter of the values on aarch64 and moved a photo's top score from
        43.0% to 60.5% between a PC and a Pi. Top-1 on the 100 photos is the
        same within a few photos either way (issue 8's note has the figures).
        """
        spec, scratch = self.spec, self._scratch()
        h, w = region.shape[:2]
        channels = region.shape[2:]  # () for one channel, (3,) or (4,)
        out = self._buffer("resized", (spec.height, spec.width, *channels))
        k = min(w // spec.width, h // spec.height)
        if k < 2:
            return cv2.resize(region, (spec.width, spec.height), dst=out, interpolation=cv2.INTER_LINEAR_EXACT)
        if (w, h) != (k * spec.width, k * spec.height):
            scratch.mid = self._buffer("mid", (k * spec.height, k * spec.width, *channels))
            region = cv2.resize(region, (k * spec.width, k * spec.height), dst=scratch.mid,
                                interpolation=cv2.INTER_LINEAR_EXACT)
        return cv2.resize(region, (spec.width, spec.height), dst=out, interpolation=cv2.INTER_AREA)

    def frame_input(self, frame) -> np.ndarray:
        """A new model-input array (HxWx3, the model's dtype) for a :class:`edgecam.camera.frame.Frame`.

        From the frame's ``model_input`` (the ISP-scaled lores stream, RGB)
        when the source gave one, else from its full image (BGR).
        """
        spec = self.spec
        out = np.empty((spec.height, spec.width, 3), spec.dtype)
        if frame.model_input is not None:
            self(frame.model_input, out, "rgb")
        else:
            self(frame.image, out, "bgr")
        return out

    def __call__(self, image: np.ndarray, out: np.ndarray, order: str = "bgr") -> None:
        """Write ``image`` (HxWx3 uint8, ``order`` 'bgr' or 'rgb') into ``out`` (HxWx3 of the model's dtype)."""
        spec = self.spec
        if image.shape[0] == spec.height and image.shape[1] == spec.width:
            resized = image  # already at model size (e.g. the ISP's lores stream)
        else:
            # Resized with four channels, the fourth unused: OpenCV's bit-exact bilinear has vector
            # code for 4 channels, not for 3, and resamples each channel alone, so the bits are the
            # same in about half the CPU (the default crop of a 640x480 frame: 0.47 -> 0.26 ms,
            # both conversions included; docs/speed.md).
            region = self.region(image)
            wide = self._buffer("rgba", (region.shape[0], region.shape[1], 4))
            cv2.cvtColor(region, cv2.COLOR_BGR2RGBA if order == "bgr" else cv2.COLOR_RGB2RGBA, dst=wide)
            resized, order = self.resize(wide), "rgba"
        convert = {"bgr": cv2.COLOR_BGR2RGB, "rgba": cv2.COLOR_RGBA2RGB}.get(order)
        if spec.dtype == np.uint8 and self.lut is None:
            if convert is not None:
                cv2.cvtColor(resized, convert, dst=out)
            else:
                np.copyto(out, resized)
            return
        rgb = cv2.cvtColor(resized, convert, dst=self._scratch().rgb) if convert is not None else resized
        if spec.dtype == np.float32:
            np.subtract(rgb, spec.mean, out=out, dtype=np.float32)
            out /= spec.std
        else:
            np.take(self.lut, rgb, out=out)
