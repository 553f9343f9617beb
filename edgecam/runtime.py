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
import time

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
    return (module.Interpreter if name != "tensorflow" else module.Interpreter), None


def _numpy_version() -> str:
    import numpy

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


def resolve_threads(threads: int | str) -> int:
    """Interpreter threads; ``auto`` leaves one core to the capture thread.

    Measured on 2 cores with MobileNetV3-Small (``edgecam bench``): a second
    interpreter thread cuts invoke time by only ~5% (3.33 -> 3.17 ms) but costs
    20% more CPU per invoke, and it competes with the capture thread, which
    decodes and preprocesses the next frame meanwhile; the pipeline is
    fastest and cheapest with cores - 1 interpreter threads.
    """
    if threads == "auto":
        return max(1, (os.cpu_count() or 1) - 1)
    return int(threads)


# A core taken from the capture thread must buy the interpreter more than the
# capture thread's share of a frame's work: decode + preprocess + overlay are
# ~1.2 ms beside a ~3.4 ms invoke on the 2-core machine measured (~25%).
EXTRA_THREAD_MIN_GAIN = 0.25


def choose_threads(make_interpreter, cores: int | None = None, trials: int = 8, clock=time.perf_counter):
    """Pick the interpreter thread count for the pipeline by measuring this machine.

    Times ``invoke()`` with ``cores - 1`` and with ``cores`` threads and takes
    ``cores`` only if it is at least :data:`EXTRA_THREAD_MIN_GAIN` faster: on
    the 2-core machine measured, a second thread gained 5% (3.33 -> 3.17 ms)
    and the pipeline ran 10% slower with it, while on machines whose XNNPACK
    scales better (7 -> 5.6 ms was seen) the extra thread pays.

    Args:
        make_interpreter: ``n -> interpreter`` (allocated, ready to invoke).
        cores: CPU count (default ``os.cpu_count()``).
    Returns:
        ``(threads, interpreter built with that many threads, {threads: median ms})``.
    """
    cores = cores or os.cpu_count() or 1
    if cores <= 1:
        return 1, make_interpreter(1), {}
    timings: dict[int, float] = {}
    kept = {}
    for n in (cores, cores - 1):  # the likely winner last, so it needs no rebuild
        kept.clear()  # one interpreter alive at a time: peak memory as for one
        it = make_interpreter(n)
        it.invoke()  # warm-up: the first invoke sets XNNPACK up
        samples = []
        for _ in range(trials):
            t0 = clock()
            it.invoke()
            samples.append(clock() - t0)
        samples.sort()
        timings[n] = samples[len(samples) // 2] * 1000
        kept[n] = it
        del it
    best = cores if timings[cores] <= (1 - EXTRA_THREAD_MIN_GAIN) * timings[cores - 1] else cores - 1
    interpreter = kept.pop(best, None)
    if interpreter is None:
        kept.clear()
        interpreter = make_interpreter(best)
    logger.info("threads auto: %d (invoke %.2f ms with %d, %.2f ms with %d threads)",
                best, timings[cores - 1], cores - 1, timings[cores], cores)
    return best, interpreter, timings
