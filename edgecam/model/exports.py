"""Other people's custom models: Teachable Machine and Model Maker exports, loaded with ``--model PATH`` alone.

What such an export brings besides the ``.tflite`` file, and how edgecam reads it:

* a ``labels.txt`` whose lines are ``0 open``, ``1 closed`` (Teachable
  Machine): :func:`index_labels` drops the numbers when every line has the
  next one;
* labels packed in the model file (Model Maker, TFLite Support's metadata
  writer): the file's ``TFLITE_METADATA`` entry is a ``ModelMetadata``
  FlatBuffer (``metadata_schema.fbs``) whose output tensor names an
  associated file of type ``TENSOR_AXIS_LABELS``; the file itself is in a zip
  archive appended to the model (Coral's V1 MobileNets in ../shared are made
  so: their 1001 labels and mean/std 127.5 read this way). :func:`read` finds
  it (no extra files needed; when it is named but not packed, a labels file
  beside the model is used as for any model),
  and the input's ``NormalizationOptions`` (mean, std: a float model made for
  inputs in [0, 1] says std 255).

Any number of classes; uint8, int8 or float32 outputs (probabilities or
logits, :meth:`edgecam.model.classifier.Classifier.scores` tells).
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from edgecam.model import tflite_file
from edgecam.errors import ModelError

logger = logging.getLogger(__name__)

METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
# Field numbers in metadata_schema.fbs (a union takes two: its type, then its value).
MODEL_SUBGRAPHS, MODEL_FILES = 3, 6
SUBGRAPH_INPUTS, SUBGRAPH_OUTPUTS, SUBGRAPH_FILES = 2, 3, 4
TENSOR_PROCESS_UNITS, TENSOR_FILES = 4, 6
UNIT_OPTIONS_TYPE, UNIT_OPTIONS = 0, 1
NORMALIZATION = 1  # ProcessUnitOptions.NormalizationOptions
NORM_MEAN, NORM_STD = 0, 1
FILE_NAME, FILE_TYPE = 0, 2
TENSOR_AXIS_LABELS = 2

_INDEXED = re.compile(r"^(\d+)\s+(\S.*)$")


@dataclass(frozen=True)
class Export:
    """What a model file says about itself: its class names and input normalisation (None: not said)."""

    labels: list[str] | None = None
    mean: float | None = None
    std: float | None = None


def index_labels(lines: list[str]) -> list[str]:
    """``["0 open", "1 closed"]`` -> ``["open", "closed"]``; other lists as they are.

    Only when every line starts with its own index (0, 1, 2... in order), so
    that a label that happens to start with a number stays whole.
    """
    found = [_INDEXED.match(line) for line in lines]
    if lines and all(m is not None and int(m.group(1)) == i for i, m in enumerate(found)):
        return [m.group(2).strip() for m in found]
    return lines


def _labels_file(sub: tflite_file.Table | None, model: tflite_file.Table) -> str | None:
    tables = []
    if sub is not None:
        for tensor in sub.tables(SUBGRAPH_OUTPUTS)[:1]:
            tables += tensor.tables(TENSOR_FILES)
        tables += sub.tables(SUBGRAPH_FILES)
    tables += model.tables(MODEL_FILES)
    for f in tables:
        if f.scalar(FILE_TYPE, "<b") == TENSOR_AXIS_LABELS and f.string(FILE_NAME):
            return f.string(FILE_NAME)
    return None


def _normalization(sub: tflite_file.Table | None) -> tuple[float | None, float | None]:
    if sub is None:
        return None, None
    for tensor in sub.tables(SUBGRAPH_INPUTS)[:1]:
        for unit in tensor.tables(TENSOR_PROCESS_UNITS):
            if unit.scalar(UNIT_OPTIONS_TYPE, "<B") != NORMALIZATION:
                continue
            opts = unit.table(UNIT_OPTIONS)
            mean, std = (opts.ints(NORM_MEAN, "f"), opts.ints(NORM_STD, "f")) if opts is not None else ([], [])
            if len(set(mean)) > 1 or len(set(std)) > 1:
                logger.warning("the model's normalisation differs per channel (mean %s, std %s); using the first",
                               mean, std)
            return (float(mean[0]) if mean else None), (float(std[0]) if std else None)
    return None, None


def read(path: str | Path) -> Export:
    """The labels and normalisation a model file carries in its metadata (an empty Export when none)."""
    path = Path(path)
    try:
        buf = path.read_bytes()
    except OSError:
        return Export()
    try:
        meta = tflite_file.metadata_buffer(buf, METADATA_NAME)
    except ModelError:
        return Export()  # the classifier says what is wrong with the file itself
    if not meta or meta[4:8] != METADATA_IDENTIFIER:
        return Export()
    try:
        model = tflite_file.root(meta)
        subs = model.tables(MODEL_SUBGRAPHS)
        sub = subs[0] if subs else None
        mean, std = _normalization(sub)
        name = _labels_file(sub, model)
    except ModelError as e:
        raise ModelError(f"model file {path}: its TFLite metadata cannot be read ({e.message})") from None
    labels = None
    if name is not None:
        import zipfile  # here: it imports bz2 and lzma, memory the plain path does not need

        try:
            with zipfile.ZipFile(io.BytesIO(buf)) as z:
                text = z.read(name).decode("utf-8-sig")
        except (zipfile.BadZipFile, KeyError, UnicodeDecodeError) as e:
            # A file whose zip was lost (re-saved by a tool that keeps only the FlatBuffer):
            # a labels file beside the model is used, as for any model.
            logger.debug("model file %s: its metadata names the labels file %r, not packed with it (%s)",
                         path, name, e)
            return Export(None, mean, std)
        lines = [line.strip() for line in text.splitlines()]
        while lines and not lines[-1]:
            lines.pop()
        labels = index_labels(lines) or None
    return Export(labels, mean, std)
