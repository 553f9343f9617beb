"""Discovery that stays true (issue 23): what a config no longer has leaves Home Assistant; an event a stop
interrupts is published as ended. A real mosquitto, a real App (stand-in model and camera)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("paho.mqtt.client", reason="paho-mqtt not installed: pip install 'edgecam[mqtt]'")

from edgecam.config import schema as config_mod  # noqa: E402
from tests.doubles import wait_until  # noqa: E402
from tests.mosquitto import Subscriber  # noqa: E402
from tests.pipeline.test_live import app_of  # noqa: E402,F401 (the fixture)

REPO = Path(__file__).resolve().parents[2]
PREFIX = "edgecam/kept"
NODE = "edgecam-kept"  # the node id: the client id's slug
SETTLE_S = 1.0  # after the new config's entities arrived, time for a stray retained one to arrive too


def mqtt(broker) -> dict:
    return {"enabled": True, "host": broker.host, "port": broker.port, "topic_prefix": PREFIX,
            "client_id": NODE}


def regions(*names) -> list[dict]:
    return [{"name": n, "box": [0.1 * i, 0.0, 0.1 * i + 0.1, 1.0]} for i, n in enumerate(names)]


def retained_configs(broker, wanted: str) -> set[str]:
    """The discovery configs the broker has for this node (an empty payload: none), read by a new subscriber
    (what Home Assistant gets at its start), once ``wanted`` arrived."""
    late = Subscriber(broker, topics=(f"homeassistant/+/{NODE}/+/config", f"homeassistant/+/{NODE}/config"))
    try:
        late.wait(wanted)
        time.sleep(SETTLE_S)
        with late.lock:
            last = {t: p for t, p, _, _ in late.messages}  # a config sent live meanwhile counts as well
        return {t for t, p in last.items() if p}
    finally:
        late.close()


def run_config(app_of, broker, tmp_path, **more):
    app = app_of({"mqtt": mqtt(broker), "state_dir": str(tmp_path / "state"), **more})
    sink = next(s for s in app.outputs.sinks if s.name == "mqtt")
    wait_until(lambda: sink.status()["published"] >= 2, what="online and discovery sent")
    return app


# (the config before, after, a discovery topic the first has and the second must no longer leave behind,
#  one the second has)
CHANGES = [
    pytest.param({"regions": regions("garage", "bins")}, {"regions": regions("garage")},
                 f"homeassistant/sensor/{NODE}/region_bins/config", f"homeassistant/sensor/{NODE}/region_garage/config",
                 id="a region removed"),
    pytest.param({}, {"regions": regions("garage")}, f"homeassistant/sensor/{NODE}/label/config",
                 f"homeassistant/sensor/{NODE}/region_garage/config", id="whole picture to regions"),
    pytest.param({"regions": regions("garage")}, {}, f"homeassistant/sensor/{NODE}/region_garage/config",
                 f"homeassistant/sensor/{NODE}/label/config", id="regions to the whole picture"),
]


@pytest.mark.parametrize("before,after,gone,kept", CHANGES)
def test_a_config_change_leaves_no_retained_discovery_config_behind(app_of, broker, tmp_path, before, after, gone,
                                                                   kept):
    first = run_config(app_of, broker, tmp_path, **before)
    assert gone in retained_configs(broker, gone)
    first.outputs.close()  # the run stops; the config changes; it starts again
    second = run_config(app_of, broker, tmp_path, **after)
    left = retained_configs(broker, kept)
    assert gone not in left, f"{gone} is still retained: Home Assistant keeps its entity"
    second.outputs.close()


SCRIPT = """
import sys
import edgecam.camera, edgecam.model.backends
from edgecam.config import schema as config_mod
from edgecam.pipeline.app import App
from tests.doubles import FakeCamera, TabbyModel as Tabby

