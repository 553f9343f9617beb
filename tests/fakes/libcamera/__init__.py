"""Test fake of the two ``libcamera`` Python types picamera2 users pass in.

Only :class:`ColorSpace` and :class:`Transform` are modelled: they are what a
picamera2 configuration holds (``colour_space=``, ``transform=``). The fake
picamera2 reads them to decide how to encode YUV and whether to flip.
"""

from __future__ import annotations


class ColorSpace:
    """A named colour space; the presets mirror libcamera's static constructors.

    ``range`` is "limited" (Y 16..235) or "full" (0..255) and ``ycbcr`` the
    YCbCr matrix ("601", "709"), which is all a YUV encoder needs.
    """

    _PRESETS = {
        "Sycc": ("601", "full"),  # JPEG: full-range BT.601
        "Smpte170m": ("601", "limited"),  # SD video: limited-range BT.601
        "Rec709": ("709", "limited"),  # HD video: limited-range BT.709
        "Raw": (None, "full"),
    }

    def __init__(self, name: str):
        if name not in self._PRESETS:
            raise ValueError(f"unknown colour space {name!r}")
        self.name = name
        self.ycbcr, self.range = self._PRESETS[name]

    @staticmethod
    def Sycc() -> "ColorSpace":  # noqa: N802 - libcamera's spelling
        return ColorSpace("Sycc")

    @staticmethod
    def Smpte170m() -> "ColorSpace":  # noqa: N802
        return ColorSpace("Smpte170m")

    @staticmethod
    def Rec709() -> "ColorSpace":  # noqa: N802
        return ColorSpace("Rec709")

    @staticmethod
    def Raw() -> "ColorSpace":  # noqa: N802
        return ColorSpace("Raw")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ColorSpace) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"<libcamera.ColorSpace '{self.name}'>"


class Transform:
    """Image flips applied by the ISP (transpose is not supported on the Pi)."""

    def __init__(self, hflip: int = 0, vflip: int = 0, transpose: int = 0):
        if transpose:
            raise ValueError("transpose is not supported by the Raspberry Pi ISP")
        self.hflip = int(bool(hflip))
        self.vflip = int(bool(vflip))
        self.transpose = 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Transform) and (other.hflip, other.vflip) == (self.hflip, self.vflip)

    def __repr__(self) -> str:
        return f"<libcamera.Transform hflip={self.hflip} vflip={self.vflip}>"
