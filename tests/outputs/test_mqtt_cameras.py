"""Several cameras on one MQTT connection (MqttHub), against a real mosquitto: each camera under its own
topics and as its own Home Assistant device, one availability topic, one client, the board's health once."""

from __future__ import annotations

import json
import re
import socket
import time

import pytest

pytest.importorskip("paho.mqtt.client", reason="paho-mqtt not installed: pip install 'edgecam[mqtt]'")

from edgecam.config import schema as config_mod  # noqa: E402
from edgecam.config.events import EventRuleConfig, EventsConfig  # noqa: E402
from edgecam.errors import ConfigError  # noqa: E402
from edgecam.events.sink import EventsSink  # noqa: E402
from edgecam.health.board import BoardReader  # noqa: E402
from edgecam.outputs import FanOut  # noqa: E402
from edgecam.outputs.mqtt import MqttSink  # noqa: E402
from edgecam.outputs.mqtt_hub import MqttHub  # noqa: E402
from edgecam.outputs.mqtt_messages import slug  # noqa: E402
from edgecam.pipeline.cameras import CamerasApp  # noqa: E402
from edgecam.stats import Stats  # noqa: E402
from tests.doubles import wait_until  # noqa: E402
from tests.events.test_actions import results  # noqa: E402
from tests.health.trees import pi_tree  # noqa: E402
from tests.mosquitto import Mosquitto, free_port  # noqa: E402
from tests.outputs.test_mqtt import (change, cfg_for, make_result, region_change, region_infos, render,  # noqa: E402
                                     subscribers)
from tests.pipeline.test_cameras import video  # noqa: E402

__all__ = ["subscribers"]  # a fixture, used by name

CAMERAS = ("door", "yard")
AVAIL = "cams/availability"


@pytest.fixture
def hubs():
    made = []

    def make(cfg, hostname: str = "test-host") -> MqttHub:
        hub = MqttHub(cfg, hostname)
        made.append(hub)
        return hub

    yield make
    for hub in made:
        hub.close()


def on_hub(hub, camera: str, **kw) -> MqttSink:
    sink = MqttSink(hub.cfg, "tiny_model", hub=hub, camera=camera, **kw)
    sink.start()
    return sink


def clients(broker) -> list[str]:
    """The client ids that connected to ``broker``, but the tests' subscribers."""
    ids = re.findall(r"New client connected from \S+ as (\S+)", broker.log())
    return [i for i in ids if not i.startswith("test-sub-")]


def test_two_cameras_publish_under_their_own_topics_over_one_connection(broker, subscribers, hubs):
    sub = subscribers(broker)
    hub = hubs(cfg_for(broker, topic_prefix="cams", publish="changes", discovery=False, max_changes_hz=1000))
    hub.start()
    stats = {name: Stats() for name in CAMERAS}
    door, yard = (on_hub(hub, name, stats=stats[name]) for name in CAMERAS)
    assert (door.topics["state"], yard.topics["result"]) == ("cams/door/state", "cams/yard/result")
    assert door.topics["availability"] == yard.topics["availability"] == hub.availability == AVAIL
    sub.wait(AVAIL, payload=b"online")

    door.on_result(make_result(1, 3))
    door.on_event(change("dog", 0.7, 3))
    yard.on_result(make_result(2, 8))
    yard.on_event(change("bird", 0.7, 8, previous="cat"))
    for name, label, frame in (("door", "dog", 3), ("yard", "bird", 8)):
        (state,) = [json.loads(p) for p in sub.wait(f"cams/{name}/state")]
        assert (state["label"], state["frame"]) == (label, frame)
        (result,) = [json.loads(p) for p in sub.wait(f"cams/{name}/result")]
        assert result["frame"] == frame and result["top_k"][0]["label"] == label
    assert not sub.on("cams/state") and not sub.on("cams/result")  # nothing outside a camera's topics
    wait_until(lambda: all(s.extra.get("mqtt", {}).get("published", 0) >= 5 for s in stats.values()),
               what="each camera's stats.extra['mqtt']")
    assert stats["door"].extra["mqtt"]["connected"] is True and stats["door"].extra["mqtt"]["queued"] == 0

    assert clients(broker) == ["edgecam-test-host"]  # one connection for both cameras
    door.close()  # a camera that ends leaves the connection to the others
    yard.on_event(change("cat", 0.8, 9, previous="bird"))
    wait_until(lambda: len(sub.on("cams/yard/state")) == 2, what="yard's second state")
    assert sub.on(AVAIL) == [b"online"]
    yard.close()
    hub.close()
    sub.wait(AVAIL, payload=b"offline")
    assert {t for t, *_ in sub.messages if t.endswith("/availability")} == {AVAIL}


