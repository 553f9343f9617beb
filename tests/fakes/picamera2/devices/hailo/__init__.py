"""``picamera2.devices.hailo``: picamera2's real ``devices/hailo/hailo.py``, run against a fake ``hailo_platform``.

As ``devices/imx500``: the file comes from the release in ``$EDGECAM_REAL_PICAMERA2``
and runs unchanged; ``hailo_platform`` is tests/fakes/hailo_platform (NOT checked
against HailoRT). Without hailo_platform the import fails as the real one does
(ModuleNotFoundError), which picamera2's own ``devices/__init__`` swallows.
"""

import importlib.util
import os
import sys
from pathlib import Path

ENV = "EDGECAM_REAL_PICAMERA2"

_file = Path(os.environ.get(ENV) or "/nonexistent") / "picamera2" / "devices" / "hailo" / "hailo.py"
if not _file.is_file():
    raise ModuleNotFoundError(f"the fake picamera2 runs the real hailo.py: set ${ENV} (see devices/imx500)",
                              name=__name__)
_spec = importlib.util.spec_from_file_location(__name__ + ".hailo", _file)
hailo = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = hailo
_spec.loader.exec_module(hailo)  # imports hailo_platform: ModuleNotFoundError without it

Hailo = hailo.Hailo
hailo_architecture = hailo.hailo_architecture

__all__ = ["Hailo", "hailo_architecture"]
