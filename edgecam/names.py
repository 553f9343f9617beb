"""The names that become part of a path, an MQTT topic or a metric label: one rule each, checked everywhere.

Four kinds:

* an **identifier** (a region's name, a rule's name): letters, digits, ``_``
  and ``-``, up to 64. It names folders, MQTT topic levels, Home Assistant
  ids and Prometheus label values as it is, with no escaping anywhere.
* a **camera name** (``cameras:``, ``--source NAME=SPEC``): an identifier of
  up to 32, short enough to prefix the others in a topic, a metric or a folder.
* a **model name** (``edgecam learn --name``): an identifier that may also
  hold ``.`` (``garage.v2``), not ending in ``.tflite``: it names the file
  ``<name>.head.npz`` in the model folder.
* a **label** (a state, a class): free text, since a model's classes are
  (``tabby, tabby cat``, ``potter's wheel``, ``Larus glaucescens ×
  occidentalis``), but one that can be a single folder name, because an
  example of it is saved in ``<examples_dir>/<region>/<label>/`` (the web
  page's buttons, ``edgecam collect``, a rule's ``collect: true``): no
  ``/``, not ``.`` or ``..`` nor hidden (a leading ``.``), no
  control character (a newline, a tab), no leading or trailing space, not
  starting with ``=``, ``+``, ``-`` or ``@`` (a spreadsheet formula, a
  command-line option), at most 200 characters and 255 bytes. A ``\\`` is
  allowed: on Linux it is an ordinary character (two of the iNat birds'
  labels hold a literal ``\\xd7``).

Each check returns None for a good name, else what was expected: the same
words as the config's other checks (``got X, expected ...``).
"""

from __future__ import annotations

import re

IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
#: What an identifier may be, for messages.
IDENTIFIER_RULE = "a name of letters, digits, '_' and '-' (up to 64; it names MQTT topics, metrics and folders)"
#: What a label may be, for messages.
LABEL_RULE = ("a label that can be a folder name: no '/', no control characters (newline, tab), "
              "not starting with '.', '=', '+', '-', '@' or a space, at most 200 characters")
MAX_LABEL_CHARS = 200
MAX_LABEL_BYTES = 255  # a file name on ext4, FAT and most others


def identifier_problem(value: str) -> str | None:
    """None when ``value`` is a good identifier (a region's or rule's name), else what is expected."""
    return None if IDENTIFIER.fullmatch(value) else IDENTIFIER_RULE


CAMERA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
CAMERA_NAME_RULE = "a name of letters, digits, '_' and '-' (up to 32; it names the camera's topics, metrics and folders)"


def camera_name_problem(value: str) -> str | None:
    """None when ``value`` is a good camera name (``cameras[].name``, ``--source NAME=...``), else what is expected."""
    return None if CAMERA_NAME.fullmatch(value) else CAMERA_NAME_RULE


MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MODEL_NAME_RULE = "letters, digits, '_', '.', '-' (up to 64, not ending in .tflite)"


def model_name_problem(value: str) -> str | None:
    """None when ``value`` can be a custom model's name, else what is expected."""
    return None if MODEL_NAME.fullmatch(value) and not value.endswith(".tflite") else MODEL_NAME_RULE


def label_problem(value: str) -> str | None:
    """None when ``value`` is a good label (it can name a folder of examples), else what is expected."""
    ok = (
        bool(value)
        and value.isprintable()  # no control or format characters, no lone surrogate (a non-UTF-8 file name)
        and value == value.strip()
        and value[0] not in ".=+-@"
        and "/" not in value
        and len(value) <= MAX_LABEL_CHARS
        and len(value.encode("utf-8")) <= MAX_LABEL_BYTES
    )
    return None if ok else LABEL_RULE


def labels_problem(values: list[str]) -> str | None:
    """None when ``values`` are distinct good labels (a region's ``labels``), else what is expected."""
    if len(set(values)) != len(values):
        return "distinct labels"
    for value in values:
        problem = label_problem(value)
        if problem:
            return f"{problem} (not {value!r})"
    return None
