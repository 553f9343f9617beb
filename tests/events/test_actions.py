"""Event actions against real peers: MQTT events and Home Assistant device triggers on a real mosquitto;
webhooks to local HTTP servers, one that answers, one that is slow, one that refuses."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time

import numpy as np
import pytest

from edgecam.config.schema import MqttConfig
from edgecam.config.events import EventRuleConfig, EventsConfig
from edgecam.events.sink import EventsSink
from edgecam.events.webhook import Webhooks
from edgecam.camera.frame import Frame
from edgecam.result import Classification
from edgecam.outputs import FanOut
from tests.doubles import wait_until

LABELS = ("background", "ibex", "tabby")


def results(labels: list[str]):
    now = time.time()
    for i, label in enumerate(labels):
        scores = np.array([0.9 if label == name else 0.05 for name in LABELS], np.float32)
        yield Classification(scores, LABELS, frame_index=i, wall_time=now + i / 10)


def test_mqtt_events_and_device_triggers(broker, tmp_path):
    pytest.importorskip("paho.mqtt")
    from edgecam.outputs.mqtt import MqttSink
    from tests.mosquitto import Subscriber

    sub = Subscriber(broker, ("edgecam/test/event/#", "edgecam/test/event", "homeassistant/device_automation/#"))
    rules = [EventRuleConfig(for_s=0, name="ibex", label="ibex", cooldown_s=0, snapshot=False, mqtt=True),
             EventRuleConfig(for_s=0, name="cat", label="tabby", cooldown_s=0, snapshot=False)]
    events = EventsSink(EventsConfig(rules=rules), tmp_path / "ev")
    mqtt = MqttSink(MqttConfig(enabled=True, host=broker.host, port=broker.port, topic_prefix="edgecam/test"),
                    "tiny", hostname="test-host", event_rules=("ibex",))
    fan = FanOut([events, mqtt])  # the order of edgecam.outputs.REGISTRY: events first
    fan.start()
    try:
        for r in results(["background", "ibex", "ibex", "tabby", "background"]):
            fan.on_result(r)
        start, end = sub.wait("edgecam/test/event/ibex", 2)
        assert (start, end) == (b"start", b"end")
        sub.wait("edgecam/test/event", 2)
        got = sub.json("edgecam/test/event")
        assert [(e["type"], e["rule"], e["label"]) for e in got] == [("start", "ibex", "ibex"), ("end", "ibex", "ibex")]
        assert got[0]["id"] == got[1]["id"] == 1 and got[1]["end"] - got[1]["start"] == pytest.approx(0.2, abs=1e-3)
        assert got[0]["snapshot"] is None and got[0]["host"]
        assert sub.retained("edgecam/test/event") == [False, False]
        assert sub.on("edgecam/test/event/cat") == []  # mqtt: false
        topics = {f"homeassistant/device_automation/{mqtt.node_id}/ibex_{k}/config": k for k in ("start", "end")}
        for topic, kind in topics.items():
            conf = json.loads(sub.wait(topic)[0])
            assert (conf["automation_type"], conf["topic"], conf["payload"], conf["type"], conf["subtype"]) == \
                ("trigger", "edgecam/test/event/ibex", kind, f"event_{kind}", "ibex")
            assert conf["device"]["identifiers"] == [mqtt.node_id]
        assert not [t for t, *_ in sub.messages if "cat_" in t]
    finally:
        fan.close()
        sub.close()


class Receiver(http.server.ThreadingHTTPServer):
    """A local webhook receiver: records each POSTed JSON; ``delay_s`` before answering, ``status`` to answer."""

    daemon_threads = True

    def __init__(self, delay_s: float = 0.0, status: int = 200):
        self.got: list[dict] = []
        self.delay_s, self.status = delay_s, status
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(server.delay_s)
                server.got.append({"json": json.loads(body), "type": self.headers["Content-Type"]})
                self.send_response(server.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}/hook"
        threading.Thread(target=self.serve_forever, name="test-webhook", daemon=True).start()

    def close(self):
        self.shutdown()
        self.server_close()


def refused_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connections are refused
    return f"http://127.0.0.1:{port}/hook"


def test_webhooks_post_each_start_and_end_and_never_hold_up_the_pipeline(tmp_path, caplog):
    ok, slow = Receiver(), Receiver(delay_s=1.5)
    dead = refused_url()
    rules = [EventRuleConfig(for_s=0, name="ok", label="ibex", cooldown_s=0, snapshot=False, webhook=ok.url),
             EventRuleConfig(for_s=0, name="slow", label="ibex", cooldown_s=0, snapshot=False, webhook=slow.url),
             EventRuleConfig(for_s=0, name="dead", label="tabby", cooldown_s=0, snapshot=False, webhook=dead)]
    sink = EventsSink(EventsConfig(rules=rules, webhook_timeout_s=0.5, webhook_retries=2), tmp_path / "ev")
    sink.start()
    try:
        for r in results(["ibex", "background", "tabby", "background"]):
            sink.on_result(r)
            sink.on_frame(Frame(np.zeros((8, 8, 3), np.uint8), r.frame_index, 0.0, r.wall_time), None, None)
        # the slow server records a POST 1.5 s after it came: the results went by without waiting for it
        assert slow.got == []
        wait_until(lambda: len(ok.got) == 2, "the two POSTs of the answering server")
        assert [(g["json"]["type"], g["json"]["rule"]) for g in ok.got] == [("start", "ok"), ("end", "ok")]
        assert ok.got[0]["type"] == "application/json" and ok.got[0]["json"]["id"] == 1
        assert ok.got[0]["json"]["snapshot"] is None  # snapshot: false
        # the slow one answers after the 0.5 s timeout: each POST is tried 3 times, then counted as failed
        wait_until(lambda: sink.webhook_failures["dead"] == 2 and sink.webhook_failures["slow"] == 2,
                   "every try of the slow and the refusing server", timeout=60)
    finally:
        sink.close()
        ok.close()
        slow.close()
    assert sink.webhook_failures == {"ok": 0, "slow": 2, "dead": 2}
    assert f"webhook {dead} failed after 3 tries: Connection refused" in caplog.text
    assert caplog.text.count(f"webhook {dead} failed") == 1  # once per URL until it answers again


def test_a_retry_waits_longer_each_time_and_closing_cuts_it_short():
    waits = []
    failed = []
    hooks = Webhooks(0.2, 3, failed.append, sleep=lambda s: waits.append(s) or False)
    hooks.post(refused_url(), "r", {"x": 1})
    wait_until(lambda: failed == ["r"], "the POST given up on")
    assert waits == [1.0, 2.0, 4.0]
    hooks.close()
