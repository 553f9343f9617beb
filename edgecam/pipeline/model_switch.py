"""A new model for a running camera, without a restart (a model command, or ``model.name`` changed at a reload).

Only a camera that classifies the whole picture with its own inference stage (a run of one camera) switches
live: the new model is loaded and built with the run's threads in the camera's output loop (the picture
waits meanwhile), its class rules are checked, then the capture thread prepares the next frame for it and
the inference stage takes it at its next frame (:meth:`edgecam.model.inference.InferenceStage.switch_classifier`).
Regions, several cameras sharing a stage, and a camera that classifies itself (the AI Camera) take it by the
run starting again in this process (:func:`command_model`, :func:`edgecam.pipeline.app.run_restarting`), once
the new model was loaded and checked here: a start never fails on a model a command kept.
Anything wrong with the new model: one line, and the old model goes on.
"""

from __future__ import annotations

import dataclasses
import logging

from edgecam.control.overrides import Key
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
        camera.outputs.model_changed(clf.name)  # MQTT: the device's model, /result's
    logger.warning("model switched live: %s -> %s (%d labels)", old.name, clf.name, len(clf.labels))
    return None


def check_model(camera, new_cfg) -> str | None:
    """Whether ``new_cfg.model`` loads and its class rules hold (a start would not fail on it); None, or why not."""
    try:
        clf = camera.shared.load(new_cfg.model)
        LiveSettings.from_config(new_cfg, tuple(clf.labels))
    except EdgecamError as e:
        return e.message.replace("\n", " ")
    return None


def command_model(camera, plan, running_cfg, new_cfg, outcomes: list, control) -> tuple[list, object, str | None]:
    """A model command waiting in ``outcomes``: switched live, or taken for the run's restart, or refused.

    Returns (the outcomes to answer, the settings to apply now, why the run must start again or None).
    Refused: what is kept is the model that runs (the override set back), never one a start would fail on.
    """
    commanded = any(o.key == Key.MODEL and o.error is None for o in outcomes)
    name = new_cfg.model.name
    if not commanded or name == running_cfg.model.name:  # the file's model.name still needs a restart
        return outcomes, new_cfg, None
    structural = cannot_switch(camera)
    why = switch_model(camera, plan, new_cfg, control.store.inference) if structural is None else \
        check_model(camera, new_cfg)
    if why is None and structural is None:
        running_cfg.model.name = name
        return outcomes, new_cfg, None
    if why is None:  # checked: it starts; the run starts again with it, right after the answer
        outcomes = [dataclasses.replace(o, restart=True) if o.key == Key.MODEL and o.error is None else o
                    for o in outcomes]
        keep = dataclasses.replace(new_cfg, model=dataclasses.replace(new_cfg.model, name=running_cfg.model.name))
        return outcomes, keep, f"model {name} for camera {camera.name}: {structural.split(' takes ')[0]}"
    logger.error("reload: model %s not switched: %s; keeping %s", name, why, running_cfg.model.name)
    control.store.set(control.file_cfg, Key.MODEL, running_cfg.model.name)
    outcomes = [dataclasses.replace(o, value=None, error=f"model.name: {why}")
                if o.key == Key.MODEL and o.error is None else o for o in outcomes]
    return outcomes, control.effective(), None
