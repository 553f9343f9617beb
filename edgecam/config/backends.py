"""The backends ``model.backend`` may name, and the module that declares each one: the one list.

Like a package's entry points: names and dotted module paths, read without
importing any backend. So the configuration (``model.backend``), the model
registry file (an entry's ``backend:``) and the command line (``--backend``)
know every backend although they sit below :mod:`edgecam.model` and never
import it (a backend's module pulls in the runtime, numpy, picamera2...).
:mod:`edgecam.model.backends` imports the modules when it needs what they
declare (their ``BACKEND``, an :class:`edgecam.model.backends.plugin.Backend`).

Adding a backend: its module, and its line in :data:`MODULES`
(docs/accelerators.md, "Add a backend").
"""

from __future__ import annotations

#: What ``model.backend`` may also say: the first backend present and ready (edgecam.model.backends.choose).
AUTO = "auto"
#: Where a model runs when nothing else is said or found, and what a registry entry is built for by default.
CPU = "cpu"

#: Each backend's name and the module that declares it, in the order lists show them (doctor, errors, --help).
MODULES: dict[str, str] = {
    "cpu": "edgecam.model.backends.cpu",
    "edgetpu": "edgecam.model.backends.edgetpu",
    "imx500": "edgecam.model.backends.imx500",
    "hailo": "edgecam.model.backends.hailo",
}


def names() -> tuple[str, ...]:
    """Every backend's name (what a model may be built for), in :data:`MODULES` order."""
    return tuple(MODULES)


def choices() -> tuple[str, ...]:
    """What ``model.backend`` and ``--backend`` accept: :data:`AUTO`, then every backend."""
    return (AUTO, *MODULES)


def expected() -> str:
    """The choices as a config error says them: ``'auto' | 'cpu' | ...``."""
    return " | ".join(repr(name) for name in choices())
