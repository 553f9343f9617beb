"""The base model's penultimate features (the embedding), from the model file edgecam already has.

A MobileNet ends in a global pool, a 1x1 convolution (or fully-connected
layer) to one logit per class, and a softmax. The input of that last layer is
the embedding: 1024 values for V1 1.0 and V3-Small, 1280 for V2, 768 for V1
0.75. :func:`feature_tensor` finds it in the graph (walking back from the
output through SOFTMAX / RESHAPE / SQUEEZE / (DE)QUANTIZE to the layer whose
output has one value per class).

How it is read (measured, see the issue-13 note): a **variant of the model
file** whose main subgraph lists that tensor as a second output
(:func:`edgecam.model.tflite_file.add_outputs`: the output list is appended at the
end of the file, nothing else changes). The interpreter then keeps the
tensor's value after each invoke, with any runtime and with XNNPACK; the
scores are identical to the bit and invoke takes the same time. The other
ways were worse: an intermediate tensor of the plain model is overwritten by
later ops (its memory is reused), and ``experimental_preserve_all_tensors``
keeps every intermediate tensor (more memory; the runtime calls it a
debugging option).

The variant is made once from the verified base file and cached beside it
(``<file>.features.tflite``) with a record (``<file>.features.json``: the
base file's SHA-256, the tensor, the variant's own SHA-256), checked at every
load; a mismatch makes it again. A model folder that cannot be written just
means the variant is built in memory each time (a few ms).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from edgecam.model import tflite_file
from edgecam.atomic import write_atomic
from edgecam.model.runtime import interpreter_class
from edgecam.errors import ModelError

logger = logging.getLogger(__name__)

#: Ops between the class-logit layer and the model's output.
_PASS_THROUGH = frozenset({"SOFTMAX", "RESHAPE", "SQUEEZE", "QUANTIZE", "DEQUANTIZE", "LOGISTIC"})
_LOGIT_OPS = frozenset({"CONV_2D", "FULLY_CONNECTED"})
VARIANT_SUFFIX = ".features.tflite"
RECORD_SUFFIX = ".features.json"


def _sha256_bytes(data: bytes) -> str:
    from edgecam.registry.store import new_sha256  # CPython's own SHA-256: no OpenSSL in memory

    h = new_sha256()
    h.update(data)
    return h.hexdigest()


def feature_tensor(interpreter) -> int:
    """The index of the embedding tensor of a classifier (the input of its class-logit layer).

    ``interpreter`` needs no allocated tensors. Raises ModelError for a graph
    that does not end in a logit layer (then there is no embedding to take).
    """
    try:
        ops = interpreter._get_ops_details()
    except AttributeError:
        raise ModelError("this TFLite runtime cannot list a model's ops; install ai-edge-litert") from None
    tensors = {int(t["index"]): t for t in interpreter.get_tensor_details()}
    producer = {int(o): op for op in ops for o in op["outputs"]}
    out = int(interpreter.get_output_details()[0]["index"])
    op = producer.get(out)
    for _ in range(8):
        if op is None:
            break
        if op["op_name"] in _LOGIT_OPS:
            data = [int(i) for i in op["inputs"] if int(i) >= 0 and int(i) in producer]
            if not data:
                break
            feat = data[0]
            shape = [int(s) for s in tensors[feat]["shape"]]
            if len(shape) >= 2 and all(s == 1 for s in shape[:-1]):
                return feat
            break
        if op["op_name"] not in _PASS_THROUGH:
            break
        data = [int(i) for i in op["inputs"] if int(i) >= 0 and int(i) in producer]
        op = producer.get(data[0]) if data else None
    raise ModelError("the model does not end in a pooled vector and a class layer, so it has no embedding to "
                     "learn from; use a MobileNet from 'edgecam models list' as --base")


@dataclass(frozen=True)
class Variant:
    """The embedding variant of a model: its bytes or its cached file, and which tensor it adds."""

    path: Path | None  # the cached file, or None when it lives in memory only
    content: bytes | None
    tensor: int
    sha256: str


def _read_record(record: Path) -> dict | None:
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def variant(model_path: Path, base_sha256: str | None = None, runtime: str = "auto") -> Variant:
    """The embedding variant of ``model_path`` (see the module docstring), from the cache when it is good.

    ``base_sha256``: the base file's hash when the caller knows it (a
    verified registry model); else it is computed.
    """

    model_path = Path(model_path)
    base = model_path.read_bytes()
    base_sha = base_sha256 or _sha256_bytes(base)
    cached = model_path.with_name(model_path.name + VARIANT_SUFFIX)
    record = model_path.with_name(model_path.name + RECORD_SUFFIX)
    rec = _read_record(record)
    if rec and rec.get("base_sha256") == base_sha and cached.is_file():
        try:
            data = cached.read_bytes()
        except OSError:
            data = b""
        if _sha256_bytes(data) == rec.get("sha256"):
            return Variant(cached, None, int(rec["tensor"]), rec["sha256"])
        logger.warning("%s does not match its record %s; making it again", cached, record)
    _, Interpreter = interpreter_class(runtime)
    try:
        tensor = feature_tensor(Interpreter(model_content=base))
    except (ValueError, RuntimeError) as e:
        raise ModelError(f"model file {model_path}: the runtime cannot read it ({str(e).strip().splitlines()[0]})") \
            from None
    content = tflite_file.add_outputs(base, [tensor])
    sha = _sha256_bytes(content)
    try:
        write_atomic(cached, content)
        write_atomic(record, (json.dumps({"base_file": model_path.name, "base_sha256": base_sha,
                                          "tensor": tensor, "sha256": sha}, indent=1) + "\n").encode())
    except OSError as e:
        logger.debug("cannot cache the embedding variant beside %s (%s): kept in memory", model_path, e)
        return Variant(None, content, tensor, sha)
    logger.info("made the embedding variant of %s (tensor %d as a second output): %s", model_path.name, tensor,
                cached)
    return Variant(cached, None, tensor, sha)
