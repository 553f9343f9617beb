"""Running edgecam as a systemd service: sd_notify, install/uninstall."""

from edgecam.service.notify import Notifier, WatchdogGate

__all__ = ["Notifier", "WatchdogGate"]