def test_each_camera_is_a_home_assistant_device_of_its_own(broker, subscribers, hubs):
    rules = ("ibex",)
    sub = subscribers(broker)
    hub = hubs(cfg_for(broker, topic_prefix="cams", discovery=True))
    hub.start()
    door = on_hub(hub, "door", event_rules=rules)
    yard = on_hub(hub, "yard", event_rules=rules, regions=region_infos())
    sensors = "homeassistant/sensor/edgecam-test-host_{}/{}/config"
    expected = [sensors.format("door", "label"), sensors.format("door", "score"),
                sensors.format("yard", "region_garage"), sensors.format("yard", "region_bins"),
                "homeassistant/binary_sensor/edgecam-test-host_yard/region_garage/config"]
    triggers = [f"homeassistant/device_automation/edgecam-test-host_{cam}/ibex_{kind}/config"
                for cam in CAMERAS for kind in ("start", "end")]
    door.on_result(make_result(2, 4, score=0.85))
    door.on_event(change("bird", 0.85, 4))
    yard.on_event(region_change("garage", "open", None, 0.97, 4))
    for topic in expected + triggers + ["cams/door/state", "cams/yard/region/garage/state"]:
        sub.wait(topic)
    late = subscribers(broker, topics=("homeassistant/#", "cams/#"))  # what is retained, as Home Assistant sees it
    for topic in expected + triggers:
        late.wait(topic)
        assert late.retained(topic) == [True], topic
    configs = {t: json.loads(late.on(t)[0]) for t in expected + triggers}
    assert set(configs) == {t for t, *_ in sub.messages if t.startswith("homeassistant/")}
    assert not sub.on(sensors.format("yard", "label"))  # regions, not the whole picture, on yard

    entities = {t: c for t, c in configs.items() if "device_automation" not in t}
    assert len({c["unique_id"] for c in entities.values()}) == len(entities)
    for topic, conf in entities.items():
        cam = "door" if "_door/" in topic else "yard"
        assert conf["unique_id"].startswith(f"edgecam-test-host_{cam}_")
        assert conf["state_topic"].startswith(f"cams/{cam}/")
        assert (conf["availability_topic"], conf["payload_available"], conf["payload_not_available"]) == \
            (AVAIL, "online", "offline")
        assert conf["device"]["identifiers"] == [f"edgecam-test-host_{cam}"]
        assert conf["device"]["name"] == f"edgecam test-host {cam}"
    for topic in triggers:
        cam = "door" if "_door/" in topic else "yard"
        assert configs[topic]["topic"] == f"cams/{cam}/event/ibex"
        assert configs[topic]["device"]["identifiers"] == [f"edgecam-test-host_{cam}"]

    # The templates, rendered as Home Assistant renders them, on what each camera published.
    state = json.loads(late.wait("cams/door/state")[0])
    assert render(configs[sensors.format("door", "label")]["value_template"], state) == "bird"
    assert render(configs[sensors.format("door", "score")]["value_template"], state) == "85.0"
    garage = json.loads(late.wait("cams/yard/region/garage/state")[0])
    assert render(configs[sensors.format("yard", "region_garage")]["value_template"], garage) == "open"
    binary = configs["homeassistant/binary_sensor/edgecam-test-host_yard/region_garage/config"]
    assert render(binary["value_template"], garage) == binary["payload_on"]
    assert clients(broker) == ["edgecam-test-host"]


