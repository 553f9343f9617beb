"""What the MQTT output publishes: topic names, payloads, Home Assistant discovery.

Topics, under ``<prefix>`` (default ``edgecam/<hostname>``):

* ``<prefix>/state``: JSON ``{"label", "score", "index", "previous", "frame",
  "timestamp"}``, published at each label change (retained when ``retain``).
* ``<prefix>/result``: JSON of one classification (``Classification.to_dict()``
  plus an ISO ``timestamp``); every result capped at ``max_rate_hz``
  (``publish: every``) or only at label changes (``publish: changes``).
* ``<prefix>/availability``: ``online`` (retained) once connected, ``offline``
  as the retained Last Will and on a clean close.
* ``<prefix>/snapshot``: JPEG of the annotated frame at each label change
  (``snapshot: true``; retained when ``retain``).
* ``<discovery_prefix>/sensor/<node_id>/{label,score}/config``: retained Home
  Assistant discovery configs for a "Label" and a "Score" sensor.
* With event rules that have ``mqtt: true``: ``<prefix>/event``, JSON
  ``{"type": "start"|"end", "id", "rule", "label", "region", "start", "end",
  "peak_score", "host", "snapshot"}`` (never retained), and ``<prefix>/event/<rule>``:
  ``start`` or ``end``, which the Home Assistant device triggers of each
  rule listen to (:func:`trigger_configs`).
* With regions: ``<prefix>/region/<name>/state``: JSON ``{"region", "label",
  "score", "previous", "frame", "timestamp"}`` at each change of that
  region's state (retained when ``retain``), and per region a discovery config
  for a sensor of its state (``<discovery_prefix>/sensor/<node_id>/region_<name>/config``)
  and, for a region of two states with ``on_label``, a binary_sensor
  (``.../binary_sensor/<node_id>/region_<name>/config``: ON in that state, OFF
  in the other, unknown otherwise). No whole-picture Label/Score sensors then.

With several cameras on one connection (:class:`edgecam.outputs.mqtt_hub.MqttHub`), each camera's
topics are these under ``<prefix>/<camera>`` and its discovery configs those of a device of its own (node id
``<node_id>_<camera>``, named "edgecam <hostname> <camera>"); ``<prefix>/availability`` and
``<prefix>/health`` (the board's entities on an "edgecam <hostname>" device) are the run's, once.

Pure functions of a result, an event or the config; :mod:`edgecam.outputs.mqtt` queues them per camera
and :mod:`edgecam.outputs.mqtt_hub` is the connection that publishes them (window, reconnects).
"""

from __future__ import annotations

import json
import logging
import re
import ssl
from enum import StrEnum
from typing import NamedTuple

import cv2

import edgecam
from edgecam.config.secret_file import read_secret
from edgecam.errors import EXIT_CONFIG, ConfigError, EdgecamError
from edgecam.outputs import mqtt_health
from edgecam.result import Classification, EventKind, LabelChange, RegionChange
from edgecam.outputs.base import iso_time

logger = logging.getLogger("edgecam.outputs.mqtt")  # one logger for the whole MQTT output

ONLINE = "online"
OFFLINE = "offline"


def slug(text: str) -> str:
    """``text`` reduced to ``[A-Za-z0-9_-]``: safe in a topic level and as a HA node id."""
    out = re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_")
    return out or "edgecam"


def check_topic(key: str, value: str) -> str:
    """``value`` without surrounding slashes; a ConfigError naming ``key`` when it is no usable topic."""
    topic = value.strip().strip("/")
    if not topic or any(c in topic for c in "+#\0"):
        raise ConfigError(f"{key}: got {value!r}, expected a non-empty MQTT topic without the wildcards + and #")
    return topic


def result_payload(result: Classification, top_k: int, threshold: float, model_name: str) -> dict:
    """The JSON published on ``<prefix>/result``."""
    d = result.to_dict(k=top_k, threshold=threshold)
    d["model"] = d.get("model") or model_name
    d["timestamp"] = iso_time(result.wall_time)
    return d


