"""A fake of the ``picamera2`` package for tests on machines without a Pi camera.

Put ``tests/fakes`` first on ``sys.path`` and ``import picamera2`` gets this.
It implements the part of the real API edgecam uses, with the real shapes,
strides, errors and timing; tests steer it through :data:`fake_control`
(model pi4/pi5, attached cameras, injected pictures, stalls, busy cameras).
See tests/fakes/README.md.
"""

from picamera2._fake import (MODEL_ENV, PICTURES_ENV, REPORT_ENV, CompletedRequest, FakeControl, Picamera2,
                             fake_control)

__all__ = ["MODEL_ENV", "PICTURES_ENV", "REPORT_ENV", "CompletedRequest", "FakeControl", "Picamera2", "fake_control"]
