"""Commands over MQTT (issue 23): published as Home Assistant would, on a real mosquitto, to a running camera."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("paho.mqtt.client", reason="paho-mqtt not installed: pip install 'edgecam[mqtt]'")

from edgecam.config import schema as config_mod  # noqa: E402
from tests.doubles import FakeCamera, TabbyModel as Tabby, wait_until  # noqa: E402
from tests.mosquitto import Mosquitto, Subscriber  # noqa: E402
from tests.outputs.test_mqtt import render  # noqa: E402

PREFIX = "edgecam/pi"
NODE = "edgecam-pi"
SETTLE_S = 0.5  # after a refused command's answer: time for a change it should not make to show


class Publisher:
    """Home Assistant's side: publishes commands (as a user, when given)."""

    def __init__(self, broker, user: tuple[str, str] | None = None):
        import paho.mqtt.client as mqtt

        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"ha-{id(self):x}")
        if user:
            self.client.username_pw_set(*user)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def send(self, what: str, payload) -> None:
        self.client.publish(f"{PREFIX}/set/{what}", payload, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def running(monkeypatch, tmp_path):
    """``running(broker, **mqtt)``: an App on a camera that always sees a tabby, running in a thread."""
    import edgecam.camera
    import edgecam.model.backends
    from edgecam.pipeline.app import App

    # A tabby-seeing model named as the config asks (model.name), so that a model command loads "another".
    monkeypatch.setattr(edgecam.model.backends, "load_classifier",
                        lambda cfg, **kw: type("M", (Tabby,), {"name": cfg.name})())
    monkeypatch.setattr(edgecam.camera, "open_source", lambda cfg, size=None, **kw: FakeCamera(fps=20))
    runs = []

    def start(broker, **mqtt):
        cfg = {"mqtt": {"enabled": True, "host": broker.host, "port": broker.port, "topic_prefix": PREFIX,
                        "client_id": NODE, "commands": True, **mqtt},
               "model": {"threshold": 0.5, "top_k": 3}, "state_dir": str(tmp_path / "state"),
               "events": {"dir": str(tmp_path / "events"), "rules": [{"name": "cat", "label": "tabby"}]}}
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(cfg))
        app = App(config_mod.load(str(path)), display_override=False)
        thread = threading.Thread(target=app.run, daemon=True)
        thread.start()
        runs.append((app, thread))
        wait_until(lambda: app.stats.frames_inferred > 0, what="the first result")
        return app

    yield start
    for app, thread in runs:
        app.pipeline.stop()
        thread.join(30)


@pytest.fixture
def ha(broker):
    pub = Publisher(broker)
    sub = Subscriber(broker, topics=(f"{PREFIX}/#", f"homeassistant/+/{NODE}/+/config"))
    yield pub, sub
    pub.close()
    sub.close()


def replies(sub) -> list[dict]:
    return sub.json(f"{PREFIX}/reply")


def test_a_command_takes_effect_and_its_state_topic_follows(running, broker, ha):
    pub, sub = ha
    app = running(broker)
    wait_until(lambda: app.pipeline.shown_label is not None, what="a tabby shown")
    sub.wait(f"{PREFIX}/control/threshold", payload=b"0.5")  # the current values, retained
    pub.send("threshold", "0.95")
    assert json.loads(sub.wait(f"{PREFIX}/reply")[0]) == {"command": "threshold", "ok": True, "value": 0.95}
    sub.wait(f"{PREFIX}/control/threshold", payload=b"0.95")
    assert app.pipeline.threshold == 0.95
    wait_until(lambda: app.pipeline.shown_label is None, what="the tabby (0.9) no longer shown")
    pub.send("top_k", "2.0")  # what Home Assistant's number sends for 2
    sub.wait(f"{PREFIX}/control/top_k", payload=b"2")
    assert app.pipeline.top_k == 2
    pub.send("model", "mobilenet_v2")  # as the select sends an option
    sub.wait(f"{PREFIX}/control/model", payload=b"mobilenet_v2")
    assert replies(sub)[-1] == {"command": "model", "ok": True, "value": "mobilenet_v2"}  # switched live
    wait_until(lambda: app.pipeline.latest_result.model == "mobilenet_v2", what="results of the new model")
    label = f"homeassistant/sensor/{NODE}/label/config"
    wait_until(lambda: json.loads(sub.on(label)[-1])["device"]["model"] == "mobilenet_v2", what="the device's model")


