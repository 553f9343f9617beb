"""Reading and one small edit of a ``.tflite`` file's flatbuffer, with no dependency.

A ``.tflite`` file is a FlatBuffer of the TFLite schema (``schema.fbs``):
the root ``Model`` table has ``subgraphs`` (field 2), ``buffers`` (4) and
``metadata`` (6); a ``SubGraph`` has ``tensors`` (0), ``inputs`` (1) and
``outputs`` (2). What edgecam needs of it is small:

* :func:`add_outputs`: a copy of the model with more tensors in the main
  subgraph's output list (the embedding variant: the pooled features become
  a second output, :mod:`edgecam.model.embedding`). The new list is appended at the
  end of the file and the ``outputs`` field made to point at it; nothing else
  moves, so every other offset stays valid;
* :func:`metadata_buffer`: the bytes of a named metadata entry
  (``TFLITE_METADATA``: the labels and normalisation Model Maker and
  Teachable Machine exports carry, :mod:`edgecam.model.custom_models`).

:class:`Table` reads any table of any FlatBuffer (fields by their number in
the schema), so the metadata's own FlatBuffer is read the same way.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from edgecam.errors import ModelError

TFLITE_IDENTIFIER = b"TFL3"

# Field numbers in schema.fbs (the order of the fields in each table).
MODEL_SUBGRAPHS, MODEL_BUFFERS, MODEL_METADATA = 2, 4, 6
SUBGRAPH_TENSORS, SUBGRAPH_INPUTS, SUBGRAPH_OUTPUTS = 0, 1, 2
BUFFER_DATA = 0
METADATA_NAME, METADATA_BUFFER = 0, 1


class FlatbufferError(ModelError):
    """The bytes are not the FlatBuffer they should be (a truncated or corrupt file)."""


@dataclass(frozen=True)
class Table:
    """One table of a FlatBuffer: ``buf`` and the table's position in it."""

    buf: bytes
    pos: int

    def _read(self, fmt: str, at: int):
        """One value of struct format ``fmt`` at ``at``; a FlatbufferError instead of reading past the end."""
        if at < 0 or at + struct.calcsize(fmt) > len(self.buf):
            raise FlatbufferError(f"offset {at} is outside the data ({len(self.buf)} bytes): truncated or corrupt")
        return struct.unpack_from(fmt, self.buf, at)[0]

    def _u32(self, at: int) -> int:
        return self._read("<I", at)

    def field_pos(self, field: int) -> int | None:
        """Where field number ``field`` is stored, or None when it is absent (default value)."""
        vtable = self.pos - self._read("<i", self.pos)
        vsize = self._read("<H", vtable)
        slot = 4 + 2 * field
        if slot + 2 > vsize:
            return None
        off = self._read("<H", vtable + slot)
        return self.pos + off if off else None

    def _target(self, field: int) -> int | None:
        at = self.field_pos(field)
        return None if at is None else at + self._u32(at)

    def table(self, field: int) -> Table | None:
        """A sub-table field."""
        at = self._target(field)
        return None if at is None else Table(self.buf, at)

    def scalar(self, field: int, fmt: str, default=0):
        """A scalar field (``fmt`` a struct format such as ``'<b'`` or ``'<i'``)."""
        at = self.field_pos(field)
        return default if at is None else self._read(fmt, at)

    def vector_pos(self, field: int) -> tuple[int, int] | None:
        """(position of the first element, length) of a vector field; None when absent."""
        at = self._target(field)
        if at is None:
            return None
        return at + 4, self._u32(at)

    def tables(self, field: int) -> list[Table]:
        """A vector of tables."""
        vec = self.vector_pos(field)
        if vec is None:
            return []
        start, n = vec
        return [Table(self.buf, start + 4 * i + self._u32(start + 4 * i)) for i in range(n)]

    def ints(self, field: int, fmt: str = "i") -> list[int]:
        """A vector of scalars (``fmt``: ``i`` int32, ``f`` float32...)."""
        vec = self.vector_pos(field)
        if vec is None:
            return []
        start, n = vec
        size = struct.calcsize(fmt)
        if start + n * size > len(self.buf):
            raise FlatbufferError(f"a vector of {n} values at {start} runs past the end of the data")
        return list(struct.unpack_from(f"<{n}{fmt}", self.buf, start))

    def bytes(self, field: int) -> bytes:
        """A ``[ubyte]`` vector field (b'' when absent)."""
        vec = self.vector_pos(field)
        if vec is None:
            return b""
        start, n = vec
        if start + n > len(self.buf):
            raise FlatbufferError(f"{n} bytes at {start} run past the end of the data")
        return self.buf[start:start + n]

    def string(self, field: int) -> str | None:
        vec = self.vector_pos(field)
        if vec is None:
            return None
        start, n = vec
        return self.buf[start:start + n].decode("utf-8", "replace")


