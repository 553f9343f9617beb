"""A machine's /sys and /dev as accelerator drivers lay them out, built in a folder (the "root").

What edgecam (``edgecam.model.backends.devices``) and picamera2's ``IMX500`` class
read to find an accelerator, and nothing more:

* a Coral USB Accelerator: ``/sys/bus/usb/devices/1-1.2/idVendor`` and
  ``idProduct`` (1a6e:089a before libedgetpu loads its firmware, 18d1:9302 after);
* a Coral PCIe module: the apex driver's ``/dev/apex_0``;
* a Hailo module: the hailo_pci driver's ``/dev/hailo0``;
* a Raspberry Pi AI Camera: the sensor's V4L2 sub-device, as the kernel
  links it on a Pi 5 (``/sys/class/video4linux/v4l-subdev2`` -> the i2c
  client 11-001a, whose ``driver/module`` link ends in ``module/imx500`` and
  whose ``of_node`` is the device tree node libcamera names the camera by),
  its ``/dev/v4l-subdev2`` node, and the debugfs files of its firmware
  upload progress (``/sys/kernel/debug/imx500-fw:11-001a/fw_progress``).

Device nodes are plain files here; a test that needs them to answer ioctls
fakes that at the Python edge (``picamera2.imx500_kernel``).
"""

from __future__ import annotations

import os
from pathlib import Path

IMX500_OF_NODE = "/base/axi/pcie@120000/rp1/i2c@88000/imx500@1a"  # = libcamera's camera Id on a Pi 5


class Machine:
    """Lays out accelerators under ``root``; each ``add_*`` returns what it made."""

    def __init__(self, root: Path):
        self.root = Path(root)
        (self.root / "dev").mkdir(parents=True, exist_ok=True)
        (self.root / "sys").mkdir(exist_ok=True)

    def _link(self, link: Path, target: Path) -> None:
        link.parent.mkdir(parents=True, exist_ok=True)
        target.mkdir(parents=True, exist_ok=True)  # every target here is a folder
        os.symlink(os.path.relpath(target, link.parent), link)

    def add_coral_usb(self, firmware_loaded: bool = True, bus: str = "1-1.2") -> Path:
        dev = self.root / "sys/bus/usb/devices" / bus
        dev.mkdir(parents=True, exist_ok=True)
        vendor, product = ("18d1", "9302") if firmware_loaded else ("1a6e", "089a")
        (dev / "idVendor").write_text(vendor + "\n")
        (dev / "idProduct").write_text(product + "\n")
        return dev

    def add_usb(self, vendor: str, product: str, bus: str) -> Path:
        dev = self.root / "sys/bus/usb/devices" / bus
        dev.mkdir(parents=True, exist_ok=True)
        (dev / "idVendor").write_text(vendor + "\n")
        (dev / "idProduct").write_text(product + "\n")
        return dev

    def add_coral_pcie(self, n: int = 0) -> Path:
        node = self.root / "dev" / f"apex_{n}"
        node.write_bytes(b"")
        return node

    def add_hailo(self, n: int = 0) -> Path:
        node = self.root / "dev" / f"hailo{n}"
        node.write_bytes(b"")
        return node

    def add_imx500(self, subdev: int = 2, i2c: str = "11-001a", of_node: str = IMX500_OF_NODE) -> Path:
        """The AI Camera's sensor sub-device; returns its /dev node (a plain file)."""
        sys_ = self.root / "sys"
        client = sys_ / "devices/platform/axi/1000120000.pcie/1f00088000.i2c/i2c-11" / i2c
        client.mkdir(parents=True, exist_ok=True)
        driver = sys_ / "bus/i2c/drivers/imx500"
        self._link(client / "driver", driver)
        self._link(driver / "module", sys_ / "module/imx500")
        self._link(client / "of_node", sys_ / ("firmware/devicetree" + of_node))
        self._subdev_links(client, subdev)
        # debugfs: the firmware upload progress picamera2 reads ("stage block size"; the chunk in the block)
        debug = self.root / "sys/kernel/debug"
        (debug / f"imx500-fw:{i2c}").mkdir(parents=True, exist_ok=True)
        (debug / f"imx500-fw:{i2c}" / "fw_progress").write_text("0 0 0\n")
        (debug / f"rp2040-spi:{i2c.replace('001a', '0040')}").mkdir(parents=True, exist_ok=True)
        (debug / f"rp2040-spi:{i2c.replace('001a', '0040')}" / "transfer_progress").write_text("0\n")
        dev = self.root / "dev" / f"v4l-subdev{subdev}"
        dev.write_bytes(b"")
        return dev

    def add_other_subdev(self, subdev: int, module: str = "imx708") -> None:
        """Another camera's sub-device (not an AI Camera)."""
        sys_ = self.root / "sys"
        client = sys_ / f"devices/platform/other/{module}-{subdev}"
        client.mkdir(parents=True, exist_ok=True)
        self._link(client / "driver", sys_ / f"bus/i2c/drivers/{module}")
        self._link(sys_ / f"bus/i2c/drivers/{module}/module", sys_ / f"module/{module}")
        self._subdev_links(client, subdev)

    def _subdev_links(self, client: Path, subdev: int) -> None:
        node_dir = client / "video4linux" / f"v4l-subdev{subdev}"
        node_dir.mkdir(parents=True, exist_ok=True)
        # As the kernel writes it: up to the client's parent and down by name, so
        # that the link's last component names the i2c client (picamera2 reads it).
        os.symlink(f"../../../{client.name}", node_dir / "device")
        self._link(self.root / "sys/class/video4linux" / f"v4l-subdev{subdev}", node_dir)
