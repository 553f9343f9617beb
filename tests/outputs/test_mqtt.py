"""MqttSink against a real mosquitto on 127.0.0.1, observed by a paho subscriber."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("paho.mqtt.client", reason="paho-mqtt not installed: pip install 'edgecam[mqtt]'")

import edgecam  # noqa: E402
from edgecam.config.schema import MqttConfig  # noqa: E402
from edgecam.errors import ConfigError, EdgecamError, NetworkError  # noqa: E402
from edgecam.camera.frame import Frame  # noqa: E402
from edgecam.result import Classification, LabelChange, RegionChange  # noqa: E402
from edgecam.outputs.mqtt import MqttSink  # noqa: E402
from edgecam.stats import Stats  # noqa: E402
from tests.doubles import wait_until  # noqa: E402
from tests.mosquitto import Mosquitto, Subscriber, free_port  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
LABELS = ("cat", "dog", "bird", "fish")


@pytest.fixture
def subscribers():
    made = []

    def make(broker, topics=("#",)):
        s = Subscriber(broker, topics)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


@pytest.fixture
def sinks():
    made = []

    def make(cfg, **kw):
        kw.setdefault("model_name", "tiny_model")
        kw.setdefault("hostname", "test-host")
        s = MqttSink(cfg, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def cfg_for(broker, **kw) -> MqttConfig:
    kw.setdefault("host", broker.host)
    kw.setdefault("port", broker.port)
    return MqttConfig(enabled=True, **kw)


def make_result(top: int, frame: int, score: float = 0.7) -> Classification:
    rest = (1.0 - score) / (len(LABELS) - 1)
    scores = np.full(len(LABELS), rest, dtype=np.float32)
    scores[top] = score
    now = time.monotonic()
    return Classification(
        scores=scores,
        labels=LABELS,
        model="tiny_model",
        frame_index=frame,
        capture_time=now - 0.05,
        wall_time=time.time(),
        result_time=now,
        inference_ms=12.5,
    )


def change(label: str, score: float, frame: int, previous=None) -> LabelChange:
    return LabelChange(label=label, previous=previous, score=score, frame=frame, wall_time=time.time())


def connected(sink):
    return wait_until(lambda: sink.status()["connected"], what="sink connected")


# --------------------------------------------------------------- no broker


def test_topics_and_ids_from_hostname():
    sink = MqttSink(MqttConfig(enabled=True), "m", hostname="My Pi.local/#")
    assert sink.prefix == "edgecam/My_Pi_local"
    assert sink.client_id == "edgecam-My_Pi_local"
    assert sink.topics["state"] == "edgecam/My_Pi_local/state"
    assert sink.topics["availability"] == "edgecam/My_Pi_local/availability"
    custom = MqttSink(MqttConfig(enabled=True, topic_prefix="home/cam1/", client_id="cam one"), "m", hostname="x")
    assert custom.prefix == "home/cam1"
    assert custom.client_id == "cam one"
    assert custom.node_id == "cam_one"


def test_result_payload_leaves_out_labels_below_the_threshold():
    # issue 9 section 3: model.threshold applied to the overlay and the log, not to MQTT.
    sink = MqttSink(MqttConfig(enabled=True), "m", hostname="x", top_k=3, threshold=0.2)
    r = make_result(2, 0, score=0.7)  # the others 0.1 each
    assert [e["label"] for e in sink.result_payload(r)["top_k"]] == [LABELS[2]]
    sink.threshold = 0.05
    assert len(sink.result_payload(r)["top_k"]) == 3


def test_wildcard_topic_prefix_is_a_config_error():
    with pytest.raises(ConfigError) as e:
        MqttSink(MqttConfig(enabled=True, topic_prefix="cams/#"), "m", hostname="x")
    assert "mqtt.topic_prefix" in str(e.value) and "\n" not in str(e.value)
    assert e.value.exit_code == 2


def test_missing_paho_is_one_line_error(monkeypatch):
    for mod in ("paho", "paho.mqtt", "paho.mqtt.client"):
        monkeypatch.setitem(sys.modules, mod, None)
    sink = MqttSink(MqttConfig(enabled=True), "m", hostname="x")
    with pytest.raises(EdgecamError) as e:
        sink.start()
    assert str(e.value) == "mqtt.enabled is true but paho-mqtt is not installed: pip install 'edgecam[mqtt]'"
    assert e.value.exit_code == 2


def test_unreadable_password_file_fails_at_start(tmp_path):
    missing = tmp_path / "nope"
    sink = MqttSink(MqttConfig(enabled=True, username="cam", password_file=str(missing)), "m", hostname="x")
    with pytest.raises(ConfigError) as e:
        sink.start()
    msg = str(e.value)
    assert "mqtt.password_file" in msg and str(missing) in msg and "\n" not in msg


def test_start_returns_and_feeding_works_while_broker_is_absent(sinks):
    port = free_port()  # nothing listens here
    stats = Stats()
    sink = sinks(MqttConfig(enabled=True, host="127.0.0.1", port=port, publish="every", max_rate_hz=1000,
                            queue_size=5), stats=stats)
    sink.start()
    for i in range(12):
        sink.on_result(make_result(1, i))
        time.sleep(0.002)  # beyond the 1 ms rate cap
    st = sink.status()
    assert st["connected"] is False
    assert st["queued"] == 5 and st["dropped"] == 7
    wait_until(lambda: sink.status()["last_error"], what="a connect error")
    assert "unreachable" in sink.status()["last_error"]
    assert stats.extra["mqtt"]["connected"] is False
    assert sink.fatal_error is None
    sink.close()
    sink.close()  # idempotent
    assert sink.status()["state"] == "closed"


# ------------------------------------------------------------ with a broker


def test_changes_mode_state_result_availability(broker, subscribers, sinks):
    sub = subscribers(broker)
    stats = Stats()
    sink = sinks(cfg_for(broker, publish="changes", discovery=False), stats=stats)
    sink.start()
    avail = sink.topics["availability"]
    assert avail == "edgecam/test-host/availability"
    sub.wait(avail, payload=b"online")

    for i in range(5):  # no label change yet: changes mode sends nothing
        sink.on_result(make_result(1, i, score=0.6))
    sink.on_event(change("dog", 0.6, 4))
    sub.wait(sink.topics["state"])
    sub.wait(sink.topics["result"])

    (state,) = sub.json(sink.topics["state"])
    assert state["label"] == "dog" and state["index"] == 1 and state["previous"] is None
    assert state["score"] == pytest.approx(0.6, abs=1e-4)
    assert state["frame"] == 4
    datetime.fromisoformat(state["timestamp"])

    results = sub.json(sink.topics["result"])
    assert len(results) == 1, results  # one per change, not one per result
    r = results[0]
    assert r["frame"] == 4 and r["model"] == "tiny_model"
    assert [x["label"] for x in r["top_k"]] == ["dog", "cat", "bird"]  # top_k=3, ties by index
    assert r["top_k"][0]["score"] == pytest.approx(0.6, abs=1e-4)
    assert r["latency_ms"] == pytest.approx(50.0, abs=0.5) and r["inference_ms"] == 12.5
    assert datetime.fromisoformat(r["timestamp"]).tzinfo is not None

    # /state and /availability are retained: a late subscriber gets them at once.
    late = subscribers(broker, topics=(sink.topics["state"], avail))
    (payload,) = late.wait(sink.topics["state"])
    assert late.retained(sink.topics["state"]) == [True] and json.loads(payload)["label"] == "dog"
    assert late.wait(avail)[0] == b"online" and late.retained(avail)[0] is True

    wait_until(lambda: stats.extra.get("mqtt", {}).get("published", 0) >= 3, what="stats.extra['mqtt']")
    assert stats.extra["mqtt"]["connected"] is True

    sink.close()
    sub.wait(avail, payload=b"offline")
    assert sink.status()["connected"] is False


def test_every_mode_all_results_arrive_under_the_cap(broker, subscribers, sinks):
    sub = subscribers(broker)
    sink = sinks(cfg_for(broker, publish="every", max_rate_hz=1000, discovery=False))
    sink.start()
    connected(sink)
    for i in range(50):
        sink.on_result(make_result(i % 2, i))
        time.sleep(0.002)  # at least 2 ms apart: above the 1 ms cap on any machine
    sink.on_event(change("cat", 0.7, 49))
    sub.wait(sink.topics["result"], n=50)
    frames = [r["frame"] for r in sub.json(sink.topics["result"])]
    assert frames == list(range(50))
    sub.wait(sink.topics["state"])  # /state is sent on change in every mode too
    assert sink.status()["dropped"] == 0


def test_every_mode_rate_cap_limits_results(broker, subscribers, sinks):
    sub = subscribers(broker)
    sink = sinks(cfg_for(broker, publish="every", max_rate_hz=1, discovery=False))
    sink.start()
    connected(sink)
    t0 = time.monotonic()
    for i in range(50):
        sink.on_result(make_result(0, i))
    elapsed = time.monotonic() - t0
    sink.close()  # flushes the queue, then publishes offline
    sub.wait(sink.topics["availability"], payload=b"offline")
    n = len(sub.on(sink.topics["result"]))
    assert 1 <= n <= int(elapsed * 1) + 1, (n, elapsed)
    assert sink.status()["rate_skipped"] == 50 - n
    assert sub.json(sink.topics["result"])[0]["frame"] == 0


def test_home_assistant_discovery(broker, subscribers, sinks):
    sink = sinks(cfg_for(broker, discovery=True, discovery_prefix="homeassistant"))
    sub = subscribers(broker)
    sink.start()
    label_topic = "homeassistant/sensor/edgecam-test-host/label/config"
    score_topic = "homeassistant/sensor/edgecam-test-host/score/config"
    sub.wait(label_topic)
    sub.wait(score_topic)
    sink.on_result(make_result(2, 7, score=0.85))
    sink.on_event(change("bird", 0.85, 7, previous="dog"))
    sub.wait(sink.topics["state"])

    configs = {t: json.loads(sub.on(t)[0]) for t in (label_topic, score_topic)}
    unique_ids = set()
    for conf in configs.values():
        for key in ("name", "unique_id", "state_topic", "value_template", "availability_topic",
                    "payload_available", "payload_not_available", "device"):
            assert key in conf, key
        assert conf["state_topic"] == sink.topics["state"]
        assert conf["availability_topic"] == sink.topics["availability"]
        assert (conf["payload_available"], conf["payload_not_available"]) == ("online", "offline")
        dev = conf["device"]
        assert isinstance(dev["identifiers"], list) and dev["identifiers"]
        assert dev["sw_version"] == edgecam.__version__
        assert dev["model"] == "tiny_model" and dev["name"] and dev["manufacturer"]
        unique_ids.add(conf["unique_id"])
    assert len(unique_ids) == 2
    assert configs[label_topic]["device"] == configs[score_topic]["device"]  # one device, two entities

    # What was published is what the configs point at, with the keys their templates read.
    assert sub.on(sink.topics["availability"])[0] == configs[label_topic]["payload_available"].encode()
    state = sub.json(sink.topics["state"])[0]
    assert configs[label_topic]["value_template"] == "{{ value_json.label }}" and state["label"] == "bird"
    assert "value_json.score" in configs[score_topic]["value_template"] and state["score"] == pytest.approx(0.85)
    assert configs[label_topic]["json_attributes_topic"] == sink.topics["state"]

    late = subscribers(broker, topics=("homeassistant/#",))
    late.wait(label_topic)
    assert all(late.retained(label_topic))


def test_discovery_off_publishes_no_config(broker, subscribers, sinks):
    sub = subscribers(broker)
    sink = sinks(cfg_for(broker, discovery=False))
    sink.start()
    connected(sink)
    sink.close()
    sub.wait(sink.topics["availability"], payload=b"offline")
    assert not [t for t, *_ in sub.messages if t.startswith("homeassistant/")]


def test_snapshot_on_label_change(broker, subscribers, sinks):
    cv2 = pytest.importorskip("cv2")
    sub = subscribers(broker)
    sink = sinks(cfg_for(broker, snapshot=True, discovery=False))
    assert sink.wants_frames is True
    sink.start()
    connected(sink)
    image = np.zeros((32, 48, 3), np.uint8)
    annotated = image.copy()
    annotated[:, :24] = (0, 0, 255)
    frame = Frame(image=image, index=3, timestamp=time.monotonic(), wall_time=time.time())
    result = make_result(0, 3)
    sink.on_result(result)
    sink.on_frame(frame, annotated, result)
    sink.on_event(change("cat", 0.7, 3))
    (payload,) = sub.wait(sink.topics["snapshot"])
    decoded = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (32, 48, 3)
    assert decoded[:, :20, 2].mean() > 200 and decoded[:, 28:, 2].mean() < 50  # the annotated one


def test_qos0_message_not_yet_written_when_the_connection_dies_is_sent_after_the_reconnect(broker, sinks):
    """paho drops QoS 0 packets it had not written when the socket dies: the sink queues them again."""
    sink = sinks(cfg_for(broker, publish="every", max_rate_hz=1000, discovery=False))
    sink.start()
    connected(sink)
    wait_until(lambda: sink.status()["queued"] == 0 and not sink._outstanding, what="birth messages out")
    # A result handed to paho whose packet had not left when the broker went away.
    pending = make_result(2, 41)
    with sink._cond:
        sink._outstanding[987_654] = ("result", pending)
    broker.stop()
    wait_until(lambda: not sink.status()["connected"], what="sink to notice the outage")
    st = sink.status()
    assert st["dropped"] == 0
    assert list(sink._queue) == [("result", pending)]

    broker.start()
    def received():
        since_restart = broker.log().split("mosquitto version")[-1]
        return since_restart.count(f"'{sink.topics['result']}'")

    wait_until(lambda: received() >= 1, what="the re-queued result at the restarted broker")
    assert sink.status()["dropped"] == 0


def test_broker_outage_queues_bounded_then_resumes(broker, subscribers, sinks, caplog):
    caplog.set_level(logging.INFO, logger="edgecam.outputs.mqtt")
    stats = Stats()
    sink = sinks(cfg_for(broker, publish="every", max_rate_hz=1000, queue_size=10, discovery=False), stats=stats)
    sink.start()
    connected(sink)
    sink.on_result(make_result(1, 0))
    sink.on_event(change("dog", 0.7, 0))
    wait_until(lambda: sink.status()["published"] >= 3 and sink.status()["queued"] == 0, what="first publishes")

    broker.stop()
    wait_until(lambda: not sink.status()["connected"], what="sink to notice the outage")
    before = sink.status()
    for i in range(1, 31):  # never raises, never waits for the network
        sink.on_result(make_result(i % 2, i))
        time.sleep(0.002)
    during = sink.status()
    assert during["queued"] == 10
    assert during["dropped"] - before["dropped"] == 20
    assert during["state"] == "disconnected"
    # The oldest were dropped: what waits is the newest ten.
    assert [r.frame_index for kind, r in sink._queue if kind == "result"] == list(range(21, 31))

    published_before = during["published"]
    broker.start()  # same port, and no retained messages survived
    # "published" counts the broker's acknowledgements, which can trail the
    # queue draining into paho: wait for them rather than read once.
    def drained():
        s = sink.status()
        # the queue, plus online and the state again
        return s["connected"] and s["queued"] == 0 and s["published"] - published_before >= 10 + 2

    wait_until(drained, what="reconnect, drain, and the queued messages published")
    after = sink.status()
    assert after["reconnects"] == 1
    assert stats.extra["mqtt"]["reconnects"] == 1

    # The queued results reached the restarted broker.
    def received_results():
        since_restart = broker.log().split("mosquitto version")[-1]
        return since_restart.count(f"Received PUBLISH from {sink.client_id} (d0, q0, r0, m0, '{sink.topics['result']}'")

    wait_until(lambda: received_results() >= 10, what="queued results at the broker")
    assert received_results() == 10

    # The retained state and availability were restored on the fresh broker...
    late = subscribers(broker)
    assert json.loads(late.wait(sink.topics["state"])[0])["label"] == "dog"
    assert late.wait(sink.topics["availability"])[0] == b"online"
    # ...and new results flow again.
    for i in range(31, 34):
        sink.on_result(make_result(0, i))
        time.sleep(0.002)
    wait_until(lambda: [r["frame"] for r in late.json(sink.topics["result"])][-3:] == [31, 32, 33],
               what="results 31..33")
    # The broker may still have been relaying queued ones when `late` subscribed.
    frames = [r["frame"] for r in late.json(sink.topics["result"])]
    assert frames == sorted(frames) and set(frames) <= set(range(21, 34))

    text = caplog.text
    assert text.count("MQTT disconnected") == 1
    assert text.count("MQTT reconnected") == 1


def test_wrong_password_is_fatal_and_not_retried(tmp_path, sinks, caplog):
    caplog.set_level(logging.INFO, logger="edgecam.outputs.mqtt")
    broker = Mosquitto(tmp_path, users={"cam": "right-one"})
    broker.start()
    try:
        bad = tmp_path / "bad"
        bad.write_text("wrong\n")
        stats = Stats()
        sink = sinks(cfg_for(broker, username="cam", password_file=str(bad)), stats=stats)
        sink.start()
        wait_until(lambda: sink.fatal_error is not None, what="fatal_error")
        err = sink.fatal_error
        assert isinstance(err, NetworkError) and err.exit_code == 5
        assert f"127.0.0.1:{broker.port}" in str(err) and "'cam'" in str(err) and "\n" not in str(err)
        st = sink.status()
        assert st["state"] == "auth_failed" and st["connected"] is False
        assert st["last_error"] in ("Not authorized", "Bad user name or password")
        assert stats.extra["mqtt"]["state"] == "auth_failed"
        time.sleep(2.5)  # paho would have retried after 1 s
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and f"127.0.0.1:{broker.port}" in errors[0].getMessage()
        attempts = broker.log().count("Sending CONNACK")
        assert attempts == 1, broker.log()

        good = tmp_path / "good"
        good.write_text("right-one\n")  # the trailing newline is not part of the password
        ok = sinks(cfg_for(broker, username="cam", password_file=str(good), client_id="edgecam-ok"))
        ok.start()
        connected(ok)
        assert ok.fatal_error is None
    finally:
        broker.stop()


LWT_SCRIPT = """
import sys, time
from edgecam.config.schema import MqttConfig
from edgecam.outputs.mqtt import MqttSink
sink = MqttSink(MqttConfig(enabled=True, host="127.0.0.1", port=int(sys.argv[1]), discovery=False), "m",
                hostname="lwt-host")
