"""The flatbuffer reader and the one edit (more subgraph outputs), checked against the TFLite
schema's own generated reader (ai-edge-litert's schema_py_generated) on the real models."""

from __future__ import annotations

import numpy as np
import pytest

from edgecam.model import tflite_file
from edgecam.errors import ModelError

schema = pytest.importorskip("ai_edge_litert.schema_py_generated", reason="ai-edge-litert ships the TFLite schema")

FILES = ["v3-small_224_1.0_uint8.tflite", "mobilenet_v2_1.0_224_quant.tflite", "mobilenet_v1_0.25_128_quant.tflite"]


def official_outputs(buf: bytes) -> list[int]:
    model = schema.Model.GetRootAsModel(buf, 0)
    return [int(v) for v in model.Subgraphs(0).OutputsAsNumpy()]


@pytest.mark.parametrize("name", FILES)
def test_outputs_read_as_the_schema_reads_them(shared_dir, name):
    buf = (shared_dir / "models" / name).read_bytes()
    assert tflite_file.subgraph_outputs(buf) == official_outputs(buf)


@pytest.mark.parametrize("name", FILES)
def test_add_outputs_appends_and_changes_nothing_else(shared_dir, name):
    buf = (shared_dir / "models" / name).read_bytes()
    before = official_outputs(buf)
    edited = tflite_file.add_outputs(buf, [3, 5])
    assert official_outputs(edited) == before + [3, 5]
    assert edited[:len(buf)][4:] != b""  # the original bytes are there...
    changed = np.flatnonzero(np.frombuffer(edited[:len(buf)], np.uint8) != np.frombuffer(buf, np.uint8))
    assert changed.size <= 4  # ...but for the one offset that now points at the new list
    # Every tensor and buffer reads as before.
    a, b = schema.Model.GetRootAsModel(buf, 0), schema.Model.GetRootAsModel(edited, 0)
    assert a.Subgraphs(0).TensorsLength() == b.Subgraphs(0).TensorsLength()
    assert [a.Subgraphs(0).Tensors(i).Name() for i in range(20)] == [b.Subgraphs(0).Tensors(i).Name() for i in range(20)]


def test_add_outputs_keeps_a_tensor_listed_once(shared_dir):
    buf = (shared_dir / "models" / FILES[0]).read_bytes()
    out = official_outputs(buf)
    assert official_outputs(tflite_file.add_outputs(buf, out + [1])) == out + [1]


@pytest.mark.parametrize("bad", [-1, 10**6])
def test_add_outputs_refuses_a_tensor_that_is_not_there(shared_dir, bad):
    buf = (shared_dir / "models" / FILES[0]).read_bytes()
    with pytest.raises(ModelError, match="not one of the model's"):
        tflite_file.add_outputs(buf, [bad])


@pytest.mark.parametrize("data", [b"", b"12345678", b"\0\0\0\0TFL3", b"\xff\xff\xff\x7fTFL3" + b"\0" * 8])
def test_garbage_is_one_error(data):
    with pytest.raises(ModelError):
        tflite_file.subgraph_outputs(data)


def test_no_metadata_in_the_registry_models(shared_dir):
    buf = (shared_dir / "models" / FILES[0]).read_bytes()
    assert tflite_file.metadata_buffer(buf, "TFLITE_METADATA") is None