def test_events_start_and_end_under_their_cameras_topics(broker, subscribers, hubs, tmp_path):
    sub = subscribers(broker, topics=("cams/#",))
    hub = hubs(cfg_for(broker, topic_prefix="cams", discovery=False))
    hub.start()
    rules = [EventRuleConfig(for_s=0, name="ibex", label="ibex", cooldown_s=0, snapshot=False, mqtt=True)]
    fans = {}
    for name in CAMERAS:  # as a camera's outputs are fed: the events output first, then MQTT
        fans[name] = FanOut([EventsSink(EventsConfig(rules=rules), tmp_path / name),
                             MqttSink(hub.cfg, "tiny", hub=hub, camera=name, event_rules=("ibex",))])
        fans[name].start()
    try:
        for r in results(["background", "ibex", "ibex", "background"]):
            fans["door"].on_result(r)
        for r in results(["ibex", "ibex"]):  # yard's event starts, and is still going
            fans["yard"].on_result(r)
        assert sub.wait("cams/door/event/ibex", 2) == [b"start", b"end"]
        assert sub.wait("cams/yard/event/ibex") == [b"start"]
        assert [e["type"] for e in sub.json("cams/door/event")] == ["start", "end"]
        assert [e["type"] for e in sub.json("cams/yard/event")] == ["start"]
        assert not sub.on("cams/event") and not sub.on("cams/event/ibex")
    finally:
        for fan in fans.values():
            fan.close()


def test_the_boards_health_is_published_once_for_the_run_on_a_device_of_its_own(broker, subscribers, hubs,
                                                                                  tmp_path):
    sub = subscribers(broker)
    hub = hubs(cfg_for(broker, topic_prefix="cams", discovery=True))
    hub.start()
    door, yard = (on_hub(hub, name) for name in CAMERAS)
    sub.wait(AVAIL, payload=b"online")
    reading = BoardReader(pi_tree(tmp_path, throttled="50005")).read()
    door.on_health(reading)  # every camera's outputs get the reading: it goes out once
    yard.on_health(reading)
    (raw,) = sub.wait("cams/health")
    assert json.loads(raw)["under_voltage"] is True
    config = json.loads(sub.wait("homeassistant/binary_sensor/edgecam-test-host/under_voltage/config")[0])
    assert config["state_topic"] == "cams/health" and config["availability_topic"] == AVAIL
    assert config["device"]["identifiers"] == ["edgecam-test-host"]
    assert config["device"]["name"] == "edgecam test-host" and "model" not in config["device"]
    hub.close()
    sub.wait(AVAIL, payload=b"offline")
    assert sub.on("cams/health") == [raw]
    assert not [t for t, *_ in sub.messages if t.startswith("cams/door/health") or "_door/under" in t]


