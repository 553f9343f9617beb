"""A toy backend, whole in one module: what tests/model/backends/test_plugins.py registers to prove the seam.

Its device is a ``/dev/toy0`` node; its "library" is the file
``$EDGECAM_TOY_LIBRARY`` names (missing: not ready); its service needs the
node and group ``toy``; its classifier answers "toy" to every picture.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgecam.errors import EXIT_RUNTIME, EXIT_SOURCE, RuntimeMissingError
from edgecam.model.backends.devices import Device
from edgecam.model.backends.plugin import Backend, Check, Dropin, ProbeModel

ENV_LIBRARY = "EDGECAM_TOY_LIBRARY"


def _library() -> Path | None:
    path = Path(os.environ.get(ENV_LIBRARY, "/nonexistent/libtoy.so"))
    return path if path.is_file() else None


def find(root: Path) -> list[Device]:
    return [Device("toy", f"Toy accelerator ({node.name})", f"/dev/{node.name}")
            for node in sorted((root / "dev").glob("toy[0-9]*"))]


def ready() -> str | None:
    return None if _library() else "libtoy is not installed (see edgecam doctor)"


def dropin(root: Path) -> Dropin:
    nodes = [d.node for d in find(root)] or ["/dev/toy0"]
    return Dropin(("# Toy accelerator", *(f"DeviceAllow={n} rw" for n in nodes)), ("toy",))


def doctor(root: Path = Path("/"), probe_model: ProbeModel = None) -> Check:
    if _library() is None:
        return Check("toy", EXIT_RUNTIME, "no libtoy: install it")
    found = find(root)
    if not found:
        return Check("toy", EXIT_SOURCE, "no toy accelerator found (no /dev/toy0): plug it in")
    return Check("toy", 0, f"ok: {found[0].what}")


class ToyClassifier:
    backend = "toy"

    def __init__(self, name: str):
        self.name = name
        self.labels = ("toy",)


def load(cfg, *, fetch_missing: bool = True) -> ToyClassifier:
    if _library() is None:
        raise RuntimeMissingError("toy: no libtoy; install it")
    return ToyClassifier(cfg.name)


BACKEND = Backend(name="toy", what="a toy accelerator", load=load, doctor=doctor, ready=ready, find=find,
                  auto_rank=0, dropin=dropin, suffixes=(".toy",))
