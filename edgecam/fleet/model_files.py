"""Which file a model setting names on this node, and its SHA-256 (what the node info and a push answer show)."""

from __future__ import annotations

import os
from pathlib import Path

from edgecam.errors import EdgecamError
from edgecam.model import custom_models
from edgecam.registry.resolver import resolve
from edgecam.registry.store import models_dir as default_dir
from edgecam.registry.store import sha256_file


class ModelSums:
    """The SHA-256 of each model file, computed again only when the file changed (its size or time)."""

    def __init__(self):
        self._cache: dict[str, tuple[tuple, str]] = {}

    def of(self, path: Path | None) -> str:
        if path is None:
            return ""

        try:
            st = os.stat(path)
        except OSError:
            return ""
        key = (st.st_size, st.st_mtime_ns)
        cached = self._cache.get(str(path))
        if cached is None or cached[0] != key:
            cached = self._cache[str(path)] = (key, sha256_file(Path(path)))
        return cached[1]


def model_path(name: str, models_dir: str | None) -> Path | None:
    """The file behind a model setting: a learned model, a .tflite path, or a registry model in the folder."""

    found = custom_models.find(name, default_dir(models_dir))
    if found is not None:
        return found
    try:
        return Path(resolve(name, dest_dir=models_dir, fetch_missing=False).model_path)
    except (EdgecamError, OSError, AttributeError):
        return None
