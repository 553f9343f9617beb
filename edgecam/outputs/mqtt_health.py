"""The board's health over MQTT: ``<prefix>/health`` (retained JSON) and its Home Assistant entities.

Home Assistant gets, on the edgecam device, a temperature sensor (where the board has one) and two
binary sensors of device class ``problem`` (where the firmware gives throttling flags: a Raspberry Pi):
"Throttled" (ON while the firmware throttles, caps the clock or is at its soft temperature limit) and
"Under-voltage". A machine without the figure gets no entity for it: nothing stays "unknown" for ever.

A reading is published when a flag changes, the temperature moved by a degree or more, or a minute
passed: a reading every few seconds would be traffic without news.
"""

from __future__ import annotations

from edgecam.health.board import BoardHealth, Flag

REPUBLISH_S = 60.0
TEMPERATURE_STEP_C = 1.0


def health_topic(prefix: str) -> str:
    return f"{prefix}/health"


def payload(h: BoardHealth) -> dict:
    """The JSON of ``<prefix>/health``: only what this board tells."""
    out: dict = {}
    if h.temperature_c is not None:
        out["temperature_c"] = round(h.temperature_c, 1)
    if h.throttled is not None:
        out["throttled"] = any(h.now(f) for f in (Flag.THROTTLED, Flag.ARM_FREQUENCY_CAPPED,
                                                  Flag.SOFT_TEMPERATURE_LIMIT))
        out["flags"] = f"0x{h.throttled:x}"
        out["since_boot"] = [f.key for f in Flag if h.since_boot(f)]
    if h.now(Flag.UNDER_VOLTAGE) is not None:
        out["under_voltage"] = bool(h.now(Flag.UNDER_VOLTAGE))
    if h.arm_hz is not None:
        out["arm_hz"] = h.arm_hz
    if h.cma_free_bytes is not None:
        out["cma_free_bytes"] = h.cma_free_bytes
    if h.mem_available_bytes is not None:
        out["memory_available_bytes"] = h.mem_available_bytes
    return out


def due(last: dict | None, last_at: float, new: dict, now: float) -> bool:
    """Whether ``new`` is worth a message after ``last`` (sent at ``last_at``)."""
    if last is None or now - last_at >= REPUBLISH_S:
        return True
    if any(new.get(k) != last.get(k) for k in ("throttled", "under_voltage", "flags")):
        return True
    t0, t1 = last.get("temperature_c"), new.get("temperature_c")
    return t0 is not None and t1 is not None and abs(t1 - t0) >= TEMPERATURE_STEP_C


def discovery_configs(sink, health: dict, device: dict) -> dict[str, dict]:
    """Home Assistant discovery topic -> config for the entities ``health`` (a :func:`payload`) can fill."""
    node, prefix = sink.node_id, sink.discovery_prefix
    common = {"state_topic": health_topic(sink.prefix), "availability_topic": sink.topics["availability"],
              "payload_available": "online", "payload_not_available": "offline", "device": device,
              "qos": sink.cfg.qos, "entity_category": "diagnostic"}
    out = {}
    if "temperature_c" in health:
        out[f"{prefix}/sensor/{node}/board_temperature/config"] = {
            "name": "Board temperature", "unique_id": f"{node}_board_temperature",
            "device_class": "temperature", "unit_of_measurement": "°C", "state_class": "measurement",
            "value_template": "{{ value_json.temperature_c }}", **common}
    for key, name in (("throttled", "Throttled"), ("under_voltage", "Under-voltage")):
        if key in health:
            out[f"{prefix}/binary_sensor/{node}/{key}/config"] = {
                "name": name, "unique_id": f"{node}_{key}", "device_class": "problem",
                "value_template": f"{{{{ 'ON' if value_json.{key} else 'OFF' }}}}", **common}
    return out
