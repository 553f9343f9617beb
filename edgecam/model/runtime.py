"""Find a TFLite interpreter among the runtimes that may be installed.

Order for ``runtime: auto``: ai-edge-litert (the renamed TFLite runtime, wheels
for Python 3.9-3.13 on x86_64 and aarch64, NumPy 2), then tflite-runtime 2.14
(Python <= 3.11, NumPy < 2; about 6x slower here on uint8 models because its
XNNPACK does not take them), then full TensorFlow.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

import numpy

from edgecam.errors import RuntimeMissingError

logger = logging.getLogger(__name__)

# name in config -> (module to import, pip package)
RUNTIMES = {
    "litert": ("ai_edge_litert.interpreter", "ai-edge-litert"),
    "tflite-runtime": ("tflite_runtime.interpreter", "tflite-runtime"),
    "tensorflow": ("tensorflow.lite", "tensorflow"),
}
AUTO_ORDER = ("litert", "tflite-runtime", "tensorflow")


def _import(name: str):
    module_name, package = RUNTIMES[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        text = str(e)
        if "_ARRAY_API" in text or "numpy.core.multiarray" in text or "NumPy 1.x" in text:
            # tflite-runtime 2.14 was built against NumPy 1 and fails to load
            # next to NumPy 2 with an obscure message; say what to do instead.
            raise RuntimeMissingError(
                f"runtime {name}: {package} needs NumPy < 2 but NumPy "
                f"{_numpy_version()} is installed; run pip install 'numpy<2' "
                f"(pip install '.[tflite]' pins it), or use ai-edge-litert (model.runtime: litert)"
            ) from None
        return None, text
    except AttributeError as e:  # the same NumPy mismatch, seen from another angle
        if "_ARRAY_API" in str(e):
            raise RuntimeMissingError(
                f"runtime {name}: {package} was built for NumPy 1 and NumPy {_numpy_version()} "
                "is installed; run pip install 'numpy<2' or use model.runtime: litert"
            ) from None
        raise
    return module.Interpreter, None


def _numpy_version() -> str:
    return numpy.__version__


def interpreter_class(runtime: str = "auto"):
    """Return ``(name, Interpreter class)`` for the requested runtime.

    Raises RuntimeMissingError with the pip command to run when none imports.
    """
    names = AUTO_ORDER if runtime == "auto" else (runtime,)
    if runtime != "auto" and runtime not in RUNTIMES:
        raise RuntimeMissingError(f"model.runtime: unknown runtime {runtime!r}; use auto, litert, tflite-runtime or tensorflow")
    tried = []
    for name in names:
        cls, err = _import(name)
        if cls is not None:
            return name, cls
        tried.append(f"{RUNTIMES[name][1]} ({err})")
    if runtime == "auto":
        raise RuntimeMissingError(
            "no TFLite runtime found (tried " + "; ".join(tried) + "); run pip install ai-edge-litert"
        )
    raise RuntimeMissingError(f"model.runtime: {runtime} is not installed ({tried[0]}); run pip install {RUNTIMES[runtime][1]}")


def available_cores() -> int:
    """CPUs this process may run on (a container's or systemd's CPUAffinity= counts), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def runtime_version(name: str) -> str:
    """The installed version of a runtime's pip package ("?" when unknown)."""
    module_name, package = RUNTIMES.get(name, (name, name))
    # The package's own __version__ when it is loaded already: reading the
    # installed metadata instead costs ~20 ms of start-up.
    version = getattr(sys.modules.get(module_name.split(".")[0]), "__version__", None)
    if isinstance(version, str) and version:
        return version
    from importlib import metadata  # here: its import costs tens of ms (python -X importtime), rarely needed

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def resolve_threads(threads: int | str) -> int:
    """Interpreter threads outside the pipeline (classify, eval, bench's peer loop).

    ``auto`` is ``cores - 1``, at least 1. The pipeline measures instead: see
    :mod:`edgecam.model.calibration`.
    """
    if threads == "auto":
        return max(1, available_cores() - 1)
    return int(threads)
