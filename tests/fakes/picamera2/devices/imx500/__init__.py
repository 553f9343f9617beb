"""``picamera2.devices.imx500``: picamera2's real ``devices/imx500/imx500.py``, run against a fake kernel.

The module file comes from the picamera2 release named by
``$EDGECAM_REAL_PICAMERA2`` (a folder holding ``picamera2/devices/imx500/imx500.py``,
e.g. ``pip install --no-deps --target DIR picamera2==0.3.38``: tests/model/backends/conftest.py
does it). It is executed unchanged as ``picamera2.devices.imx500.imx500``;
:mod:`picamera2.imx500_kernel` then takes the place of what it reaches in the
kernel (sysfs, the sub-device's ioctls, debugfs) by setting the module's
``os``, ``open``, ``fcntl`` and ``subprocess`` names. Its own package parsing,
ctypes layouts and metadata decoding run as they are. (The real
``__init__`` also imports the detection post-processing modules, which need
more packages and nothing edgecam uses.)
"""

import importlib.util
import os
import sys
from pathlib import Path

ENV = "EDGECAM_REAL_PICAMERA2"

_root = os.environ.get(ENV)
_file = Path(_root or "/nonexistent") / "picamera2" / "devices" / "imx500" / "imx500.py"
if not _file.is_file():
    raise ModuleNotFoundError(f"the fake picamera2 runs the real imx500.py: set ${ENV} to a folder with "
                              f"picamera2/devices/imx500/imx500.py (pip install --no-deps --target DIR picamera2==0.3.38)",
                              name=__name__)
# What imx500.py imports from PyPI, installed beside it by tests/model/backends/conftest.py (appended: the
# environment's own packages come first).
if str(_file.parents[3] / "deps") not in sys.path:
    sys.path.append(str(_file.parents[3] / "deps"))
_spec = importlib.util.spec_from_file_location(__name__ + ".imx500", _file)
imx500 = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = imx500
_spec.loader.exec_module(imx500)

from picamera2 import imx500_kernel  # noqa: E402

imx500_kernel.kernel.attach(imx500)
IMX500 = imx500.IMX500
NetworkIntrinsics = imx500.NetworkIntrinsics

__all__ = ["IMX500", "NetworkIntrinsics"]