edgecam.model.backends.load_classifier = lambda cfg, **kw: Tabby()
edgecam.camera.open_source = lambda cfg, size=None, **kw: FakeCamera(fps=10)
sys.exit(App(config_mod.load(sys.argv[1]), display_override=False).run())
"""


def start_run(broker, tmp_path) -> subprocess.Popen:
    """``edgecam run`` in a process of its own (the App, the signals), on a model that always sees a tabby."""
    cfg = {"mqtt": mqtt(broker), "state_dir": str(tmp_path / "state"),
           "events": {"dir": str(tmp_path / "events"),
                      "rules": [{"name": "cat", "label": "tabby", "for_s": 0, "mqtt": True, "snapshot": False}]}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    config_mod.load(str(path))  # a good config
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(path)], env=env, cwd=str(REPO),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_an_event_found_interrupted_at_start_is_published_as_ended(broker, tmp_path):
    sub = Subscriber(broker, topics=(f"{PREFIX}/event",))
    proc = start_run(broker, tmp_path)
    try:
        first = json.loads(sub.wait(f"{PREFIX}/event")[0])
        proc.send_signal(signal.SIGKILL)  # a power cut: nothing is published at the stop
        proc.wait(timeout=30)
        proc = start_run(broker, tmp_path)
        ends = wait_until(lambda: [e for e in sub.json(f"{PREFIX}/event") if e["type"] == "end"], what="an end")
        assert ends[0]["id"] == first["id"] and ends[0]["interrupted"] is True
    finally:
        sub.close()
        proc.kill()
        proc.wait()


def test_a_sigterm_during_an_event_publishes_its_end(broker, tmp_path):
    sub = Subscriber(broker, topics=(f"{PREFIX}/event", f"{PREFIX}/event/cat"))
    proc = start_run(broker, tmp_path)
    try:
        sub.wait(f"{PREFIX}/event/cat", payload=b"start")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
        sub.wait(f"{PREFIX}/event/cat", payload=b"end")  # what a Home Assistant automation waits for
        events = sub.json(f"{PREFIX}/event")
        assert [e["type"] for e in events] == ["start", "end"]
        start, end = events
        assert end["id"] == start["id"] and end["interrupted"] is True and end["end"] >= start["start"]
    finally:
        sub.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_label_sensor_changes_at_most_once_a_second_and_ends_on_the_label_shown(broker):
    # The shared clip changed the label sensor ~7.5 times a second (smoothing off), filling HA's recorder.
    from edgecam.config.schema import MqttConfig
    from edgecam.outputs.mqtt import MqttSink
    from tests.outputs.test_mqtt import change, make_result

    sink = MqttSink(MqttConfig(enabled=True, host=broker.host, port=broker.port, discovery=False), "m",
                    hostname="flicker")
    sub = Subscriber(broker, topics=(sink.topics["state"],))
    try:
        sink.start()
        wait_until(lambda: sink.status()["connected"], what="connected")
        labels = ["cat", "dog"] * 5 + ["bird"]  # 11 changes in a few milliseconds: flicker, then a bird
        previous = None
        for i, label in enumerate(labels):
            sink.on_result(make_result(2 if label == "bird" else 0, i))
            sink.on_event(change(label, 0.7, i, previous=previous))
            previous = label
        wait_until(lambda: [s for s in sub.json(sink.topics["state"]) if s["label"] == "bird"], what="the bird")
        time.sleep(SETTLE_S)  # nothing more comes
        states = sub.json(sink.topics["state"])
        assert [(s["label"], s["previous"]) for s in states] == [("cat", None), ("bird", "cat")]
    finally:
        sink.close()
        sub.close()


def test_the_device_shows_the_models_the_camera_runs(app_of, broker, tmp_path):
    # With regions on a learned model, the device kept the main model's name (model.name).
    app = run_config(app_of, broker, tmp_path, regions=regions("garage"))
    topic = f"homeassistant/sensor/{NODE}/region_garage/config"
    late = Subscriber(broker, topics=(topic,))
    try:
        device = json.loads(late.wait(topic)[0])["device"]
        assert device["model"] == app.classifier.name == "stand-in"  # the regions' model, not mobilenet_v3_small
    finally:
        late.close()
        app.outputs.close()
