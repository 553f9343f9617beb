"""Test fake of the ``libcamera`` Python types picamera2 users pass in.

:class:`ColorSpace` and :class:`Transform` are what a picamera2
configuration holds (``colour_space=``, ``transform=``). The fake picamera2
reads them to decide how to encode YUV and whether to flip. :class:`Size`,
:class:`Rectangle` and :class:`Point` are the geometry picamera2's real
``devices/imx500/imx500.py`` computes the AI Camera's inference crop with.
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
    """Image flips applied by the sensor (transpose is not supported on the Pi).

    The binding's signature (src/py/libcamera/py_transform.cpp): ``Transform(rotation=0,
    hflip=False, vflip=False, transpose=False)``, a rotation of 180 being both flips
    (``transformFromRotation``; another angle raises "Invalid rotation").
    """

    def __init__(self, rotation: int = 0, hflip: bool = False, vflip: bool = False, transpose: bool = False):
        if rotation not in (0, 90, 180, 270):
            raise ValueError("Invalid rotation")
        if transpose or rotation in (90, 270):
            raise ValueError("transpose is not supported by the Raspberry Pi ISP")
        turned = rotation == 180
        self.hflip = bool(hflip) != turned
        self.vflip = bool(vflip) != turned
        self.transpose = False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Transform) and (other.hflip, other.vflip) == (self.hflip, self.vflip)

    def __repr__(self) -> str:
        return f"<libcamera.Transform hflip={self.hflip} vflip={self.vflip}>"


# -- geometry: what picamera2's devices/imx500/imx500.py computes its inference ROI with ------------------- #
# Integer arithmetic as libcamera's src/libcamera/geometry.cpp does it (the Python binding's names).


class Point:
    def __init__(self, x: int = 0, y: int = 0):
        self.x, self.y = int(x), int(y)

    def __neg__(self) -> "Point":
        return Point(-self.x, -self.y)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

    def to_tuple(self) -> tuple[int, int]:
        return self.x, self.y


class Size:
    def __init__(self, width: int = 0, height: int = 0):
        self.width, self.height = int(width), int(height)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Size) and (self.width, self.height) == (other.width, other.height)

    def to_tuple(self) -> tuple[int, int]:
        return self.width, self.height

    def bounded_to_aspect_ratio(self, ratio: "Size") -> "Size":
        ratio1 = self.width * ratio.height
        ratio2 = ratio.width * self.height
        if ratio1 > ratio2:
            return Size(ratio2 // ratio.height, self.height)
        return Size(self.width, ratio1 // ratio.width)

    def centered_to(self, center: Point) -> "Rectangle":
        return Rectangle(center.x - self.width // 2, center.y - self.height // 2, self.width, self.height)


class Rectangle:
    def __init__(self, x: int = 0, y: int = 0, width: int = 0, height: int = 0):
        self.x, self.y, self.width, self.height = int(x), int(y), int(width), int(height)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rectangle) and self.to_tuple() == other.to_tuple()

    def __repr__(self) -> str:
        return f"<libcamera.Rectangle {self.to_tuple()}>"

    def to_tuple(self) -> tuple[int, int, int, int]:
        return self.x, self.y, self.width, self.height

    @property
    def size(self) -> Size:
        return Size(self.width, self.height)

    @property
    def center(self) -> Point:
        return Point(self.x + self.width // 2, self.y + self.height // 2)

    @property
    def topLeft(self) -> Point:  # noqa: N802 - libcamera's spelling
        return Point(self.x, self.y)

    def bounded_to(self, b: "Rectangle") -> "Rectangle":
        x0, y0 = max(self.x, b.x), max(self.y, b.y)
        x1, y1 = min(self.x + self.width, b.x + b.width), min(self.y + self.height, b.y + b.height)
        return Rectangle(x0, y0, max(x1 - x0, 0), max(y1 - y0, 0))

    def enclosed_in(self, b: "Rectangle") -> "Rectangle":
        w, h = min(self.width, b.width), min(self.height, b.height)
        x = min(max(self.x, b.x), b.x + b.width - w)
        y = min(max(self.y, b.y), b.y + b.height - h)
        return Rectangle(x, y, w, h)

    def scaled_by(self, numerator: Size, denominator: Size) -> "Rectangle":
        return Rectangle(self.x * numerator.width // denominator.width, self.y * numerator.height // denominator.height,
                         self.width * numerator.width // denominator.width,
                         self.height * numerator.height // denominator.height)

    def translated_by(self, p: Point) -> "Rectangle":
        return Rectangle(self.x + p.x, self.y + p.y, self.width, self.height)