def state_payload(event: LabelChange, result: Classification | None) -> dict:
    """The JSON published on ``<prefix>/state`` for a label change (``result``: the latest)."""
    label = event.label
    index = None
    if result is not None and label in result.labels:
        index = list(result.labels).index(label)
    return {
        "label": label,
        "score": round(float(event.score), 4),
        "index": index,
        "previous": event.previous,
        "frame": event.frame,
        "timestamp": iso_time(event.wall_time),
    }


def device_info(node_id: str, name: str, model_name: str | None = None) -> dict:
    """The Home Assistant device the entities of ``node_id`` belong to (no ``model``: the node of several cameras)."""
    model = {"model": model_name} if model_name is not None else {}
    return {"identifiers": [node_id], "name": name, **model, "manufacturer": "edgecam",
            "sw_version": edgecam.__version__}


def discovery_configs(topics: dict[str, str], discovery_prefix: str, node_id: str, hostname: str,
                      model_name: str, qos: int, camera: str | None = None) -> dict[str, dict]:
    """Home Assistant discovery topic -> config, for the label and score sensors.

    ``camera``: in a run of several cameras, the camera's name, which the device's name ends with."""
    avail = {
        "availability_topic": topics["availability"],
        "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
    }
    device = device_info(node_id, f"edgecam {hostname}" + (f" {camera}" if camera else ""), model_name)
    origin = {"name": "edgecam", "sw_version": edgecam.__version__}
    base = f"{discovery_prefix}/sensor/{node_id}"
    common = {"state_topic": topics["state"], **avail, "device": device, "origin": origin, "qos": qos}
    return {
        f"{base}/label/config": {
            "name": "Label",
            "unique_id": f"{node_id}_label",
            "value_template": "{{ value_json.label }}",
            "json_attributes_topic": topics["state"],
            "icon": "mdi:eye",
            **common,
        },
        f"{base}/score/config": {
            "name": "Score",
            "unique_id": f"{node_id}_score",
            "value_template": "{{ (value_json.score * 100) | round(1) }}",
            "unit_of_measurement": "%",
            "state_class": "measurement",
            "icon": "mdi:percent",
            **common,
        },
    }


def region_topic(prefix: str, name: str) -> str:
    """``<prefix>/region/<name>/state``."""
    return f"{prefix}/region/{name}/state"


def region_payload(event: RegionChange) -> dict:
    """The JSON published on a region's state topic when its state changed."""
    return {
        "region": event.region,
        "label": event.label,
        "score": round(float(event.score), 4),
        "previous": event.previous,
        "frame": event.frame,
        "timestamp": iso_time(event.wall_time),
    }


def region_discovery_configs(topics: dict[str, str], prefix: str, discovery_prefix: str, node_id: str,
                             hostname: str, model_name: str, qos: int, regions,
                             camera: str | None = None) -> dict[str, dict]:
    """Home Assistant discovery topic -> config: a sensor per region, and a binary_sensor per two-state
    region with an ``on_label`` (``regions``: :class:`edgecam.outputs.base.RegionInfo`; ``camera`` as in
    :func:`discovery_configs`)."""
    base = discovery_configs(topics, discovery_prefix, node_id, hostname, model_name, qos, camera)
    common = {k: v for k, v in next(iter(base.values())).items()
              if k in ("availability_topic", "payload_available", "payload_not_available", "device", "origin", "qos")}
    out = {}
    for region in regions:
        state = region_topic(prefix, region.name)
        out[f"{discovery_prefix}/sensor/{node_id}/region_{region.name}/config"] = {
            "name": region.name,
            "unique_id": f"{node_id}_region_{region.name}",
            "state_topic": state,
            "value_template": "{{ value_json.label }}",
            "json_attributes_topic": state,
            "icon": "mdi:image-filter-center-focus",
            **common,
        }
        if region.on_label is not None and len(region.labels) == 2:
            off = next(label for label in region.labels if label != region.on_label)
            out[f"{discovery_prefix}/binary_sensor/{node_id}/region_{region.name}/config"] = {
                "name": f"{region.name} {region.on_label}",
                "unique_id": f"{node_id}_region_{region.name}_{slug(region.on_label)}",
                "state_topic": state,
                # ON and OFF for the two states; "None" (unknown, for Home Assistant) otherwise.
                "value_template": (f"{{% if value_json.label == {region.on_label!r} %}}ON"
                                   f"{{% elif value_json.label == {off!r} %}}OFF{{% else %}}None{{% endif %}}"),
                "payload_on": "ON",
                "payload_off": "OFF",
                "json_attributes_topic": state,
                **common,
            }
    return out


