"""A model file's interpreter: the checks that give one clear line, and a stand-in until it is built.

:func:`check_model_file` refuses what is clearly not a TFLite model before
a runtime sees it; :func:`load_error` is the one line for a model the runtime
refused. :class:`NotBuilt` stands for a :class:`edgecam.model.classifier.Classifier`'s
interpreter until the run knows how many threads it gets.
"""

from __future__ import annotations

from pathlib import Path

from edgecam.errors import ModelError
from edgecam.model.tflite_file import TFLITE_IDENTIFIER  # bytes 4..8 of every .tflite

class NotBuilt:
    """Stands for a classifier's interpreter until it is built (:meth:`edgecam.model.classifier.Classifier.build`).

    Its first use builds the real one, warmed up, with the classifier's
    threads, and puts it in its place: later uses cost nothing more.
    """

    __slots__ = ("_owner",)

    def __init__(self, owner):
        self._owner = owner

    def __getattr__(self, name: str):
        return getattr(self._owner.build(), name)


def check_model_file(path: Path) -> None:
    """Fail with one line when ``path`` is clearly not a TFLite model."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except FileNotFoundError:
        raise ModelError(f"model file {path}: not found; run 'edgecam models fetch NAME' or check the path") from None
    except OSError as e:
        raise ModelError(f"model file {path}: cannot read it ({e.strerror})") from None
    if len(head) < 8 or head[4:8] != TFLITE_IDENTIFIER:
        kind = "empty" if not head else "text" if head.isascii() and head.decode("ascii", "replace").isprintable() else "data"
        raise ModelError(
            f"model file {path}: not a TFLite model (it looks like {kind}, with no TFL3 header); "
            "fetch it again with 'edgecam models fetch NAME'"
        )


def load_error(path: Path, e: BaseException) -> ModelError:
    """The one line for a model the runtime refused: an Edge TPU build without
    its delegate, a custom op this runtime lacks, or a damaged file."""
    text = str(e).strip()
    first = text.splitlines()[0] if text else type(e).__name__
    if "edgetpu-custom-op" in text:
        return ModelError(
            f"model file {path}: it is compiled for the Coral Edge TPU (its graph is one edgetpu-custom-op), "
            "so it runs only with the Edge TPU delegate: set model.backend: edgetpu (--backend edgetpu), or run "
            "the CPU model it was built from (edgecam models list shows both)")
    if "unresolved custom op" in text.lower():
        return ModelError(f"model file {path}: it needs a custom operation this TFLite runtime does not have "
                          f"({first}); it is not a plain TFLite classifier")
    return ModelError(f"model file {path}: the runtime cannot load it ({first}); "
                      "it may be truncated or corrupt: fetch it again with 'edgecam models fetch NAME'")
