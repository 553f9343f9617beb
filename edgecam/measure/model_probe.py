"""Measure one model in a process of its own: graph, load time, invoke times, RSS, accuracy.

``edgecam models compare`` runs ``python -m edgecam.measure.model_probe SPEC_JSON`` once
per model, one after the other, so that each model's load time is that of a
fresh process and its peak RSS is its own (``ru_maxrss`` only ever grows).
The result is one JSON object on stdout. Order matters:

1. import the TFLite runtime; note the RSS (the baseline);
2. read the graph (:mod:`edgecam.model.model_graph`; no tensors allocated);
3. load: build the interpreter, allocate tensors and run the first invoke (it
   sets XNNPACK up); that is ``load_ms``, what a start costs before the first
   answer. The model file is usually in the page cache by then (step 2 read
   it): this is a cold *process*, not a cold disk;
4. for each thread count: a fresh interpreter, 3 warm-up invokes, then
   invokes for ``seconds`` (at least ``min_runs``): p50 and p95;
5. peak RSS (``ru_maxrss``): Python + runtime + model + invokes, no OpenCV;
6. with photos: top-1/top-5 with their intervals through the real
   :class:`edgecam.model.classifier.Classifier` (crop, labels and preprocessing as
   ``edgecam eval`` would use them), at the fastest thread count.

A failing step is reported in the JSON (``error`` or ``accuracy_error``) and
the steps that can still run do.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from functools import partial

from edgecam.errors import EdgecamError
from edgecam.model.timing import peak_rss_mb, percentile
from edgecam.model.runtime import interpreter_class


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def time_invokes(interpreter, seconds: float, min_runs: int, max_runs: int = 5000,
                 clock=time.perf_counter) -> list[float]:
    """Invoke times in ms: 3 warm-up runs, then runs until ``seconds`` passed and ``min_runs`` were made."""
    for _ in range(3):
        interpreter.invoke()
    times: list[float] = []
    start = clock()
    while len(times) < max_runs and (len(times) < min_runs or clock() - start < seconds):
        t0 = clock()
        interpreter.invoke()
        times.append((clock() - t0) * 1000)
    return times


def _classes(interpreter) -> int | None:
    """How many scores the model's (first) output holds: its classes."""
    outputs = interpreter.get_output_details()
    if not outputs:
        return None
    n = 1
    for d in outputs[0]["shape"]:
        n *= int(d)
    return n


def probe(spec: dict) -> dict:
    """Measure the model ``spec`` describes (see :func:`edgecam.measure.compare.probe_spec`)."""
    out: dict = {"name": spec["name"], "path": spec["model_path"]}
    runtime, Interpreter = interpreter_class(spec.get("runtime", "auto"))
    out["runtime"] = runtime
    baseline = peak_rss_mb()
    new_delegates = lambda: {}  # noqa: E731 - the CPU: no delegate
    if spec.get("backend") == "edgetpu":  # this process may die of a libedgetpu built for another runtime: it is one
        new_delegates = _edgetpu(runtime, out)
        if new_delegates is None:
            return out
        out["runtime"] = f"{runtime}+edgetpu"

    from edgecam.model.model_graph import analyze_interpreter  # after the RSS baseline (the order: module docstring)

    try:
        reader = Interpreter(model_path=spec["model_path"])
        out["graph"] = analyze_interpreter(reader).to_dict()
        out["classes"] = _classes(reader)
        del reader
    except (EdgecamError, ValueError, RuntimeError) as e:
        out["error"] = f"cannot read the graph: {getattr(e, 'message', None) or _first_line(e)}"
        return out

    threads = list(spec["threads"])
    invoke: dict[str, dict] = {}
    try:
        t0 = time.perf_counter()
        interpreter = Interpreter(model_path=spec["model_path"], num_threads=threads[0], **new_delegates())
        interpreter.allocate_tensors()
        _black(interpreter, spec)
        interpreter.invoke()
        out["load_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        for n in threads:
            if interpreter is None:  # one interpreter alive at a time: the RSS is that of one
                interpreter = Interpreter(model_path=spec["model_path"], num_threads=n, **new_delegates())
                interpreter.allocate_tensors()
                _black(interpreter, spec)
            times = time_invokes(interpreter, spec.get("seconds", 1.0), spec.get("min_runs", 20))
            invoke[str(n)] = {"p50": round(percentile(times, 50), 3), "p95": round(percentile(times, 95), 3), "runs": len(times)}
            interpreter = None
    except (ValueError, RuntimeError) as e:
        out["error"] = f"the runtime cannot run it: {_first_line(e)}"
    out["invoke_ms"] = invoke
    out["rss_mb"] = round(peak_rss_mb(), 1)
    out["rss_model_mb"] = round(peak_rss_mb() - baseline, 1)
    if invoke and spec.get("images"):
        best = min(invoke, key=lambda k: invoke[k]["p50"])
        out["accuracy"], out["accuracy_error"] = _accuracy(spec, int(best), new_delegates())
    return out


def _black(interpreter, spec: dict) -> None:
    """An Edge TPU is timed on a black picture (what a fresh input holds is whatever memory held)."""
    if spec.get("backend") == "edgetpu":
        import numpy as np  # only for a Coral, after the RSS baseline (the order: module docstring)

        detail = interpreter.get_input_details()[0]
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))


def _edgetpu(runtime: str, out: dict):
    """A maker of ``experimental_delegates`` for the Coral found here, or None with ``out["error"]`` set."""
    from edgecam.model.backends import edgetpu  # only for a Coral, after the RSS baseline (module docstring)

    library = edgetpu.library_path()
    if library is None:
        out["error"] = f"no {edgetpu.LIBRARY}: {edgetpu.INSTALL_HINT}"
        return None
    options, _ = edgetpu.device_options()
    load = edgetpu.delegate_loader(runtime)

    def new():
        try:
            return {"experimental_delegates": [load(library, options)]}
        except (OSError, ValueError) as e:
            raise RuntimeError(f"the Edge TPU delegate did not load ({_first_line(e)}); see edgecam doctor") from None

    return new


def _accuracy(spec: dict, threads: int, delegates: dict) -> tuple[dict | None, str | None]:
    # After the peak RSS is read: that figure has no OpenCV, YAML or evaluation code in it (module docstring).
    from edgecam.measure import evaluate as ev
    from edgecam.model.classifier import Classifier
    from edgecam.registry import read_labels

    if not spec.get("labels_path"):
        return None, spec.get("labels_error") or "no labels file"
    try:
        kind = Classifier
        if delegates:
            from edgecam.model.backends.edgetpu import EdgeTpuClassifier  # after the RSS, as above

            kind = partial(EdgeTpuClassifier, delegate=delegates["experimental_delegates"][0])
        clf = kind(spec["model_path"], read_labels(spec["labels_path"]), name=spec["name"],
                   runtime=spec.get("runtime", "auto"), threads=threads, crop=spec["crop"],
                   crop_fraction=spec["crop_fraction"], mean=spec.get("mean", 127.5),
                   std=spec.get("std", 127.5), labels_path=spec["labels_path"])
        photos = ev.load_photos(spec["images"], spec.get("expected"))
        (res,) = ev.evaluate([clf], photos)
    except EdgecamError as e:
        return None, e.message
    return res.to_dict(), None


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(args[0])
    print(json.dumps(probe(spec)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
