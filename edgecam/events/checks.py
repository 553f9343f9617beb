"""What the events output refuses at start as bad input, checked without starting anything
(:meth:`edgecam.events.sink.EventsSink.check`, asked by ``edgecam check-config``)."""

from __future__ import annotations

from pathlib import Path

from edgecam import registry
from edgecam.errors import EdgecamError
from edgecam.events.clips import choose_format
from edgecam.events.history import MEDIA, default_dir
from edgecam.model import custom_models
from edgecam.model.classifier import resolve_labelled
from edgecam.model.regions import model_config
from edgecam.outputs.base import RegionInfo, refusals
from edgecam.outputs.teach import check_examples_dir, examples_dir


def labels_on_disk(m) -> tuple[str, ...] | None:
    """The classes of model section ``m`` when its labels are on disk; None when not (run fetches them) or
    when it is broken (a problem the model's own check reports)."""
    custom = custom_models.find(m.name, registry.models_dir(m.dir))
    try:
        if custom is not None and m.name not in registry.load_registry():
            return tuple(custom_models.load(custom).labels)
        return tuple(resolve_labelled(m, fetch_missing=False)[1])
    except EdgecamError:
        return None


def known_labels(cfg) -> tuple[tuple[RegionInfo, ...], tuple[str, ...]]:
    """(the regions with the states they can take, the whole picture's classes) where they are known here."""
    if not cfg.regions:
        return (), labels_on_disk(cfg.model) or ()
    regions = []
    for rc in cfg.regions:
        states = tuple(rc.labels) if rc.labels else labels_on_disk(model_config(cfg, rc))
        regions.append(RegionInfo(rc.name, tuple(rc.box), states or (), rc.on_label))
    return tuple(regions), ()


def check_examples(cfg) -> None:
    """A ConfigError when the examples folder lies in the events' media folder (the history's repair deletes,
    at every start, each file there that no event names: the examples with them)."""
    if cfg.events.rules:  # no rule: no history is kept, nothing repairs that folder
        check_examples_dir(examples_dir(cfg), Path(default_dir(cfg)) / MEDIA)


def problems(cfg, sink_class) -> list[str]:
    """Every problem of the events output in ``cfg``: a clip format this OpenCV cannot write, a rule naming
    a label its model (or region) never gives, the examples folder inside the media folder."""
    if not cfg.events.rules:
        return []
    out = []
    if any(r.clip for r in cfg.events.rules):
        out += refusals(lambda: choose_format(cfg.events.clip_format))
    regions, labels = known_labels(cfg)
    sink = sink_class(cfg.events, Path(cfg.events.dir or "."), regions=regions, labels=labels)
    out += refusals(sink.check_labels)
    out += refusals(lambda: check_examples(cfg))
    return out