sink.start()
deadline = time.monotonic() + 20
while not (sink.status()["connected"] and sink.status()["published"] >= 1):
    if time.monotonic() > deadline:
        sys.exit("never connected")
    time.sleep(0.02)
print("ready", flush=True)
time.sleep(120)
"""


def test_last_will_offline_after_sigkill(broker, subscribers):
    avail = "edgecam/lwt-host/availability"
    sub = subscribers(broker, topics=(avail,))
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", LWT_SCRIPT, str(broker.port)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=str(REPO), text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "ready", proc.stderr.read() if proc.poll() is not None else line
        sub.wait(avail, payload=b"online")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        sub.wait(avail, payload=b"offline")
        payloads = sub.on(avail)
        assert payloads.index(b"offline") > payloads.index(b"online")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------ regions

def region_infos():
    from edgecam.outputs.base import RegionInfo

    return (RegionInfo("garage", (0.5, 0.3, 0.95, 0.95), ("closed", "open"), on_label="open"),
            RegionInfo("bins", (0.0, 0.6, 0.3, 1.0), ("curb", "gone", "yard")))


def region_change(region: str, label, previous, score: float, frame: int) -> RegionChange:
    return RegionChange(region=region, label=label, previous=previous, score=score, frame=frame,
                        wall_time=time.time())


def render(template: str, value_json: dict | None = None, **variables) -> str:
    """Render a Home Assistant template with Jinja2 as HA does (the system's jinja2, if any): a value_template
    with ``value_json``, a command_template with ``value=...``."""
    code = ("import jinja2, json, sys; t = jinja2.Environment().from_string(sys.argv[1]); "
            "print(t.render(**json.loads(sys.argv[2])), end='')")
    variables = variables if value_json is None else {"value_json": value_json, **variables}
    try:
        proc = subprocess.run(["/usr/bin/python3", "-c", code, template, json.dumps(variables)],
                              capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        pytest.skip("no /usr/bin/python3 to render Jinja2 templates with")
    if "No module named 'jinja2'" in proc.stderr:
        pytest.skip("python3-jinja2 is not installed (apt-get install python3-jinja2)")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_region_states_and_their_home_assistant_entities(broker, subscribers, sinks):
    sub = subscribers(broker)
    # Changes as fast as they come (not the 1 a second that keeps Home Assistant's recorder small): what each says.
    sink = sinks(cfg_for(broker, discovery=True, max_changes_hz=1000), regions=region_infos())
    sink.start()
    base = "homeassistant/sensor/edgecam-test-host"
    sensor = f"{base}/region_garage/config"
    binary = "homeassistant/binary_sensor/edgecam-test-host/region_garage/config"
    bins = f"{base}/region_bins/config"
    for topic in (sensor, binary, bins):
        sub.wait(topic)
    sink.on_event(region_change("garage", "open", None, 0.97, 3))
    sink.on_event(region_change("bins", "curb", None, 0.88, 3))
    sink.on_event(region_change("garage", "unknown", "open", 0.41, 9))
    garage_topic = f"{sink.prefix}/region/garage/state"
    sub.wait(garage_topic, n=2)
    first, second = sub.json(garage_topic)[:2]
    assert first["region"] == "garage" and first["label"] == "open" and first["score"] == pytest.approx(0.97)
    assert second["label"] == "unknown" and second["previous"] == "open" and second["frame"] == 9
    assert datetime.fromisoformat(first["timestamp"]).tzinfo is not None
    assert sub.json(f"{sink.prefix}/region/bins/state")[0]["label"] == "curb"
    late = subscribers(broker, topics=(f"{sink.prefix}/region/#",))  # retained: a late subscriber gets the last
    late.wait(garage_topic)
    assert late.json(garage_topic) == [second] and late.retained(garage_topic) == [True]
    # No whole-picture Label/Score sensors when regions are classified instead.
    assert not sub.on(f"{base}/label/config") and not sub.on(f"{base}/score/config")
    conf_sensor, conf_binary = json.loads(sub.on(sensor)[0]), json.loads(sub.on(binary)[0])
    assert conf_sensor["state_topic"] == conf_binary["state_topic"] == garage_topic
    assert conf_sensor["unique_id"] != conf_binary["unique_id"]
    assert conf_sensor["device"] == conf_binary["device"] == json.loads(sub.on(bins)[0])["device"]
    assert conf_binary["availability_topic"] == sink.topics["availability"]
    assert not sub.on("homeassistant/binary_sensor/edgecam-test-host/region_bins/config")  # three states
    # The templates, rendered as Home Assistant renders them.
    assert render(conf_sensor["value_template"], first) == "open"
    assert render(conf_binary["value_template"], first) == conf_binary["payload_on"] == "ON"
    assert render(conf_binary["value_template"], {**first, "label": "closed"}) == conf_binary["payload_off"]
    assert render(conf_binary["value_template"], second) == "None"  # unknown, for Home Assistant


def test_region_states_are_sent_again_after_a_broker_restart(tmp_path, subscribers, sinks):
    port = free_port()
    with Mosquitto(tmp_path / "a", port=port) as broker:
        sink = sinks(cfg_for(broker, discovery=False), regions=region_infos())
        sink.start()
        connected(sink)
        sink.on_event(region_change("garage", "closed", None, 0.9, 1))
        wait_until(lambda: sink.status()["published"] >= 2, "state published")
    with Mosquitto(tmp_path / "b", port=port) as broker:  # a new broker: no retained messages
        sub = subscribers(broker)
        sub.wait(f"{sink.prefix}/region/garage/state")
        assert sub.json(f"{sink.prefix}/region/garage/state")[0]["label"] == "closed"
