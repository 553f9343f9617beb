"""Which accelerators this machine has, read from sysfs and /dev: no vendor library needed.

* Coral USB Accelerator: a USB device 1a6e:089a (Global Unichip, before
  libedgetpu loads its firmware) or 18d1:9302 (Google, after);
* Coral M.2 / Mini PCIe: the gasket/apex driver's ``/dev/apex_N``;
* Raspberry Pi AI Camera: a V4L2 sub-device whose driver module is imx500
  (the very test picamera2's ``IMX500`` class makes);
* Hailo-8L / Hailo-8: the hailo_pci driver's ``/dev/hailoN``.

``root`` (default ``/``) is where ``/sys`` and ``/dev`` are read, so that a
test can lay out a machine of its own. Reading never opens a device: a busy
accelerator is still found. Each backend names its finder (``Backend.find``);
:func:`edgecam.model.backends.find_devices` asks them all, in ``auto``'s order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: USB ids of the Coral USB Accelerator: before and after libedgetpu loads its firmware.
CORAL_USB_IDS = {("1a6e", "089a"): "Coral USB Accelerator (firmware not loaded yet)",
                 ("18d1", "9302"): "Coral USB Accelerator"}


@dataclass(frozen=True)
class Device:
    """One accelerator found: the backend that runs on it, what it is, and its node or bus address."""

    backend: str  # edgetpu, imx500, hailo
    what: str
    node: str  # /dev/apex_0, /dev/hailo0, /dev/v4l-subdev2, or the USB bus path (1-1.2)
    kind: str = ""  # edgetpu: usb or pci (libedgetpu's "device" option)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return ""


def coral(root: Path = Path("/")) -> list[Device]:
    """Coral Edge TPUs: USB accelerators, then PCIe modules."""
    found = []
    usb = root / "sys/bus/usb/devices"
    for dev in sorted(usb.glob("*")) if usb.is_dir() else ():
        ids = (_read(dev / "idVendor"), _read(dev / "idProduct"))
        if ids in CORAL_USB_IDS:
            found.append(Device("edgetpu", f"{CORAL_USB_IDS[ids]} ({ids[0]}:{ids[1]}, USB {dev.name})", dev.name,
                                "usb"))
    for node in sorted((root / "dev").glob("apex_*")):
        found.append(Device("edgetpu", f"Coral PCIe Edge TPU ({node.name})", f"/dev/{node.name}", "pci"))
    return found


def imx500(root: Path = Path("/")) -> list[Device]:
    """Raspberry Pi AI Cameras: V4L2 sub-devices driven by the imx500 module."""
    found = []
    for i in range(32):  # as picamera2 looks for it
        device = root / f"sys/class/video4linux/v4l-subdev{i}/device"
        module = device / "driver" / "module"
        if module.is_symlink() and "imx500" in os.readlink(module):
            found.append(Device("imx500", f"Raspberry Pi AI Camera (IMX500, /dev/v4l-subdev{i})",
                                f"/dev/v4l-subdev{i}"))
    return found


def hailo(root: Path = Path("/")) -> list[Device]:
    """Hailo-8L / Hailo-8 modules on PCIe (the hailo_pci driver's nodes)."""
    return [Device("hailo", f"Hailo accelerator ({node.name})", f"/dev/{node.name}")
            for node in sorted((root / "dev").glob("hailo[0-9]*"))]
