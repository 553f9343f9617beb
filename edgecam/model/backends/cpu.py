"""The CPU: edgecam's TFLite interpreter (:class:`edgecam.model.classifier.Classifier`), the backend of last resort.

It needs no device and no drop-in; ``auto`` falls back to it when no
accelerator is present and ready. ``edgecam doctor`` says which TFLite
runtime is installed (none: exit 6, the one thing to install).
"""

from __future__ import annotations

from pathlib import Path

from edgecam.config.backends import CPU
from edgecam.errors import EdgecamError
from edgecam.model.backends.plugin import Backend, Check, ProbeModel
from edgecam.model.classifier import load_classifier
from edgecam.model.runtime import interpreter_class, runtime_version


def doctor(root: Path = Path("/"), probe_model: ProbeModel = None) -> Check:
    """The TFLite runtime ``model.runtime: auto`` finds (the machine's devices do not matter here)."""
    try:
        name, _ = interpreter_class("auto")
    except EdgecamError as e:
        return Check(CPU, e.exit_code, e.message)
    return Check(CPU, 0, f"ok: TFLite runtime {name} {runtime_version(name)}")


BACKEND = Backend(name=CPU, what="the CPU", load=load_classifier, doctor=doctor)
