"""A new model for a running camera, without a restart (a model command, or ``model.name`` changed at a reload).

Only a camera that classifies the whole picture with its own inference stage (a run of one camera) switches
live: the new model is loaded and built with the run's threads in the camera's output loop (the picture
waits meanwhile), its class rules are checked, then the capture thread prepares the next frame for it and
the inference stage takes it at its next frame (:meth:`edgecam.model.inference.InferenceStage.switch_classifier`).
Regions, several cameras sharing a stage, and a camera that classifies itself (the AI Camera) need a restart.
Anything wrong with the new model: one line, and the old model goes on.
"""

from __future__ import annotations

import logging

from edgecam.errors import EdgecamError
from edgecam.pipeline.live import LiveSettings

logger = logging.getLogger(__name__)


def cannot_switch(camera) -> str | None:
    """Why ``camera`` (a CameraPipeline) cannot take a new model live; None when it can."""
    p = camera.pipeline
    if camera.tracker is not None:
        return "a camera with regions takes a new model at a restart (systemctl restart edgecam)"
    if p is None or not getattr(p, "_own_stage", False):
        return "a camera sharing its model with other cameras takes a new one at a restart (systemctl restart edgecam)"
    if getattr(camera.classifier, "open_source", None) is not None:
        return "a camera that classifies itself (AI Camera) takes a new model at a restart (systemctl restart edgecam)"
    return None


def switch_model(camera, plan, new_cfg, inference: bool = True) -> str | None:
    """Make ``new_cfg.model`` the model of ``camera`` now; returns None, or why not (the old model goes on)."""
    why = cannot_switch(camera)
    if why is not None:
        return why
    try:
        clf = camera.shared.load(new_cfg.model)
        build = getattr(clf, "build", None)
        if build is not None:
            build(plan.layout.threads if plan is not None else None)
        settings = LiveSettings.from_config(new_cfg, tuple(clf.labels), inference)  # class rules vs its labels
    except EdgecamError as e:
        return e.message.replace("\n", " ")
    old = camera.classifier
    camera.classifier = clf
    camera.pipeline.switch_classifier(clf, settings)
    if camera.outputs is not None:
        camera.outputs.reconfigure(settings.top_k, settings.threshold)
    logger.warning("model switched live: %s -> %s (%d labels)", old.name, clf.name, len(clf.labels))
    return None
