"""What ``edgecam run`` rejects at start as bad input, checked without starting anything.

``edgecam check-config`` runs these after the file itself is valid, so that it
rejects everything ``run`` would reject with exit 2 (restarting won't help):
an unknown model name, a model or labels file that is missing or is not one,
an empty or unreadable token or password file, a CA file TLS cannot load, MQTT
without paho-mqtt, a video codec this OpenCV cannot write (a recording's, a clip's). Each check calls
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
    from edgecam import custom_models, registry
    from edgecam.classifier import check_model_file, resolve_labelled

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
        from edgecam.sinks.http import _read_token

        _read_token(cfg.http.token_file)


def _mqtt(cfg) -> None:
    if not cfg.mqtt.enabled:
        return
    from edgecam.sinks import mqtt

    mqtt._import_paho()
    mqtt.MqttSink(cfg.mqtt, cfg.model.name, hostname="check-config")._password()
    if cfg.mqtt.tls and cfg.mqtt.ca_file:
        import ssl

        try:
            ssl.create_default_context(cafile=cfg.mqtt.ca_file)
        except (OSError, ValueError, ssl.SSLError) as e:
            raise ConfigError(f"mqtt.ca_file: cannot load {cfg.mqtt.ca_file!r} ({e})") from None


def _record(cfg) -> None:
    if cfg.record.path:
        from edgecam.sinks.record import check_codec

        check_codec(cfg.record)


def _events(cfg) -> None:
    if any(r.clip for r in cfg.events.rules):
        from edgecam.events.clips import choose_format

        choose_format(cfg.events.clip_format)
    if cfg.events.rules and not cfg.regions:  # the labels the rules name, where the model's are on disk
        from edgecam import custom_models, registry
        from edgecam.classifier import resolve_labelled
        from edgecam.events.sink import EventsSink

        custom = custom_models.find(cfg.model.name, registry.models_dir(cfg.model.dir))
        try:
            if custom is not None and cfg.model.name not in registry.load_registry():
                labels = custom_models.load(custom).labels
            else:
                labels = resolve_labelled(cfg.model, fetch_missing=False)[1]
        except EdgecamError:
            return  # not downloaded yet (run fetches it), or a problem _model reports
        EventsSink(cfg.events, Path(cfg.events.dir or "."), labels=tuple(labels)).check_labels()


CHECKS = (_model, _http, _mqtt, _record, _events)


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