def snapshot_jpeg(picture) -> bytes | None:
    """The annotated picture as the JPEG of ``<prefix>/snapshot``; None (logged) when it cannot be encoded."""
    try:
        ok, buf = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, 85])
        why = "encoder refused it"
    except Exception as e:  # a bad picture must not kill the worker
        ok, why = False, e
    if not ok:
        logger.warning("MQTT: cannot encode the snapshot as JPEG (%s); skipped", why)
        return None
    return buf.tobytes()


def read_password(cfg) -> str | None:
    """The broker password of ``cfg`` (the ``mqtt`` section) from its ``password_file``; None without one."""
    if not cfg.password_file:
        return None
    # Only the line end is dropped: spaces may belong to a password.
    return read_secret("mqtt.password_file", cfg.password_file, strip="\r\n", allow_empty=True,
                       hint="create it holding the broker password")


def new_client(cfg, client_id: str):
    """A paho client with the ``mqtt`` section's user, password (file) and TLS; a ConfigError for a bad one."""
    mqtt = import_paho()
    password = read_password(cfg)
    if password is not None and not cfg.username:
        raise ConfigError("mqtt.username: null, expected the user name that goes with mqtt.password_file")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    if cfg.username:
        client.username_pw_set(cfg.username, password)
    if cfg.tls:
        try:
            client.tls_set(ca_certs=cfg.ca_file)
        except (OSError, ValueError) as e:
            raise ConfigError(f"mqtt.ca_file: cannot load {cfg.ca_file!r} ({e})") from None
    return client


def check_ca_file(cfg) -> None:
    """A ConfigError when TLS is on and ``cfg.ca_file`` cannot be loaded as CA certificates."""
    if cfg.tls and cfg.ca_file:
        try:
            ssl.create_default_context(cafile=cfg.ca_file)
        except (OSError, ValueError, ssl.SSLError) as e:
            raise ConfigError(f"mqtt.ca_file: cannot load {cfg.ca_file!r} ({e})") from None


def import_paho():
    """paho's client module, or exit 2 with what to install."""
    try:
        import paho.mqtt.client as mqtt  # an optional dependency (edgecam[mqtt]): imported when MQTT starts
    except ImportError:
        raise EdgecamError("mqtt.enabled is true but paho-mqtt is not installed: pip install 'edgecam[mqtt]'",
                           exit_code=EXIT_CONFIG) from None
    return mqtt


def discovery_for(sink) -> dict[str, dict]:
    """The discovery configs an :class:`edgecam.outputs.mqtt.MqttSink` publishes (its topics, regions, names)."""
    camera = sink.names.camera
    if sink.regions:
        out = region_discovery_configs(sink.topics, sink.prefix, sink.discovery_prefix, sink.node_id, sink.hostname,
                                       sink.model_name, sink.cfg.qos, sink.regions, camera)
    else:
        out = discovery_configs(sink.topics, sink.discovery_prefix, sink.node_id, sink.hostname, sink.model_name,
                                sink.cfg.qos, camera)
    device = next(iter(out.values()))["device"]
    if sink.health is not None:  # the board's entities, once a reading told which it has
        out.update(mqtt_health.discovery_configs(sink, sink.health, device))
    if sink.event_rules:
        out.update(trigger_configs(sink.prefix, sink.discovery_prefix, sink.node_id, device, sink.cfg.qos,
                                   sink.event_rules))
    return out


