"""The run-time overrides a camera was told (model, threshold, top_k, inference paused, an event rule on/off).

Commands (over MQTT, :mod:`edgecam.control.commands`) change a camera's
settings without touching the config file, which stays the admin's. What they
set is kept here, one JSON file per camera in the state directory
(``feature_dir(cfg.state_dir, "control")/<camera>.json``, written
atomically), and laid over the config at start and at every reload, so a
change survives a restart.

Each value is checked by the config's own rules and messages
(:func:`edgecam.config.schema.apply_overrides`, :func:`build_section`): a
command's ``threshold: 2`` is refused with the line a config file's would get.

The config file wins: each override remembers the config's value when it was
set (its *base*). When the file's value for that key is no longer the base
(the admin edited it, then ``systemctl reload`` or a restart), the override is
dropped and the file's value applies; overrides of keys the file did not
change stay.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from edgecam.atomic import write_atomic
from edgecam.config import schema as config_mod
from edgecam.config.check import build_section, quote
from edgecam.config.events import EventRuleConfig
from edgecam.config.state import feature_dir
from edgecam.config.state import state_dir as state_dir_of
from edgecam.errors import ConfigError

logger = logging.getLogger(__name__)

FORMAT = 1
#: An overrides file is a few hundred bytes; a bigger one is not ours.
MAX_BYTES = 64 * 1024
RULE_PREFIX = "events.rules."
RULE_SUFFIX = ".enabled"


class Key(StrEnum):
    """The settings a command may change (an event rule's is :func:`rule_key`)."""

    MODEL = "model.name"
    THRESHOLD = "model.threshold"
    TOP_K = "model.top_k"
    INFERENCE = "inference"  # true: classifying; false: paused (frames still shown, nothing classified)


@dataclass
class _Inference:
    """The run-time switch that has no config key, checked by the config's rules as a section of one key."""

    inference: bool = True


def rule_key(rule: str) -> str:
    """The key of an event rule's on/off switch: ``events.rules.<name>.enabled``."""
    return f"{RULE_PREFIX}{rule}{RULE_SUFFIX}"


def rule_of(key: str) -> str | None:
    """The rule a key switches, or None for another key."""
    if key.startswith(RULE_PREFIX) and key.endswith(RULE_SUFFIX):
        return key[len(RULE_PREFIX):-len(RULE_SUFFIX)]
    return None


def model_choices(cfg) -> list[str]:
    """The models a command may choose: the registry's names and the learned models present on this node."""
    # here: the registry and learned models' modules load numpy and yaml files, wanted only when a command comes
    from edgecam import registry
    from edgecam.model import custom_models

    names = list(registry.load_registry())
    names += [p.name[:-len(custom_models.SUFFIX)] for p in custom_models.list_models(registry.models_dir(cfg.model.dir))]
    if cfg.model.name not in names:
        names.insert(0, cfg.model.name)  # the config's own (a path to a .tflite file)
    return list(dict.fromkeys(names))


def config_value(cfg, key: str) -> Any:
    """The value ``cfg`` gives ``key`` (what an override of it replaces)."""
    rule = rule_of(key)
    if rule is not None:
        found = [r for r in cfg.events.rules if r.name == rule]
        return found[0].enabled if found else None
    if key == Key.INFERENCE:
        return True
    section, name = key.split(".", 1)
    return getattr(getattr(cfg, section), name)


def check(cfg, key: str, value: Any) -> Any:
    """``value`` for ``key`` as the config would take it, or ConfigError (one line, the config's message)."""
    problems: list[str] = []
    rule = rule_of(key)
    if rule is not None:
        if config_value(cfg, key) is None:
            names = ", ".join(r.name for r in cfg.events.rules) or "none"
            raise ConfigError(f"events.rules: no rule named {quote(rule)} (rules: {names})", what="bad command")
        out = build_section(EventRuleConfig, {"name": rule, "enabled": value}, f"events.rules.{rule}", problems)
        value = out.enabled
    elif key == Key.INFERENCE:
        value = build_section(_Inference, {"inference": value}, "", problems).inference
    elif key in (Key.MODEL, Key.THRESHOLD, Key.TOP_K):
        try:
            value = config_mod.to_dict(config_mod.apply_overrides(_alone(cfg), {key: value}))["model"][key[6:]]
        except ConfigError as e:
            problems += e.problems
        if not problems and key == Key.MODEL and value not in model_choices(cfg):
            problems.append(f"model.name: got {quote(value)}, expected a registry name or a learned model on "
                            f"this node ({', '.join(model_choices(cfg))})")
    else:
        raise ConfigError(f"{quote(key)}: not a setting a command may change (those: "
                          f"{', '.join(Key)}, events.rules.<rule>.enabled)", what="bad command")
    if problems:
        raise ConfigError(problems[:1], what="bad command")
    return value


def _alone(cfg):
    """``cfg`` without its cameras (a camera's own config is whole; its model section is what is checked)."""
    return config_mod.Config(model=cfg.model, events=cfg.events, path=cfg.path)


@dataclass(frozen=True)
class Override:
    """A value a command set, and the config's value for the key then (the file wins when it changes)."""

    value: Any
    base: Any


def apply(cfg, overrides: Mapping[str, Override]):
    """``cfg`` with the overrides' model settings and rule switches laid over it (always a new Config)."""
    model = {k: o.value for k, o in overrides.items() if k in (Key.MODEL, Key.THRESHOLD, Key.TOP_K)}
    rules = {rule_of(k): o.value for k, o in overrides.items() if rule_of(k) is not None}
    # Always a copy: the running config is changed in place by a reload, the file's settings never are.
    out = config_mod.apply_overrides(cfg, model)
    for r in out.events.rules:
        r.enabled = rules.get(r.name, r.enabled)
    return out


class OverridesStore:
    """One camera's overrides, read from and written to its file in the state directory.

    Not thread-safe by itself: the camera's output loop is the only writer
    (commands reach it as a reload, :mod:`edgecam.control.live`).
    """

    def __init__(self, state_dir, camera: str):
        self.camera = camera
        self._state_dir = state_dir
        self.path: Path = state_dir_of(state_dir) / "control" / f"{camera}.json"  # made when first written
        self.values: dict[str, Override] = self._read()

    def _read(self) -> dict[str, Override]:
        """The file's overrides; a missing file is none, a damaged one is logged and set aside (none)."""
        try:
            with open(self.path, "rb") as f:
                raw = f.read(MAX_BYTES + 1)
        except FileNotFoundError:
            return {}
        except OSError as e:
            logger.error("control: cannot read %s (%s); running with the config's settings", self.path, e.strerror)
            return {}
        try:
            data = json.loads(raw) if len(raw) <= MAX_BYTES else None
            if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("values"), dict):
                raise ValueError("not an edgecam overrides file")
            return {k: Override(v["value"], v["base"]) for k, v in data["values"].items()}
        except (ValueError, KeyError, TypeError) as e:
            aside = self.path.with_name(self.path.name + ".bad")
            self.path.replace(aside)
            logger.error("control: %s is damaged (%s); moved to %s, running with the config's settings",
                         self.path, e, aside.name)
            return {}

    def save(self) -> None:
        feature_dir(self._state_dir, "control")
        data = {"format": FORMAT, "camera": self.camera,
                "values": {k: {"value": o.value, "base": o.base} for k, o in sorted(self.values.items())}}
        write_atomic(self.path, (json.dumps(data, indent=1, allow_nan=False) + "\n").encode())

    def set(self, cfg, key: str, value: Any) -> Any:
        """Check ``value`` for ``key`` against ``cfg`` (the config file's), keep it; returns the value as taken.

        A bad value: ConfigError, and nothing changes. A value equal to the config's drops the override.
        """
        value = check(cfg, key, value)
        base = config_value(cfg, key)
        before = dict(self.values)
        if value == base:
            self.values.pop(key, None)
        else:
            self.values[key] = Override(value, base)
        try:
            self.save()
        except OSError:
            self.values = before  # not kept: not applied either
            raise
        return value

    def reconcile(self, cfg) -> list[str]:
        """Drop the overrides whose key the config file changed (or no longer has); returns those keys."""
        dropped = []
        for key, o in list(self.values.items()):
            now = config_value(cfg, key)
            if now is None or now != o.base:
                dropped.append(key)
                del self.values[key]
                continue
            try:
                check(cfg, key, o.value)
            except ConfigError as e:  # a learned model deleted since: the config's applies
                logger.warning("control: camera %s: %s no longer applies (%s)", self.camera, key, e.problems[0])
                dropped.append(key)
                del self.values[key]
        if dropped:
            logger.warning("control: camera %s: the config file changed %s; its value wins over the command's",
                           self.camera, ", ".join(dropped))
            self.save()
        return dropped

    def over(self, cfg):
        """``cfg`` (the config file's) with the overrides that still hold laid over it."""
        self.reconcile(cfg)
        return apply(cfg, self.values)

    @property
    def inference(self) -> bool:
        """False while a command paused inference."""
        o = self.values.get(Key.INFERENCE)
        return True if o is None else bool(o.value)

