#!/usr/bin/env python3
"""Print pip constraints that keep the system's NumPy in a ``--system-site-packages`` venv.

Run it with the venv's Python. On Raspberry Pi OS Bookworm, apt's picamera2
imports apt's simplejpeg, which is built against apt's NumPy 1.24: if pip puts
NumPy 2 into the venv (opencv-python >= 4.12 and ml_dtypes 0.6 ask for it), the
venv's NumPy shadows apt's and ``import picamera2`` fails with "numpy.dtype size
changed, may indicate binary incompatibility" (picamera2 issues 1088, 1211).
Constraining numpy to the system's version makes pip pick releases that work
with it (opencv-python 4.11, ml_dtypes 0.5) and keep apt's NumPy; on Trixie,
whose NumPy is 2.x, the constraint changes nothing.

Prints nothing when the venv does not see system packages or the system has
no NumPy (a PC, or a Pi without python3-numpy).

    .venv/bin/python tools/pin_system_numpy.py > .venv/constraints.txt
    .venv/bin/pip install -c .venv/constraints.txt -e .
"""

from __future__ import annotations

import sys
from pathlib import Path

# edgecam is not installed yet when this runs: import the checkout's module (stdlib only).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgecam.system_packages import system_version  # noqa: E402


def main() -> int:
    version = system_version("numpy")
    if version:
        print(f"numpy=={version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
