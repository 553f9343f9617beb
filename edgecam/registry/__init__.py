"""Model registry: which models exist, where they come from, where they are kept.

``models/models.yaml`` names every model edgecam can download. One module per job:

* ``schema.py``: reading and checking the registry file (:func:`load_registry`,
  :class:`ModelEntry`; where the file is: :func:`registry_path`);
* ``store.py``: the model folder (:func:`models_dir`), SHA-256 checks and the
  trust-on-first-use records, :func:`verify`;
* ``download.py``: :func:`fetch`, from the upstream URL (``.tgz`` archives
  unpacked) or local mirror folders, keeping only files whose checksum
  matches, written atomically (:mod:`edgecam.atomic`); :func:`fetch_photos`
  likewise for the registry's ``photos:`` (the demo's slides);
* ``resolver.py``: :func:`resolve` turns the ``model.name`` setting (a
  registry name or a path to a ``.tflite`` file) into a model file and a
  labels file; :func:`read_labels` reads the labels.

A model whose checksum is unknown (``sha256: null``) is only downloaded with
``trust_on_first_use=True``; the hash of what was received is then recorded in
``<file>.sha256`` beside it and later copies are checked against that record.

Everything a caller needs is importable from here (``from edgecam import registry``).
"""

from edgecam.registry.download import ENV_MIRROR, TIMEOUT_S, fetch, fetch_photos, mirror_dirs
from edgecam.registry.resolver import LABEL_CANDIDATES, ResolvedModel, labels_file, read_labels, resolve
from edgecam.registry.schema import (DEFAULT_MODEL, ENV_REGISTRY, PHOTO_SUBDIR, ModelEntry, PhotoEntry, load_photos,
                                     load_registry, registry_path)
from edgecam.registry.store import ENV_MODEL_DIR, has_checksum, models_dir, photos_dir, verify

__all__ = [
    "DEFAULT_MODEL", "ENV_MIRROR", "ENV_MODEL_DIR", "ENV_REGISTRY", "LABEL_CANDIDATES", "PHOTO_SUBDIR", "TIMEOUT_S",
    "ModelEntry", "PhotoEntry", "ResolvedModel", "fetch", "fetch_photos", "has_checksum", "labels_file",
    "load_photos", "load_registry", "mirror_dirs", "models_dir", "photos_dir", "read_labels", "registry_path",
    "resolve", "verify",
]
