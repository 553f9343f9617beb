"""What a .tflite model computes, read from its graph: parameters, MACs, blocks.

The figures that tell MobileNet V1, V2 and V3 apart, computed from the ops and
tensor shapes stored in the model file (nothing is taken from a table):

* **parameters**: the elements of the weight and bias tensors of the
  convolution and fully-connected ops;
* **multiply-accumulates (MACs) per image**: for each ``CONV_2D``
  ``out_h * out_w * out_c * k_h * k_w * in_c / groups``, for each
  ``DEPTHWISE_CONV_2D`` ``out_h * out_w * out_c * k_h * k_w``, for each
  ``FULLY_CONNECTED`` ``rows * units * inputs``. Pools, adds and activations
  are not counted (under 1% of a MobileNet's work), as in the papers;
* **where the MACs go**: ``depthwise`` convolutions, ``pointwise`` (1x1)
  convolutions over a feature map, ``standard`` (k x k, k > 1) convolutions,
  and ``fully_connected``: FC ops and 1x1 convolutions over a 1x1 map (what the
  classifier head and squeeze-and-excitation layers are, whatever op the
  converter chose). V1's paper puts 95% of its MACs in 1x1 convolutions;
  V3's squeeze-and-excitation shows up as a larger fully-connected share;
* **squeeze-and-excitation blocks**: a ``MUL`` of a feature map ``x`` by a
  per-channel gate computed from a global pool of that same ``x`` (through
  1x1 convolutions or FC layers and a hard sigmoid);
* **h-swish activations**: ``HARD_SWISH`` ops, and ``x * relu6(x + 3) / 6``
  spelled out as ``MUL(x, f(x))`` by converters without that op.

The op list comes from the TFLite interpreter's op introspection
(``_get_ops_details``, present in ai-edge-litert and tflite-runtime 2.14),
without allocating tensors, so it also reads models the runtime cannot run
(an Edge TPU build: its one custom op is listed in ``custom_ops``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecam.errors import ModelError
from edgecam.model.interpreter import check_model_file
from edgecam.model.runtime import interpreter_class

KINDS = ("standard", "depthwise", "pointwise", "fully_connected")
WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
GLOBAL_POOLS = ("AVERAGE_POOL_2D", "MEAN", "SUM", "REDUCE_MAX")
# Ops that a hard sigmoid / h-swish is spelled with when not fused.
_ELEMENTWISE = frozenset({"ADD", "SUB", "MUL", "DIV", "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1",
                          "MINIMUM", "MAXIMUM", "QUANTIZE", "DEQUANTIZE", "HARD_SWISH"})
_SMOOTH = frozenset({"LOGISTIC", "TANH", "EXP"})  # swish / SiLU, not the hard variant
# What a squeeze-and-excitation gate passes through between the pool and the MUL.
_GATE_OPS = _ELEMENTWISE | _SMOOTH | {"CONV_2D", "FULLY_CONNECTED", "RESHAPE", "SQUEEZE", "EXPAND_DIMS"}


@dataclass(frozen=True)
class Tensor:
    """What the analysis needs of a tensor: shape, element type, number of quantization scales."""

    shape: tuple[int, ...]
    dtype: str
    scales: int = 0


@dataclass(frozen=True)
class Op:
    name: str
    inputs: tuple[int, ...]  # -1 for an optional input left out
    outputs: tuple[int, ...]


@dataclass(frozen=True)
class GraphStats:
    """The figures of one model graph (see the module docstring)."""

    params: int
    macs: int
    macs_by_kind: Mapping[str, int]
    se_blocks: int
    hswish: int
    ops: Mapping[str, int]
    input_shape: tuple[int, ...]
    input_dtype: str
    quantization: str
    custom_ops: tuple[str, ...] = field(default_factory=tuple)

    def share(self, kind: str) -> float:
        """The fraction of the MACs in ``kind`` (one of :data:`KINDS`)."""
        return self.macs_by_kind.get(kind, 0) / self.macs if self.macs else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "macs": self.macs,
            "mac_share": {k: round(self.share(k), 4) for k in KINDS},
            "se_blocks": self.se_blocks,
            "hswish": self.hswish,
            "input_shape": list(self.input_shape),
            "input_dtype": self.input_dtype,
            "quantization": self.quantization,
            "ops": dict(self.ops),
            "custom_ops": list(self.custom_ops),
        }


def _spatial(shape: Sequence[int]) -> int:
    """H * W of an NHWC shape (1 for a [N, C] vector)."""
    return math.prod(shape[1:-1]) if len(shape) >= 3 else 1


class _Graph:
    def __init__(self, ops: Sequence[Op], tensors: Mapping[int, Tensor], inputs: Sequence[int]):
        self.ops, self.tensors, self.inputs = ops, tensors, set(inputs)
        self.producer = {t: op for op in ops for t in op.outputs}

    def shape(self, t: int) -> tuple[int, ...]:
        return self.tensors[t].shape

    def is_const(self, t: int) -> bool:
        return t >= 0 and t not in self.producer and t not in self.inputs

    def const_source(self, t: int) -> int | None:
        """``t`` if it is a constant, or the constant a DEQUANTIZE turns into ``t`` (float16 weights)."""
        if self.is_const(t):
            return t
        op = self.producer.get(t)
        if op is not None and op.name == "DEQUANTIZE" and self.is_const(op.inputs[0]):
            return op.inputs[0]
        return None

    def data_inputs(self, op: Op) -> list[int]:
        return [t for t in op.inputs if t >= 0 and self.const_source(t) is None]

    def trace(self, start: int, target: int, allowed: frozenset, max_steps: int = 12) -> list[Op] | None:
        """The ops from ``target`` to ``start`` along single-data-input ops of ``allowed`` types, or None."""
        chain: list[Op] = []
        t = start
        for _ in range(max_steps):
            if t == target:
                return chain
            op = self.producer.get(t)
            if op is None or op.name not in allowed:
                return None
            data = self.data_inputs(op)
            if len(data) != 1:
                return None
            chain.append(op)
            t = data[0]
        return None


def _macs(g: _Graph, op: Op) -> tuple[str, int]:
    out = g.shape(op.outputs[0])
    w = g.shape(op.inputs[1])
    if op.name == "CONV_2D":  # filter [out_c, k_h, k_w, in_c / groups]
        kind = "standard" if w[1] * w[2] > 1 else ("pointwise" if _spatial(out) > 1 else "fully_connected")
        return kind, _spatial(out) * out[-1] * w[1] * w[2] * w[3]
    if op.name == "DEPTHWISE_CONV_2D":  # filter [1, k_h, k_w, out_c]
        return "depthwise", _spatial(out) * out[-1] * w[1] * w[2]
    units, inputs = w[0], w[-1]  # FULLY_CONNECTED weights [units, inputs]
    return "fully_connected", math.prod(out) // max(units, 1) * units * inputs


def _se_blocks(g: _Graph) -> int:
    count = 0
    for op in g.ops:
        if op.name != "MUL":
            continue
        data = g.data_inputs(op)
        if len(data) != 2:
            continue
        for x, gate in (data, data[::-1]):
            xs, gs = g.shape(x), g.shape(gate)
            if not xs or not gs or _spatial(xs) <= 1 or _spatial(gs) != 1 or xs[-1] != gs[-1]:
                continue
            # walk back from the gate to a global pool whose input is x itself
            t, steps = gate, 0
            while steps < 12:
                src = g.producer.get(t)
                if src is None:
                    break
                if src.name in GLOBAL_POOLS and _spatial(g.shape(src.outputs[0])) == 1:
                    count += src.inputs[0] == x
                    break
                inputs = g.data_inputs(src)
                if src.name not in _GATE_OPS or len(inputs) != 1:
                    break
                t, steps = inputs[0], steps + 1
            else:
                continue
            break
    return count


def _decomposed_hswish(g: _Graph) -> int:
    count = 0
    for op in g.ops:
        if op.name != "MUL":
            continue
        data = g.data_inputs(op)
        if len(data) != 2 or g.shape(data[0]) != g.shape(data[1]):
            continue
        for x, y in (data, data[::-1]):
            chain = g.trace(y, x, _ELEMENTWISE)
            if chain and any(c.name == "ADD" for c in chain):  # relu6(x + 3): the + 3
                count += 1
                break
    return count


def _quantization(g: _Graph, weighted: list[Op]) -> str:
    if not weighted:
        return "unknown"
    w = [g.tensors[g.const_source(op.inputs[1]) or op.inputs[1]] for op in weighted]
    act = {g.tensors[op.outputs[0]].dtype for op in weighted}
    wtypes = {t.dtype for t in w}
    if len(wtypes) > 1:
        return "mixed " + "/".join(sorted(wtypes))
    (wt,) = wtypes
    if wt in ("float32",):
        return "float32"
    if wt == "float16":
        return "float16 weights"
    per_channel = any(t.scales > 1 for t in w)
    text = f"{wt}{' per-channel' if per_channel else ''}"
    if act == {"float32"}:
        return f"{text} weights, float32 activations (dynamic range)"
    return text


def analyze_graph(ops: Sequence[Op], tensors: Mapping[int, Tensor], inputs: Sequence[int]) -> GraphStats:
    """The :class:`GraphStats` of a graph given as plain ops and tensors."""
    g = _Graph(ops, tensors, inputs)
    params = 0
    seen: set[int] = set()
    macs = dict.fromkeys(KINDS, 0)
    weighted = [op for op in ops if op.name in WEIGHTED_OPS and len(op.inputs) >= 2]
    for op in weighted:
        for t in op.inputs[1:]:
            src = g.const_source(t) if t >= 0 else None
            if src is not None and src not in seen:
                seen.add(src)
                params += math.prod(g.shape(src))
        kind, n = _macs(g, op)
        macs[kind] += n
    counts = Counter(op.name for op in ops)
    custom = tuple(sorted(name for name in counts if not name.isupper()))  # builtins are UPPER_CASE
    first = next(iter(inputs), None)
    return GraphStats(
        params=params,
        macs=sum(macs.values()),
        macs_by_kind=macs,
        se_blocks=_se_blocks(g),
        hswish=counts.get("HARD_SWISH", 0) + _decomposed_hswish(g),
        ops=dict(counts),
        input_shape=g.shape(first) if first is not None and first in tensors else (),
        input_dtype=tensors[first].dtype if first is not None and first in tensors else "",
        quantization=_quantization(g, weighted),
        custom_ops=custom,
    )


def analyze_interpreter(interpreter) -> GraphStats:
    """The :class:`GraphStats` of a TFLite interpreter's model (tensors need not be allocated)."""
    try:
        details = interpreter._get_ops_details()
    except AttributeError:
        raise ModelError("this TFLite runtime cannot list a model's ops; install ai-edge-litert") from None
    ops = [Op(d["op_name"], tuple(int(i) for i in d["inputs"]), tuple(int(o) for o in d["outputs"]))
           for d in details]
    tensors = {}
    for t in interpreter.get_tensor_details():
        q = t.get("quantization_parameters") or {}
        scales = len(q.get("scales", ())) if q else 0
        tensors[int(t["index"])] = Tensor(tuple(int(s) for s in t["shape"]), np.dtype(t["dtype"]).name, scales)
    inputs = [int(d["index"]) for d in interpreter.get_input_details()]
    return analyze_graph(ops, tensors, inputs)


def read_graph(model_path: str | Path, runtime: str = "auto") -> GraphStats:
    """Read ``model_path`` with the TFLite runtime (no tensors allocated) and analyze it."""

    check_model_file(Path(model_path))
    _, Interpreter = interpreter_class(runtime)
    try:
        interpreter = Interpreter(model_path=str(model_path))
    except (ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"model file {model_path}: the runtime cannot read it ({first})") from None
    return analyze_interpreter(interpreter)
