"""The systemd drop-in that lets the service reach the accelerator its config names.

The unit (systemd/edgecam.service) allows only camera devices
(``DevicePolicy=closed``) and runs as the ``edgecam`` user in group
``video``. An accelerator needs more, and only the one in use should get it:

* Coral USB Accelerator: its USB device node (``/dev/bus/usb/BBB/DDD``,
  class ``char-usb_device``; the node changes when libedgetpu loads the
  firmware and the device re-enumerates, so the class, not a path) and group
  ``plugdev``, which libedgetpu1-std's udev rule gives it;
* Coral M.2 / Mini PCIe: ``char-apex`` (``/dev/apex_N``) and group ``apex``
  (gasket-dkms' udev rule);
* Hailo: ``/dev/hailo0`` (and further modules' nodes found at install);
* AI Camera: nothing more (its sub-device is ``char-video4linux``, allowed
  already); the first upload of a network to the sensor takes minutes, which
  edgecam covers by extending the start timeout as it goes
  (``EXTEND_TIMEOUT_USEC``, :mod:`edgecam.model.backends.imx500`), so that
  ``TimeoutStartSec=90`` stays the bound of a start that is stuck.

Each backend says what it needs (its module's ``dropin``). With
``model.backend: auto`` the drop-in covers the accelerators present at
install time. A group that does not exist on the machine is left out (systemd
refuses to start a unit naming one) and said.
"""

from __future__ import annotations

from pathlib import Path

from edgecam.config.backends import AUTO
from edgecam.model import backends

DROPIN_NAME = "20-accelerators.conf"
HEADER = ("# written by 'edgecam service install' for model.backend: {backend} (docs/accelerators.md);\n"
          "# written again by every install: local changes belong in another drop-in (systemctl edit edgecam).\n")


def dropin(backend: str, root: Path = Path("/"), group_exists=None) -> tuple[str | None, list[str]]:
    """(the drop-in's text or None when the backend needs nothing, notes to say) for ``backend``.

    What each backend needs is its own ``dropin(root)``
    (:class:`edgecam.model.backends.plugin.Dropin`). ``group_exists(name)``:
    whether a group exists (the installer's check); ``root``: where /dev and
    /sys are read (``auto``, Hailo nodes).
    """
    group_exists = group_exists or (lambda name: True)
    wanted = [backend] if backend != AUTO else sorted({d.backend for d in backends.find_devices(root)})
    lines, groups, notes = [], [], []
    for name in wanted:
        needs = backends.get(name).dropin(root)
        lines += needs.lines
        groups += needs.groups
    present = [g for g in groups if group_exists(g)]
    for g in groups:
        if g not in present:
            notes.append(f"note: no group {g} on this system (its package's udev rule makes it); "
                         f"left out of the accelerator drop-in")
    if present:
        lines.append("SupplementaryGroups=" + " ".join(present))
    if not lines:
        return None, notes
    return HEADER.format(backend=backend) + "[Service]\n" + "\n".join(lines) + "\n", notes