BAD = [("threshold", b"NaN", "model.threshold: got nan"), ("threshold", b"high", "model.threshold: got 'high'"),
       ("threshold", b"1.5", "expected a value between 0.0 and 1.0"), ("top_k", b"0.5", "model.top_k: got 0.5"),
       ("model", b"no_such_model", "expected a registry name or a learned model"),
       ("inference", b"maybe", "inference: got 'maybe'"), ("rule/dog", b"false", "no rule named 'dog'"),
       ("volume", b"3", "set/volume: not a command"), ("threshold", b"\xff\xfe", "not UTF-8")]


def test_a_malformed_command_changes_nothing_and_is_answered(running, broker, ha, tmp_path, caplog):
    pub, sub = ha
    app = running(broker)
    sub.wait(f"{PREFIX}/control/threshold")
    for what, payload, says in BAD:
        pub.send(what, payload)
    answers = wait_until(lambda: replies(sub) if len(replies(sub)) >= len(BAD) else None, what="every answer")
    time.sleep(SETTLE_S)
    assert len(answers) == len(BAD)  # one answer each (shape refusals come at once, the others from the loop)
    for what, _, says in BAD:
        assert [a for a in answers if a["command"] == what and a["ok"] is False and says in a["error"]], (says, answers)
    assert (app.pipeline.threshold, app.pipeline.top_k, app.pipeline.live.settings.inference) == (0.5, 3, True)
    assert not (tmp_path / "state" / "control" / "main.json").exists()
    assert sub.on(f"{PREFIX}/control/threshold") == [b"0.5"]  # no new value was published
    refused = [r for r in caplog.records if "command refused" in r.getMessage()]
    assert len(refused) == len(BAD)  # one log line each


def test_pause_resume_a_rule_and_a_snapshot(running, broker, ha):
    pub, sub = ha
    app = running(broker)
    pub.send("inference", "false")
    sub.wait(f"{PREFIX}/control/inference", payload=b"false")
    before = app.stats.frames_inferred
    time.sleep(SETTLE_S)
    assert app.stats.frames_inferred <= before + 2  # what was already on its way, then nothing
    pub.send("inference", "true")
    wait_until(lambda: app.stats.frames_inferred > before + 3, what="inference again")
    pub.send("rule/cat", "false")
    sub.wait(f"{PREFIX}/control/rule/cat", payload=b"false")
    events = next(s for s in app.outputs.sinks if s.name == "events")
    assert [t.enabled for t in events.ruleset.trackers] == [False]
    pub.send("snapshot", "now")
    jpeg = sub.wait(f"{PREFIX}/snapshot")[0]
    assert jpeg[:2] == b"\xff\xd8"


