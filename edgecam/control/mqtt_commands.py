"""Commands over MQTT (``mqtt.commands: true``): their topics, payloads, replies and Home Assistant controls.

Per camera, under its prefix (``<prefix>`` with one camera, ``<prefix>/<camera>`` with several):

* ``<prefix>/set/<what>``: a command. ``<what>``: ``model`` (a registry name or a learned model on this
  node), ``threshold``, ``top_k``, ``inference`` (``true``: classify, ``false``: paused),
  ``rule/<name>`` (``true``/``false``: the event rule on or off), ``snapshot`` (any payload: a JPEG of
  the next frame on ``<prefix>/snapshot``). The payload is JSON (``0.5``, ``true``) or plain text
  (``mobilenet_v2``), checked by the config's own rules (:mod:`edgecam.control.overrides`).
* ``<prefix>/control/<what>``: the current value (retained), after each change and at each connect.
* ``<prefix>/reply``: one JSON answer per command: ``{"command", "ok", "value"}`` or ``{"command", "ok":
  false, "error"}`` (never retained). A refused command changes nothing and is one log line too.

Home Assistant discovery (with ``discovery: true``) adds, on the camera's device, a ``select`` for the
model, ``number`` entities for the threshold and top_k, a ``switch`` for inference and for each rule, and
a ``button`` for the snapshot.
"""

from __future__ import annotations

import json
import math
from typing import Any

from edgecam.control.overrides import Key, model_choices, rule_key, rule_of

SNAPSHOT = "snapshot"
RULE = "rule/"
#: A command's payload is a value or a model's name: anything longer is not one.
MAX_PAYLOAD = 1024


def set_topic(prefix: str, what: str = "#") -> str:
    return f"{prefix}/set/{what}"


def control_topic(prefix: str, what: str) -> str:
    return f"{prefix}/control/{what}"


def reply_topic(prefix: str) -> str:
    return f"{prefix}/reply"


def key_of(what: str) -> str | None:
    """The overrides key a command's ``<what>`` sets (None: not one; ``snapshot`` is no setting)."""
    if what.startswith(RULE) and len(what) > len(RULE):
        return rule_key(what[len(RULE):])
    return {"model": Key.MODEL, "threshold": Key.THRESHOLD, "top_k": Key.TOP_K, "inference": Key.INFERENCE}.get(what)


def what_of(key: str) -> str:
    """The ``<what>`` of an overrides key (the inverse of :func:`key_of`)."""
    rule = rule_of(key)
    return RULE + rule if rule is not None else {Key.MODEL: "model", Key.THRESHOLD: "threshold",
                                                 Key.TOP_K: "top_k", Key.INFERENCE: "inference"}[key]


def parse(payload: bytes) -> Any:
    """A command's value: JSON (``0.5``, ``true``, ``"name"``), else the text itself (``mobilenet_v2``, ``ON``).

    ``ValueError`` for a payload that is no UTF-8 text or too long. NaN parses (as Python's JSON reads it) and
    is then refused by the config's range check, as in a config file.
    """
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"a payload of {len(payload)} bytes, expected at most {MAX_PAYLOAD}")
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError("a payload that is not UTF-8 text") from None
    try:
        return json.loads(text)
    except ValueError:
        return text


def shown(value: Any) -> str:
    """A value as its control topic carries it: text as it is (a select's option), the rest as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return "null"
    return json.dumps(value)


def current(cfg, inference: bool) -> dict[str, Any]:
    """``<what>`` -> its value now, from the camera's effective config (the overrides laid over the file)."""
    out = {"model": cfg.model.name, "threshold": cfg.model.threshold, "top_k": cfg.model.top_k,
           "inference": inference}
    out.update({RULE + r.name: r.enabled for r in cfg.events.rules})
    return out


def discovery_configs(sink, cfg, device: dict) -> dict[str, dict]:
    """Home Assistant discovery topic -> config of the camera's controls (on its ``device``, as its sensors)."""
    node, prefix, base = sink.node_id, sink.prefix, sink.discovery_prefix
    common = {"availability_topic": sink.topics["availability"], "payload_available": "online",
              "payload_not_available": "offline", "device": device, "qos": sink.cfg.qos}

    def entity(component: str, what: str, name: str, **extra) -> tuple[str, dict]:
        uid = f"{node}_control_{what.replace('/', '_')}"
        conf = {"name": name, "unique_id": uid, "command_topic": set_topic(prefix, what), **common, **extra}
        if component != "button":
            conf["state_topic"] = control_topic(prefix, what)
        return f"{base}/{component}/{node}/control_{what.replace('/', '_')}/config", conf

    switch = {"payload_on": "true", "payload_off": "false", "state_on": "true", "state_off": "false"}
    pairs = [
        entity("select", "model", "Model", options=model_choices(cfg), icon="mdi:brain"),
        entity("number", "threshold", "Threshold", min=0.0, max=1.0, step=0.01, mode="box",
               command_template="{{ value }}", icon="mdi:tune"),
        entity("number", "top_k", "Top labels", min=1, max=100, step=1, mode="box",
               command_template="{{ value | int }}", icon="mdi:format-list-numbered"),
        entity("switch", "inference", "Inference", icon="mdi:eye", **switch),
        entity("button", SNAPSHOT, "Snapshot", payload_press="now", icon="mdi:camera"),
    ]
    pairs += [entity("switch", RULE + r.name, f"Rule {r.name}", icon="mdi:bell", **switch) for r in cfg.events.rules]
    return dict(pairs)