def root(buf: bytes) -> Table:
    """The root table of a FlatBuffer."""
    if len(buf) < 8:
        raise FlatbufferError("too short to be a FlatBuffer")
    return Table(buf, struct.unpack_from("<I", buf, 0)[0])


def model_root(buf: bytes) -> Table:
    """The ``Model`` table of a ``.tflite`` file's bytes."""
    if buf[4:8] != TFLITE_IDENTIFIER:
        raise FlatbufferError("not a TFLite model (no TFL3 identifier)")
    return root(buf)


def subgraph_outputs(buf: bytes) -> list[int]:
    """The tensor indices the main subgraph outputs."""
    subgraphs = model_root(buf).tables(MODEL_SUBGRAPHS)
    if not subgraphs:
        raise FlatbufferError("the model has no subgraph")
    return subgraphs[0].ints(SUBGRAPH_OUTPUTS)


def add_outputs(buf: bytes, tensors: list[int]) -> bytes:
    """A copy of the model ``buf`` whose main subgraph also outputs ``tensors`` (after its own outputs).

    The interpreter then keeps those tensors' values after each invoke (they
    are outputs: no later op reuses their memory) and ``get_output_details()``
    lists them after the original outputs, which keep their order.
    """
    sub = model_root(buf).tables(MODEL_SUBGRAPHS)
    if not sub:
        raise FlatbufferError("the model has no subgraph")
    graph = sub[0]
    n_tensors = graph.vector_pos(SUBGRAPH_TENSORS)
    count = n_tensors[1] if n_tensors else 0
    bad = [t for t in tensors if not 0 <= t < count]
    if bad:
        raise FlatbufferError(f"tensor {bad[0]} is not one of the model's {count} tensors")
    at = graph.field_pos(SUBGRAPH_OUTPUTS)
    if at is None:
        raise FlatbufferError("the main subgraph has no output list")
    outputs = graph.ints(SUBGRAPH_OUTPUTS) + [t for t in tensors if t not in graph.ints(SUBGRAPH_OUTPUTS)]
    out = bytearray(buf)
    out += b"\0" * (-len(out) % 4)  # a vector is 4-byte aligned
    vector = len(out)
    out += struct.pack(f"<I{len(outputs)}i", len(outputs), *outputs)
    # The field holds an unsigned offset from itself forward: the end of the file is forward.
    struct.pack_into("<I", out, at, vector - at)
    return bytes(out)


def metadata_buffer(buf: bytes, name: str) -> bytes | None:
    """The bytes of the model's metadata entry ``name`` (e.g. ``TFLITE_METADATA``), or None."""
    model = model_root(buf)
    buffers = None
    for entry in model.tables(MODEL_METADATA):
        if entry.string(METADATA_NAME) == name:
            if buffers is None:
                buffers = model.tables(MODEL_BUFFERS)
            index = entry.scalar(METADATA_BUFFER, "<I")
            if index >= len(buffers):
                raise FlatbufferError(f"metadata {name!r} points at buffer {index} of {len(buffers)}")
            return buffers[index].bytes(BUFFER_DATA)
    return None
