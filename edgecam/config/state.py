"""The state directory: what edgecam is told or taught at run time and keeps across restarts.

The config file stays read-only (``/etc/edgecam/config.yaml`` belongs to the
admin); what changes while edgecam runs (commands received over MQTT, what
discovery announced, regions drawn on the page, the review queue, versions of
learned models) is kept here instead, one sub-folder per feature.

Where: ``state_dir`` in the config, else ``$STATE_DIRECTORY`` (systemd sets it
from the unit's ``StateDirectory=edgecam``: ``/var/lib/edgecam``), else
``$XDG_STATE_HOME/edgecam`` (``~/.local/state/edgecam``).
"""

from __future__ import annotations

import os
from pathlib import Path


def state_dir(configured: str | os.PathLike | None = None) -> Path:
    """Return the state directory (it may not exist yet); ``configured`` is the config's ``state_dir``."""
    if configured:
        return Path(configured).expanduser()
    # systemd may list several directories, separated by colons: ours is the first.
    env = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if env:
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "edgecam"


def feature_dir(configured: str | os.PathLike | None, feature: str) -> Path:
    """Return (creating it) the sub-folder of the state directory that one feature keeps its files in."""
    path = state_dir(configured) / feature
    path.mkdir(parents=True, exist_ok=True)
    return path
