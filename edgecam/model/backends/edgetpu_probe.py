"""Load the Edge TPU delegate and run a model once, in a process of its own (``python -m``).

:func:`edgecam.model.backends.edgetpu.probe` runs this before edgecam loads the
delegate itself: a libedgetpu built for another TFLite runtime may crash the
process that loads it, and this process is the one that may die. It prints
one JSON object: ``{}`` when the delegate loaded and the model ran, else
``{"error": KIND, "message": ...}`` with KIND ``library`` (dlopen failed),
``delegate`` (no delegate: no Coral, or it cannot be opened; the message is
the library's reason, often empty), ``runtime`` (no TFLite runtime) or
``model`` (the delegate failed on the model).
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

from edgecam.errors import EdgecamError
from edgecam.model.backends.edgetpu import delegate_loader
from edgecam.model.runtime import interpreter_class


def run(spec: dict) -> dict:
    try:
        runtime, Interpreter = interpreter_class(spec["runtime"])
    except EdgecamError as e:
        return {"error": "runtime", "message": e.message}
    try:
        delegate = delegate_loader(runtime)(spec["library"], spec.get("options") or {})
    except OSError as e:
        return {"error": "library", "message": str(e)}
    except ValueError as e:
        # "Failed to load delegate from LIB\n<the library's reason>"
        return {"error": "delegate", "message": str(e).partition("\n")[2].strip()}
    try:
        interpreter = Interpreter(model_path=spec["model"], experimental_delegates=[delegate])
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))  # a black picture
        interpreter.invoke()
    except (ValueError, RuntimeError) as e:
        lines = [line for line in str(e).splitlines() if line.strip()]
        return {"error": "model", "message": "; ".join(lines[:2]) or type(e).__name__}
    return {}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = sys.argv[1:] if argv is None else argv
    print(json.dumps(run(json.loads(args[0]))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
