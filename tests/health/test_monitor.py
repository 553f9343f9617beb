"""The watcher on a replayed tree: one warning per episode, /metrics in base units, the status problem,
and the Home Assistant entities (payload and discovery, and through a real broker)."""

from __future__ import annotations

import json
import logging

import pytest

from edgecam.config.schema import HttpConfig, MqttConfig
from edgecam.health.board import BoardReader
from edgecam.health.monitor import HealthMonitor
from edgecam.outputs import mqtt_health
from edgecam.outputs.http import HttpSink
from edgecam.stats import Stats
from tests.health.trees import laptop_tree, pi_tree, write

FIRMWARE = "sys/devices/platform/soc/soc:firmware/get_throttled"


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def metrics_text(monitor) -> str:
    stats = Stats()
    stats.metric_sources.append(monitor.metrics)
    return HttpSink(HttpConfig(), stats).metrics_text()


def test_0x50005_gives_one_warning_line_each_the_metrics_and_the_status(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    root = pi_tree(tmp_path, throttled="50005", volt_alarm=1)
    monitor = HealthMonitor(BoardReader(root))
    monitor.poll()
    lines = warnings(caplog)
    assert len(lines) == 2, lines
    assert lines[0].startswith("board: UNDER-VOLTAGE (throttled=0x50005): the supply gives less than the board needs")
    assert "the official 27 W USB-C supply (5.1 V, 5 A)" in lines[0]
    assert lines[1].startswith("board: throttled at 61.2 °C (throttled=0x50005): the firmware lowers the clock "
                               "because of under-voltage (see above)")
    assert monitor.status_problem() == "UNDER-VOLTAGE, throttled"

    for _ in range(3):  # still so: nothing more said
        monitor.poll()
    assert len(warnings(caplog)) == 2

    text = metrics_text(monitor)
    for line in ('edgecam_board_throttled{flag="under_voltage",when="now"} 1',
                 'edgecam_board_throttled{flag="under_voltage",when="since_boot"} 1',
                 'edgecam_board_throttled{flag="throttled",when="now"} 1',
                 'edgecam_board_throttled{flag="arm_frequency_capped",when="now"} 0',
                 'edgecam_board_throttled{flag="soft_temperature_limit",when="since_boot"} 0',
                 'edgecam_board_temperature_celsius{zone="cpu-thermal"} 61.2',
                 "edgecam_board_arm_frequency_hertz 1500000000",
                 f"edgecam_board_cma_free_bytes {245760 * 1024}",
                 f"edgecam_board_sd_written_bytes_total {1234567 * 512}",
                 "# TYPE edgecam_board_throttled gauge"):
        assert line in text.splitlines(), line

    write(root, FIRMWARE, "50000\n")  # the supply recovered: one INFO line per flag, no warning
    caplog.clear()
    monitor.poll()
    assert warnings(caplog) == []
    assert sorted(r.getMessage().split(" (")[0] for r in caplog.records) == \
        ["board: no longer UNDER-VOLTAGE", "board: no longer throttled"]
    assert monitor.status_problem() is None

    write(root, FIRMWARE, "50005\n")  # a second episode: said again
    monitor.poll()
    assert len(warnings(caplog)) == 2


def test_heat_alone_names_heat_and_a_heatsink(tmp_path, caplog):
    monitor = HealthMonitor(BoardReader(pi_tree(tmp_path, throttled="e000e", temp_c=85.0)))
    monitor.poll()
    (line,) = warnings(caplog)
    assert line.startswith("board: frequency capped, throttled, soft temperature limit at 85.0 °C (throttled=0xe000e)"
                           ": the firmware lowers the clock because of heat")
    assert "heatsink or a fan" in line
    assert monitor.status_problem() == "frequency capped, throttled, soft temperature limit"


def test_since_boot_only_is_one_warning_at_start(tmp_path, caplog):
    monitor = HealthMonitor(BoardReader(pi_tree(tmp_path, throttled="50000", model="Raspberry Pi 4 Model B Rev 1.5")))
    monitor.poll()
    monitor.poll()
    (line,) = warnings(caplog)
    assert line.startswith("board: since boot this board has been UNDER-VOLTAGE, throttled (throttled=0x50000), not now")
    assert "15 W" in line
    assert monitor.status_problem() is None


def test_a_laptop_has_temperatures_and_no_flags_in_the_metrics(tmp_path, caplog):
    monitor = HealthMonitor(BoardReader(laptop_tree(tmp_path)))
    monitor.poll()
    text = metrics_text(monitor)
    assert 'edgecam_board_temperature_celsius{zone="x86_pkg_temp"} 62.0' in text
    assert "edgecam_board_throttled" not in text and "cma" not in text and "sd_written" not in text
    assert warnings(caplog) == [] and monitor.status_problem() is None
    assert mqtt_health.payload(monitor.latest) == {"temperature_c": 62.0, "arm_hz": 2_800_000_000,
                                                   "memory_available_bytes": 9_000_000 * 1024}


def test_the_poller_is_one_named_thread_stopped_by_one_event(tmp_path):
    monitor = HealthMonitor(BoardReader(pi_tree(tmp_path)), poll_s=0.05)
    monitor.start()
    try:
        assert monitor.seq >= 1  # the first reading is made at start
        assert monitor._thread.name == "edgecam-health" and monitor._thread.is_alive()
    finally:
        monitor.stop()
    assert not monitor._thread.is_alive()


class FakeSink:
    node_id, discovery_prefix, prefix = "edgecam-pi", "homeassistant", "edgecam/pi"
    topics = {"availability": "edgecam/pi/availability"}
    cfg = MqttConfig()


def test_home_assistant_entities_for_0x50005(tmp_path):
    payload = mqtt_health.payload(BoardReader(pi_tree(tmp_path, throttled="50005")).read())
    assert payload["throttled"] is True and payload["under_voltage"] is True and payload["flags"] == "0x50005"
    assert payload["since_boot"] == ["under_voltage", "throttled"] and payload["temperature_c"] == 61.2
    configs = mqtt_health.discovery_configs(FakeSink(), payload, {"identifiers": ["edgecam-pi"]})
    assert sorted(configs) == ["homeassistant/binary_sensor/edgecam-pi/throttled/config",
                               "homeassistant/binary_sensor/edgecam-pi/under_voltage/config",
                               "homeassistant/sensor/edgecam-pi/board_temperature/config"]
    temp = configs["homeassistant/sensor/edgecam-pi/board_temperature/config"]
    assert temp["device_class"] == "temperature" and temp["unit_of_measurement"] == "°C"
    assert temp["state_topic"] == "edgecam/pi/health"
    uv = configs["homeassistant/binary_sensor/edgecam-pi/under_voltage/config"]
    assert uv["device_class"] == "problem" and uv["value_template"] == "{{ 'ON' if value_json.under_voltage else 'OFF' }}"


def test_health_is_sent_on_news_not_every_reading():
    first = {"temperature_c": 60.0, "throttled": False}
    assert mqtt_health.due(None, 0.0, first, 0.0)
    assert not mqtt_health.due(first, 0.0, {"temperature_c": 60.6, "throttled": False}, 5.0)
    assert mqtt_health.due(first, 0.0, {"temperature_c": 61.0, "throttled": False}, 5.0)
    assert mqtt_health.due(first, 0.0, {"temperature_c": 60.0, "throttled": True}, 5.0)
    assert mqtt_health.due(first, 0.0, first, mqtt_health.REPUBLISH_S)


def test_the_binary_sensors_reach_the_broker_on(broker, tmp_path):
    pytest.importorskip("paho.mqtt.client", reason="paho-mqtt not installed: pip install 'edgecam[mqtt]'")
    from edgecam.outputs.mqtt import MqttSink
    from tests.doubles import wait_until
    from tests.mosquitto import Subscriber

    sub = Subscriber(broker, ("#",))
    sink = MqttSink(MqttConfig(enabled=True, host=broker.host, port=broker.port), "m", hostname="pi")
    try:
        sink.start()
        wait_until(lambda: sink.status()["connected"], what="sink connected")
        sink.on_health(BoardReader(pi_tree(tmp_path, throttled="50005")).read())
        (raw,) = sub.wait("edgecam/pi/health")[:1]
        state = json.loads(raw)
        assert state["under_voltage"] is True and state["throttled"] is True
        config = json.loads(sub.wait("homeassistant/binary_sensor/edgecam-pi/under_voltage/config")[0])
        assert config["state_topic"] == "edgecam/pi/health"
        # Only the new entities were announced: the label's discovery and the availability were not sent again.
        assert sub.on("edgecam/pi/availability") == [b"online"]
        assert len(sub.on("homeassistant/sensor/edgecam-pi/label/config")) == 1
        late = Subscriber(broker, ("edgecam/pi/health",))  # retained: a late subscriber has it at once
        try:
            late.wait("edgecam/pi/health")
            assert late.retained("edgecam/pi/health")[0] is True
        finally:
            late.close()
    finally:
        sink.close()
        sub.close()


def test_the_governor_takes_the_firmwares_word_for_heat_not_for_a_weak_supply(tmp_path):
    from edgecam.health.thermal import ThermalGovernor

    weak = HealthMonitor(BoardReader(pi_tree(tmp_path / "a", throttled="50005")), governor=ThermalGovernor(80.0),
                         rate=lambda: 30.0)
    weak.poll()
    assert weak.governor.every == 1  # throttled because of the supply at 61 °C: less work would not cool it
    hot = HealthMonitor(BoardReader(pi_tree(tmp_path / "b", throttled="80008", temp_c=70.0)),
                        governor=ThermalGovernor(80.0), rate=lambda: 30.0)
    hot.poll()
    assert hot.governor.every == 2 and hot.status_problem() == "soft temperature limit, hot: classifying 1 frame in 2"