def test_a_broker_away_at_start_then_gone_a_while_gets_every_cameras_messages(tmp_path, subscribers, hubs):
    port = free_port()
    broker = Mosquitto(tmp_path, port=port)  # not started yet
    try:
        hub = hubs(cfg_for(broker, topic_prefix="cams", publish="every", max_rate_hz=1000, queue_size=5,
                           discovery=False))
        hub.start()
        door, yard = (on_hub(hub, name) for name in CAMERAS)
        for i in range(8):  # never waits for the network; each camera's queue is its own
            door.on_result(make_result(0, i))
            yard.on_result(make_result(1, 100 + i))
            time.sleep(0.002)  # beyond the 1 ms rate cap
        assert door.status()["queued"] == yard.status()["queued"] == 5
        assert door.status()["dropped"] == yard.status()["dropped"] == 3
        door.on_event(change("cat", 0.7, 7))
        assert door.status()["queued"] == 5 and yard.status()["queued"] == 5
        broker.start()
        sub = subscribers(broker)

        def received(camera: str) -> int:
            return broker.log().count(f"Received PUBLISH from edgecam-test-host (d0, q0, r0, m0, 'cams/{camera}/result'")

        wait_until(lambda: (received("door"), received("yard")) == (4, 5), what="every queued result at the broker")
        assert json.loads(sub.wait("cams/door/state")[0])["label"] == "cat"
        assert hub.link_status()["queued"] == 0

        broker.stop()
        wait_until(lambda: not hub.link_status()["connected"], what="the hub to notice the outage")
        yard.on_event(change("bird", 0.9, 120))
        broker.start()
        late = subscribers(broker)
        assert json.loads(late.wait("cams/yard/state")[0])["label"] == "bird"
        assert json.loads(late.wait("cams/door/state")[0])["label"] == "cat"  # sent again after the restart
        assert late.wait(AVAIL) == [b"online"]
        assert hub.link_status()["reconnects"] == 1
        assert set(clients(broker)) == {"edgecam-test-host"}
    finally:
        broker.stop()


def test_camera_names_must_be_identifiers_and_distinct():
    hub = MqttHub(config_mod.MqttConfig(enabled=True), "x")
    MqttSink(hub.cfg, "m", hub=hub, camera="door")
    with pytest.raises(ConfigError) as e:
        MqttSink(hub.cfg, "m", hub=hub, camera="door")
    assert "two cameras named 'door'" in str(e.value)
    with pytest.raises(ConfigError) as e:
        MqttSink(hub.cfg, "m", hub=hub, camera="front/door")
    assert "'front/door'" in str(e.value) and e.value.exit_code == 2
    with pytest.raises(ValueError):
        MqttSink(hub.cfg, "m", hub=hub)


def test_a_run_of_two_cameras_is_one_connection_and_two_devices(tmp_path, model_env, broker, subscribers):
    sub = subscribers(broker)
    cameras = []
    for i, name in enumerate(CAMERAS):
        cfg = config_mod.from_dict({
            "source": {"type": "opencv", "uri": video(tmp_path / f"{name}.avi", 300, (0, 90 * i, 160)),
                       "realtime": True},  # paced: the run is stopped, as by SIGTERM, long before the end
            "display": {"mode": "none"}, "model": {"threads": 1},
            "mqtt": {"enabled": True, "host": broker.host, "port": broker.port, "topic_prefix": "cams",
                     "publish": "every", "max_rate_hz": 1000}})
        cameras.append((name, cfg))
    app = CamerasApp(cameras)
    assert app.mqtt_hub is not None and not any(cam.cfg.mqtt.enabled for cam in app.cameras)

    def stop_once_both_published(_now):
        if all(sub.on(f"cams/{name}/state") and sub.on(f"cams/{name}/result") for name in CAMERAS):
            app.stop()

    assert app.run(on_tick=stop_once_both_published) == 0
    assert all(cam.stats.frames_inferred < 300 for cam in app.cameras)  # stopped, not at the videos' end
    sub.wait(AVAIL, payload=b"offline")  # the run closed its one connection
    assert sub.on(AVAIL) == [b"online", b"offline"]
    node = f"edgecam-{slug(socket.gethostname())}"
    for name in CAMERAS:
        state = json.loads(sub.on(f"cams/{name}/state")[0])
        frames = [r["frame"] for r in sub.json(f"cams/{name}/result")]
        assert frames == sorted(frames) and set(frames) <= set(range(300))
        label = json.loads(sub.wait(f"homeassistant/sensor/{node}_{name}/label/config")[0])
        assert label["device"]["name"].endswith(f" {name}") and label["availability_topic"] == AVAIL
        assert label["state_topic"] == f"cams/{name}/state"
        assert render(label["value_template"], state) == state["label"]
    assert len(clients(broker)) == 1
    assert {t for t, *_ in sub.messages if t.endswith("/availability")} == {AVAIL}
