"""What ``edgecam run`` rejects at start as bad input, checked without starting anything.

``edgecam check-config`` runs these after the file itself is valid, so that it
rejects everything ``run`` would reject with exit 2 (restarting won't help):
an unknown model name, a model or labels file that is missing or is not one,
an empty or unreadable token or password file, a CA file TLS cannot load, MQTT
without paho-mqtt, a video codec this OpenCV cannot write (a recording's, a clip's), a class rule
(allow, deny, thresholds) or an event rule naming a class the model has not. The outputs' checks
are their own (:meth:`edgecam.outputs.base.Sink.check`, each registered output asked in turn);
each check calls the very function ``run`` uses, so the two cannot drift apart.

What may heal by itself is left to ``run`` (a busy camera, a log folder not
yet mounted, a busy port, a model not downloaded yet: run fetches it).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from edgecam import registry
from edgecam.errors import ConfigError, EdgecamError
from edgecam.events.checks import labels_on_disk
from edgecam.model import custom_models
from edgecam.model.classifier import check_model_file, resolve_labelled
from edgecam.model.regions import rule_problems
from edgecam.outputs import check_sinks
from edgecam.outputs.base import refusals


def _model(cfg) -> None:
    """The main model, or with regions the models the regions use (each once)."""
    if not cfg.regions:
        _one_model(cfg.model)
        return
    problems = []
    for name in dict.fromkeys(r.model or cfg.model.name for r in cfg.regions):
        labels = cfg.model.labels if name == cfg.model.name else None
        try:
            _one_model(dataclasses.replace(cfg.model, name=name, labels=labels))
        except EdgecamError as e:
            problems.append(e.message)
    if problems:
        raise ConfigError(problems)


def _one_model(m) -> None:

    custom = custom_models.find(m.name, registry.models_dir(m.dir))
    if custom is not None and m.name not in registry.load_registry():
        custom_models.load(custom)  # its base model is fetched (and verified) by run
        return
    if m.name in registry.load_registry():
        if m.labels is not None:  # the model itself is fetched (and verified) by run
            registry.read_labels(registry.labels_file(m.labels))
        return
    resolved, _, _ = resolve_labelled(m, fetch_missing=False)  # labels: a file, or packed in the model
    check_model_file(resolved.model_path)


def _rules(cfg) -> None:
    """The class rules (allow, deny, thresholds, on_label) against the classes, as run checks them."""
    problems = rule_problems(cfg, labels_on_disk)
    if problems:
        raise ConfigError(problems)


#: The checks of the model and the class rules; each output's own come from its :meth:`Sink.check`.
CHECKS = (_model, _rules)


def check(cfg) -> None:
    """Raise a ConfigError listing every problem ``run`` would refuse this config for."""
    problems: list[str] = []
    for one in CHECKS:
        problems += refusals(lambda: one(cfg))  # noqa: B023 (called at once)
    problems += check_sinks(cfg)  # each registered output's (the events' too: edgecam.events registers it)
    if problems:
        raise ConfigError(problems, cfg.path and str(Path(cfg.path)))
