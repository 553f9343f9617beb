"""Which Raspberry Pi ISP the fake pretends to run on (``picamera2.platform``)."""

from __future__ import annotations

from enum import Enum


class Platform(Enum):
    VC4 = "vc4"  # Pi 4 and earlier: bcm2835 ISP, lores must be YUV
    PISP = "pisp"  # Pi 5: PiSP back end, lores may be RGB


def get_platform() -> Platform:
    """The platform of the currently selected fake model (see ``fake_control``)."""
    from picamera2._fake import fake_control

    return fake_control.platform