def test_home_assistant_controls_on_the_cameras_device(running, broker, ha):
    pub, sub = ha
    app = running(broker)
    base = "homeassistant/{}/" + NODE + "/control_{}/config"
    topics = {what: base.format(component, what) for component, what in (
        ("select", "model"), ("number", "threshold"), ("number", "top_k"), ("switch", "inference"),
        ("switch", "rule_cat"), ("button", "snapshot"))}
    configs = {what: json.loads(sub.wait(t)[0]) for what, t in topics.items()}
    sensor = json.loads(sub.wait(f"homeassistant/sensor/{NODE}/label/config")[0])
    for what, conf in configs.items():
        assert conf["device"] == sensor["device"], what  # on the camera's device
        assert conf["command_topic"].startswith(f"{PREFIX}/set/") and conf["availability_topic"]
    assert {"mobilenet_v3_small", "mobilenet_v2"} <= set(configs["model"]["options"])
    # What HA sends: a number through its command_template, a switch its payload_off, the button its payload.
    pub.send("threshold", render(configs["threshold"]["command_template"], value=0.8))
    pub.send("top_k", render(configs["top_k"]["command_template"], value=4.0))
    pub.send("inference", configs["inference"]["payload_off"])
    sub.wait(f"{PREFIX}/control/inference", payload=configs["inference"]["state_off"].encode())
    assert sub.on(configs["threshold"]["state_topic"])[-1] == b"0.8"
    assert sub.on(configs["top_k"]["state_topic"])[-1] == b"4"
    assert (app.pipeline.threshold, app.pipeline.top_k) == (0.8, 4)


def readme_acl() -> str:
    """The Mosquitto ACL the README shows (the block after its "acl_file" marker): the test runs that very one."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    after = text[text.index("starts a real broker with this very block"):]
    return after.split("```text\n", 1)[1].split("```", 1)[0]


ACL = readme_acl()


def test_with_the_acl_another_users_command_changes_nothing(running, tmp_path):
    users = {"edgecam": "cam-secret", "homeassistant": "ha-secret", "guest": "guest-secret"}
    broker = Mosquitto(tmp_path, users=users, acl=ACL)
    broker.start()
    secret = tmp_path / "mqtt-password"
    secret.write_text("cam-secret\n")
    try:
        app = running(broker, username="edgecam", password_file=str(secret))
        guest, admin = Publisher(broker, ("guest", "guest-secret")), Publisher(broker, ("homeassistant", "ha-secret"))
        try:
            guest.send("threshold", "0.9")
            time.sleep(SETTLE_S)
            assert app.pipeline.threshold == 0.5  # the broker dropped it: nothing changed
            admin.send("threshold", "0.7")  # the same command from the user allowed to send it
            wait_until(lambda: app.pipeline.threshold == 0.7, what="the admin's command applied")
        finally:
            guest.close()
            admin.close()
        assert "Denied PUBLISH" in broker.log() and "set/threshold" in broker.log()  # the broker said why
    finally:
        broker.stop()


def test_with_several_cameras_a_command_reaches_its_camera_only(broker, tmp_path):
    # One connection for the run: <prefix>/<camera>/set/... goes to that camera's control, not the other's.
    from edgecam.control.live import Control
    from edgecam.outputs.mqtt import MqttHub, MqttSink

    mqtt = config_mod.MqttConfig(enabled=True, host=broker.host, port=broker.port, topic_prefix="cams",
                                 commands=True, discovery=False)
    hub = MqttHub(mqtt, "host")
    controls, sinks = {}, []
    for name in ("door", "yard"):
        cfg = config_mod.from_dict({"model": {"threshold": 0.5}, "state_dir": str(tmp_path / "state")})
        controls[name] = Control(cfg, name)
        sink = MqttSink(mqtt, "m", hub=hub, camera=name)
        sink.attach_control(controls[name], cfg)
        sink.start()
        sinks.append(sink)
    hub.start()
    sub = Subscriber(broker, topics=("cams/#",))
    pub = Publisher(broker)
    try:
        sub.wait("cams/yard/control/threshold", payload=b"0.5")
        pub.client.publish("cams/yard/set/threshold", "0.25", qos=1).wait_for_publish(10)
        wait_until(lambda: controls["yard"].pending, what="the yard's command queued")
        assert not controls["door"].pending
        controls["yard"].answer(controls["yard"].drain())  # what the yard's output loop does next
        assert json.loads(sub.wait("cams/yard/reply")[0])["ok"] is True
        assert controls["yard"].store.values["model.threshold"].value == 0.25
        assert not sub.on("cams/door/reply")
    finally:
        pub.close()
        sub.close()
        hub.close()
