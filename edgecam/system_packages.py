"""What a ``--system-site-packages`` venv sees of the system's own packages (apt's, on a Pi).

Standard library only: tools/pin_system_numpy.py imports it before anything
else of edgecam is installed.
"""

from __future__ import annotations

import sys
from importlib import metadata


def system_version(name: str) -> str | None:
    """The version of package ``name`` installed outside this venv and visible to it, or None.

    None outside a venv (nothing there is "the system's" as opposed to ours) and
    when the venv does not see the system's packages.
    """
    if sys.prefix == sys.base_prefix:
        return None
    outside = [p for p in sys.path if p and not p.startswith(sys.prefix)]
    for dist in metadata.distributions(path=outside):
        if (dist.metadata["Name"] or "").lower() == name.lower():
            return dist.version
    return None
