"""A learned model switched live, in the reload path: another learned model (or a new file of the running one)
on the base model the camera runs already takes the place of the running head, without a restart.

Called from a camera's output loop when a reload (SIGHUP, or a command such as a fleet push, through
:mod:`edgecam.control`) applies a config whose ``model.name`` is a learned model: the base model's interpreter
keeps running and only the head changes (:meth:`edgecam.model.classifier.Classifier.swap_head`), as a reload after
``edgecam learn --force`` does. Anything else (a registry model, a learned model on another base or with another
crop, regions) still needs a restart; the reload says so, and :mod:`edgecam.fleet.switch` reports it.
"""

from __future__ import annotations

import logging

from edgecam.errors import EdgecamError
from edgecam.model import custom_models
from edgecam.registry.store import models_dir

logger = logging.getLogger(__name__)


def same_model(a: custom_models.CustomModel, b: custom_models.CustomModel) -> bool:
    """Whether two learned models are the same (meta and head arrays)."""
    return a.meta() == b.meta() and a.head.arrays.keys() == b.head.arrays.keys() and all(
        (a.head.arrays[k] == b.head.arrays[k]).all() for k in a.head.arrays)


def swap_learned(parts, running_cfg, new_cfg) -> bool:
    """Switch ``parts`` (a :class:`edgecam.pipeline.camera.CameraPipeline`) to the learned model ``new_cfg`` names
    when the running classifier can take its head; ``running_cfg.model.name`` follows. True when it switched."""
    clf = parts.classifier
    old = getattr(clf, "custom", None)
    if old is None or running_cfg.regions or new_cfg.regions:
        return False
    name = new_cfg.model.name
    path = custom_models.find(name, models_dir(new_cfg.model.dir))
    if path is None:
        return False
    try:
        new = custom_models.load(path)
    except EdgecamError as e:
        logger.error("reload: %s; keeping %s", e.message, clf.name)
        return False
    if name == clf.name and same_model(new, old):
        running_cfg.model.name = name  # another camera sharing this classifier switched it already
        return False
    if (new.base, new.base_sha256, new.crop, new.crop_fraction) != (old.base, old.base_sha256, old.crop,
                                                                     old.crop_fraction):
        logger.warning("reload: %s is learned on %s (crop %s), %s on %s (crop %s): switching needs a restart",
                       name, new.base, new.crop, clf.name, old.base, old.crop)
        return False
    clf.swap_head(new.head)
    clf.custom, clf.custom_path, clf.name = new, path, name
    running_cfg.model.name = name
    logger.warning("reload: now running the learned model %s from %s (%s: %s)", name, path, new.head.method,
                   ", ".join(new.labels))
    return True
