"""Running edgecam as a systemd service.

``notify.py``: sd_notify (READY after the first result, WATCHDOG while frames
flow, STATUS); ``install.py``: ``edgecam service install/uninstall`` (user,
unit, config, model). The command itself is :mod:`edgecam.commands.service`.
"""

from edgecam.service.notify import Notifier, WatchdogGate

__all__ = ["Notifier", "WatchdogGate"]
