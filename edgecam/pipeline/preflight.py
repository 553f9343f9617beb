"""What ``edgecam run`` rejects at start as bad input, checked without starting anything.

``edgecam check-config`` runs these after the file itself is valid, so that it
rejects everything ``run`` would reject with exit 2 (restarting won't help):
an unknown model name, a model or labels file that is missing or is not one,
an empty or unreadable token or password file, a CA file TLS cannot load, MQTT
without paho-mqtt, a video codec this OpenCV cannot write (a recording's, a clip's), a class rule
(allow, deny, thresholds) or an event rule naming a class the model has not. Each check calls
the very function ``run`` uses, so the two cannot drift apart.

What may heal by itself is left to ``run`` (a busy camera, a log folder not
yet mounted, a busy port, a model not downloaded yet: run fetches it).
"""

from __future__ import annotations

from pathlib import Path

from edgecam.errors import ConfigError, EdgecamError


def _model(cfg) -> None:
    """The main model, or with regions the models the regions use (each once)."""
    import dataclasses

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
    from edgecam.model import custom_models
    from edgecam import registry
    from edgecam.model.classifier import check_model_file, resolve_labelled

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


def _http(cfg) -> None:
    if cfg.http.enabled and cfg.http.token_file:
        from edgecam.outputs.http import _read_token

        _read_token(cfg.http.token_file)


def _mqtt(cfg) -> None:
    if not cfg.mqtt.enabled:
        return
    from edgecam.outputs import mqtt, mqtt_messages

    mqtt_messages.import_paho()
    mqtt.MqttSink(cfg.mqtt, cfg.model.name, hostname="check-config")._password()
    if cfg.mqtt.tls and cfg.mqtt.ca_file:
        import ssl

        try:
            ssl.create_default_context(cafile=cfg.mqtt.ca_file)
        except (OSError, ValueError, ssl.SSLError) as e:
            raise ConfigError(f"mqtt.ca_file: cannot load {cfg.mqtt.ca_file!r} ({e})") from None


def _record(cfg) -> None:
    if cfg.record.path:
        from edgecam.outputs.record import check_codec

        check_codec(cfg.record)


def _labels_on_disk(m) -> tuple[str, ...] | None:
    """The classes of model section ``m`` when its labels are on disk; None when not (run fetches them) or
    when it is broken (a problem _model reports)."""
    from edgecam.model import custom_models
    from edgecam import registry
    from edgecam.model.classifier import resolve_labelled

    custom = custom_models.find(m.name, registry.models_dir(m.dir))
    try:
        if custom is not None and m.name not in registry.load_registry():
            return tuple(custom_models.load(custom).labels)
        return tuple(resolve_labelled(m, fetch_missing=False)[1])
    except EdgecamError:
        return None


def _rules(cfg) -> None:
    """The class rules (allow, deny, thresholds, on_label) against the classes, as run checks them."""
    from edgecam.model.regions import rule_problems

    problems = rule_problems(cfg, _labels_on_disk)
    if problems:
        raise ConfigError(problems)


def _events(cfg) -> None:
    if any(r.clip for r in cfg.events.rules):
        from edgecam.events.clips import choose_format

        choose_format(cfg.events.clip_format)
    if not cfg.events.rules:
        return
    from edgecam.events.sink import EventsSink
    from edgecam.model.regions import model_config
    from edgecam.outputs.base import RegionInfo

    # The labels the rules name, where the model's (or the regions' states) are known here.
    labels: tuple[str, ...] | None = ()
    regions = []
    if cfg.regions:
        for rc in cfg.regions:
            states = tuple(rc.labels) if rc.labels else _labels_on_disk(model_config(cfg, rc))
            regions.append(RegionInfo(rc.name, tuple(rc.box), states or (), rc.on_label))
    else:
        labels = _labels_on_disk(cfg.model)
    EventsSink(cfg.events, Path(cfg.events.dir or "."), regions=tuple(regions), labels=labels or ()).check_labels()


def _examples(cfg) -> None:
    from edgecam.outputs.http import examples_dir
    from edgecam.outputs.teach import check_examples_dir

    check_examples_dir(cfg, examples_dir(cfg))


CHECKS = (_model, _rules, _http, _mqtt, _record, _events, _examples)


def check(cfg) -> None:
    """Raise a ConfigError listing every problem ``run`` would refuse this config for."""
    problems: list[str] = []
    for one in CHECKS:
        try:
            one(cfg)
        except ConfigError as e:
            problems += e.problems
        except EdgecamError as e:
            problems.append(e.message)
    if problems:
        raise ConfigError(problems, cfg.path and str(Path(cfg.path)))
