"""``edgecam doctor``: for each backend, what this machine has and, when something is missing, the one thing to do.

Read-only and quick: each backend's own check (its module's ``doctor``)
looks at sysfs and /dev (:mod:`edgecam.model.backends.devices`), at which
libraries and packages can be found, and at the groups of the user running
it. None opens an accelerator (one in use by the service is still reported
as present) nor loads a vendor library in this process; with ``--probe``, a
backend that names a ``probe_model`` loads it and runs it once, in a child
process, as ``edgecam run`` does (the Edge TPU: :func:`edgecam.model.backends.edgetpu.probe`).

Each line is a :class:`Check`: the backend, ``ok`` or what is wrong, and the
exit code a run on that backend would stop with (0 ready, 6 library or package
missing, 3 device absent or not accessible).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from edgecam.model import backends
from edgecam.model.backends.plugin import Check, ProbeModel

__all__ = ["Check", "run"]


def run(root: Path = Path("/"), resolve_model: Callable[[str], Path] | None = None) -> list[Check]:
    """Every backend's :class:`Check`, in ``model.backend``'s order.

    ``resolve_model(name)``: the path of a registry model (fetching it), for
    the backends that name a ``probe_model``; None: no backend runs a model.
    It is called only by the backend's check, once its library and device
    are there.
    """
    return [b.doctor(root, _probe(b.probe_model, resolve_model)) for b in backends.every()]


def _probe(name: str | None, resolve_model: Callable[[str], Path] | None) -> ProbeModel:
    if name is None or resolve_model is None:
        return None
    return lambda: resolve_model(name)
