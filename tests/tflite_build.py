"""Small custom classifiers made here from a shared MobileNet, as Teachable Machine and Model Maker
export them: N classes, uint8/int8/float32 outputs, labels in a file or packed in the model's metadata.

The base is ../shared's MobileNet V1 0.25/128 with its 1001-class layer cut down to the rows of the
classes asked for (so that real photos still get their right answer), read and written with
ai-edge-litert's generated TFLite schema and the flatbuffers package it depends on. The metadata is
a ModelMetadata FlatBuffer written field by field after tflite-support's metadata_schema.fbs, and the
labels file a zip appended to the model, as the metadata populator packs it.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

BASE = "mobilenet_v1_0.25_128_quant.tflite"
IMAGENET = {"cat": 286, "bird": 20, "uniform": 653}  # Egyptian cat, chickadee, military uniform


def _schema():
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    return flatbuffers, s


def n_class_model(models_dir: Path, classes: list[int], out: str = "uint8") -> bytes:
    """The base with only ``classes`` (ImageNet indices) as outputs, of dtype ``out``."""
    flatbuffers, s = _schema()
    m = s.ModelT.InitFromPackedBuf((Path(models_dir) / BASE).read_bytes(), 0)
    g = m.subgraphs[0]
    conv, reshape, softmax = g.operators[-3:]
    weights, bias = g.tensors[conv.inputs[1]], g.tensors[conv.inputs[2]]
    n = len(classes)
    w = m.buffers[weights.buffer].data.reshape(1001, -1)[classes]
    m.buffers[weights.buffer].data = np.ascontiguousarray(w).reshape(-1)
    weights.shape = np.array([n, 1, 1, w.shape[1]], np.int32)
    b = np.frombuffer(m.buffers[bias.buffer].data.tobytes(), np.int32)[classes]
    m.buffers[bias.buffer].data = np.frombuffer(b.tobytes(), np.uint8)
    bias.shape = np.array([n], np.int32)
    g.tensors[conv.outputs[0]].shape = np.array([1, 1, 1, n], np.int32)
    shape_tensor = g.tensors[reshape.inputs[1]]
    m.buffers[shape_tensor.buffer].data = np.frombuffer(np.array([1, n], np.int32).tobytes(), np.uint8)
    for t in (reshape.outputs[0], softmax.outputs[0]):
        g.tensors[t].shape = np.array([1, n], np.int32)
        g.tensors[t].shapeSignature = None
    if out != "uint8":
        code = s.BuiltinOperator.DEQUANTIZE if out == "float32" else s.BuiltinOperator.QUANTIZE
        opcode = s.OperatorCodeT()
        opcode.builtinCode = code
        opcode.deprecatedBuiltinCode = code
        opcode.version = 1 if out == "float32" else 2
        m.operatorCodes.append(opcode)
        t = s.TensorT()
        t.shape = np.array([1, n], np.int32)
        t.name = b"scores"
        t.buffer = 0
        if out == "float32":
            t.type = s.TensorType.FLOAT32
        else:
            t.type = s.TensorType.INT8
            q = s.QuantizationParametersT()
            q.scale, q.zeroPoint = np.array([1 / 256], np.float32), np.array([-128], np.int64)
            t.quantization = q
        g.tensors.append(t)
        op = s.OperatorT()
        op.opcodeIndex = len(m.operatorCodes) - 1
        op.inputs = np.array([softmax.outputs[0]], np.int32)
        op.outputs = np.array([len(g.tensors) - 1], np.int32)
        g.operators.append(op)
        g.outputs = np.array([len(g.tensors) - 1], np.int32)
    return _pack(m)


def _pack(m) -> bytes:
    flatbuffers, _ = _schema()
    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def model_metadata(labels_name: str | None, mean: float | None = None, std: float | None = None) -> bytes:
    """A ModelMetadata FlatBuffer ("M001"): the output's labels file, the input's normalisation."""
    flatbuffers, _ = _schema()
    b = flatbuffers.Builder(1024)
    inputs = outputs = None
    if mean is not None:
        mean_v = b.CreateNumpyVector(np.array([mean] * 3, np.float32))
        std_v = b.CreateNumpyVector(np.array([std] * 3, np.float32))
        b.StartObject(2)  # NormalizationOptions
        b.PrependUOffsetTRelativeSlot(0, mean_v, 0)
        b.PrependUOffsetTRelativeSlot(1, std_v, 0)
        norm = b.EndObject()
        b.StartObject(2)  # ProcessUnit: options_type, options
        b.PrependUint8Slot(0, 1, 0)
        b.PrependUOffsetTRelativeSlot(1, norm, 0)
        unit = b.EndObject()
        units = _vector(b, [unit])
        b.StartObject(7)  # TensorMetadata
        b.PrependUOffsetTRelativeSlot(4, units, 0)
        inputs = _vector(b, [b.EndObject()])
    if labels_name is not None:
        name = b.CreateString(labels_name)
        b.StartObject(4)  # AssociatedFile: name, description, type, locale
        b.PrependUOffsetTRelativeSlot(0, name, 0)
        b.PrependInt8Slot(2, 2, 0)  # TENSOR_AXIS_LABELS
        files = _vector(b, [b.EndObject()])
        b.StartObject(7)
        b.PrependUOffsetTRelativeSlot(6, files, 0)
        outputs = _vector(b, [b.EndObject()])
    b.StartObject(5)  # SubGraphMetadata
    if inputs is not None:
        b.PrependUOffsetTRelativeSlot(2, inputs, 0)
    if outputs is not None:
        b.PrependUOffsetTRelativeSlot(3, outputs, 0)
    subs = _vector(b, [b.EndObject()])
    model_name = b.CreateString("image classifier")
    b.StartObject(8)  # ModelMetadata
    b.PrependUOffsetTRelativeSlot(0, model_name, 0)
    b.PrependUOffsetTRelativeSlot(3, subs, 0)
    b.Finish(b.EndObject(), file_identifier=b"M001")
    return bytes(b.Output())


def _vector(b, offsets: list[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def with_metadata(model: bytes, labels: list[str] | None, mean: float | None = None, std: float | None = None,
                  labels_name: str = "labels.txt") -> bytes:
    """``model`` with a TFLITE_METADATA entry and, for ``labels``, the labels file zipped after it."""
    _, s = _schema()
    m = s.ModelT.InitFromPackedBuf(model, 0)
    buf = s.BufferT()
    buf.data = np.frombuffer(model_metadata(labels_name if labels else None, mean, std), np.uint8)
    m.buffers.append(buf)
    entry = s.MetadataT()
    entry.name = b"TFLITE_METADATA"
    entry.buffer = len(m.buffers) - 1
    # The base's own entry (Coral's: imagenet_labels.txt, whose zip re-packing dropped) gives way to this one.
    m.metadata = [e for e in (m.metadata or []) if e.name != b"TFLITE_METADATA"] + [entry]
    out = _pack(m)
    if labels:
        z = io.BytesIO()
        with zipfile.ZipFile(z, "w") as zf:
            zf.writestr(labels_name, "\n".join(labels) + "\n")
        out += z.getvalue()
    return out