def health_discovery_for(sink) -> dict[str, dict]:
    """Only the board's entities of :func:`discovery_for` (sent when the first reading says which it has)."""
    return {t: c for t, c in discovery_for(sink).items() if c.get("state_topic") == mqtt_health.health_topic(sink.prefix)}


def event_topic(prefix: str, rule: str | None = None) -> str:
    """``<prefix>/event`` (every event as JSON), ``<prefix>/event/<rule>`` (``start`` / ``end``: the triggers')."""
    return f"{prefix}/event" if rule is None else f"{prefix}/event/{rule}"


def trigger_configs(prefix: str, discovery_prefix: str, node_id: str, device: dict, qos: int,
                    rules) -> dict[str, dict]:
    """Home Assistant device triggers, two per rule: its event started, its event ended.

    ``<discovery_prefix>/device_automation/<node_id>/<rule>_<start|end>/config``: a trigger fires on a
    message ``start`` (``end``) on ``<prefix>/event/<rule>``; type ``event_start`` / ``event_end``,
    subtype the rule's name (unique per device, as Home Assistant asks).
    """
    out = {}
    for rule in rules:
        for kind in EventKind:
            out[f"{discovery_prefix}/device_automation/{node_id}/{rule}_{kind}/config"] = {
                "automation_type": "trigger", "topic": event_topic(prefix, rule), "payload": kind,
                "type": f"event_{kind}", "subtype": rule, "qos": qos, "device": device,
            }
    return out


class ItemKind(StrEnum):
    """What a queued MQTT item is (:class:`Item`); :func:`encode` makes its message."""

    RESULT = "result"  # a Classification -> <prefix>/result
    STATE = "state"  # the label-change JSON -> <prefix>/state
    REGION = "region"  # a region's state JSON -> <prefix>/region/<name>/state
    EVENT = "event"  # a rule event's JSON -> <prefix>/event
    TRIGGER = "trigger"  # a rule event's JSON -> "start"/"end" on <prefix>/event/<rule>
    HEALTH = "health"  # the board's health JSON -> <prefix>/health
    SNAPSHOT = "snapshot"  # a picture -> <prefix>/snapshot (JPEG)
    RAW = "raw"  # (topic, payload, retain), sent as it is (availability, discovery)


class Item(NamedTuple):
    """One message waiting to be published by an :class:`edgecam.outputs.mqtt.MqttSink`."""

    kind: ItemKind
    data: object


def encode(sink, kind: ItemKind, data) -> tuple[str, bytes | str, bool] | None:
    """(topic, payload, retain) of one item an :class:`edgecam.outputs.mqtt.MqttSink` queued; None to skip it."""
    retain = sink.cfg.retain
    if kind is ItemKind.RESULT:
        return sink.topics["result"], json.dumps(sink.result_payload(data)), False
    if kind is ItemKind.STATE:
        return sink.topics["state"], json.dumps(data), retain
    if kind is ItemKind.REGION:
        return region_topic(sink.prefix, data["region"]), json.dumps(data), retain
    if kind is ItemKind.EVENT:  # events are moments, not states: never retained
        return event_topic(sink.prefix), json.dumps(data), False
    if kind is ItemKind.TRIGGER:
        return event_topic(sink.prefix, data["rule"]), data["type"], False
    if kind is ItemKind.HEALTH:
        return mqtt_health.health_topic(sink.prefix), json.dumps(data), retain
    if kind is ItemKind.SNAPSHOT:
        jpeg = snapshot_jpeg(data)
        return (sink.topics["snapshot"], jpeg, retain) if jpeg is not None else None
    raise AssertionError(kind)
