"""``edgecam run`` publishing to a real mosquitto on 127.0.0.1, watched by a paho subscriber.

Covers what a user sees: availability, state, results and Home Assistant
discovery; a broker restart mid-run loses no pipeline frame and publishing
resumes; bad credentials end the run with exit code 5 and one line; the Last
Will on SIGKILL and a clean ``offline`` on SIGTERM.
"""

from __future__ import annotations

import re
import signal
import time
from datetime import datetime
from pathlib import Path

import pytest

pytest.importorskip("paho.mqtt.client", reason="paho-mqtt not installed: pip install 'edgecam[mqtt]'")

from tests.e2e import Edgecam, free_port, read_log, run_args, shared_video, write_config  # noqa: E402
from tests.doubles import wait_until  # noqa: E402
from tests.mosquitto import Mosquitto, Subscriber  # noqa: E402

PREFIX = "e2e/cam"
CLIENT_ID = "e2e-cam"
TIMEOUT = 30.0


@pytest.fixture
def video(shared_dir):
    return shared_video(shared_dir)


@pytest.fixture
def subscriber(broker):
    s = Subscriber(broker, timeout=TIMEOUT)
    yield s
    s.close()


def mqtt_config(tmp_path: Path, video: Path, broker: Mosquitto, *, paced: bool, http_port: int | None = None,
                **mqtt_keys) -> Path:
    cfg = {
        "model": {"top_k": 3},
        "source": {"type": "opencv", "uri": str(video), "realtime": paced, "loop": paced},
        "mqtt": {"enabled": True, "host": broker.host, "port": broker.port, "client_id": CLIENT_ID,
                 "topic_prefix": PREFIX, "publish": "every", "max_rate_hz": 1000, "queue_size": 1000,
                 **mqtt_keys},
    }
    if http_port is not None:
        cfg["http"] = {"enabled": True, "port": http_port}
    return write_config(tmp_path / "cfg.yaml", cfg)


def wait_for(app: Edgecam | None, predicate, what: str, timeout: float = TIMEOUT):
    if app is not None:
        return app.wait_until(predicate, what, timeout=timeout, interval=0.05)
    return wait_until(predicate, what, timeout, interval=0.05)


def wall(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def test_publishes_availability_state_results_and_discovery(tmp_path, model_env, video, broker, subscriber):
    cfg = mqtt_config(tmp_path, video, broker, paced=False)
    log = tmp_path / "log.jsonl"
    with Edgecam(run_args(cfg, "--log", str(log)), model_env, tmp_path) as app:
        code = app.wait(60)  # the 300-frame video, unpaced, then the end
    assert code == 0, app.stderr()[-3000:]

    availability = subscriber.on(f"{PREFIX}/availability")
    assert availability[0] == b"online" and availability[-1] == b"offline", availability

    results = subscriber.json(f"{PREFIX}/result")
    assert results, "no /result message"
    frames = [r["frame"] for r in results]
    assert frames == sorted(set(frames)), "results out of order or repeated"
    for r in results:
        assert r["model"] == "mobilenet_v3_small" and len(r["top_k"]) == 3
        assert r["timestamp"] and r["inference_ms"] > 0
    # every_frame on a file: each of the 300 frames was classified and logged, in order.
    logged = read_log(log)
    assert [line["frame"] for line in logged] == list(range(300))
    by_frame = {line["frame"]: line for line in logged}
    for r in results:
        assert [e["index"] for e in r["top_k"]] == [e["index"] for e in by_frame[r["frame"]]["top_k"]]

    states = subscriber.json(f"{PREFIX}/state")
    assert states, "no /state message"
    assert {"label", "score", "index", "previous", "frame", "timestamp"} <= set(states[0])
    for s in states:  # each label change is that frame's top-1
        assert s["label"] == by_frame[s["frame"]]["top_k"][0]["label"]
    assert len(states) >= 2 and states[1]["previous"] == states[0]["label"]

    for sensor in ("label", "score"):
        confs = subscriber.json(f"homeassistant/sensor/{CLIENT_ID}/{sensor}/config")
        assert confs, f"no discovery config for the {sensor} sensor"
        conf = confs[-1]
        assert conf["state_topic"] == f"{PREFIX}/state"
        assert conf["availability_topic"] == f"{PREFIX}/availability"
        assert conf["unique_id"] == f"{CLIENT_ID}_{sensor}"


def test_broker_restart_mid_run_loses_no_frame_and_publishing_resumes(tmp_path, model_env, video, broker,
                                                                       subscriber):
    port = free_port()
    # every_frame: a result is never dropped in the pipeline, so a gap in the log
    # would mean the outputs lost one; and an output loop blocked by the outage
    # would hold the paced capture back (checked through the capture times below).
    cfg = mqtt_config(tmp_path, video, broker, paced=True, http_port=port)
    text = cfg.read_text().replace("loop: true", "loop: true\n  policy: every_frame")
    cfg.write_text(text)
    log = tmp_path / "log.jsonl"
    with Edgecam(run_args(cfg, "--log", str(log)), model_env, tmp_path) as app:
        app.wait_http(port)
        wait_for(app, lambda: app.metrics().get("edgecam_mqtt_connected") == 1, "mqtt connected")
        wait_for(app, lambda: len(subscriber.on(f"{PREFIX}/result")) >= 10, "10 results")
        # Run longer than the outage first, so that as long a stretch before it can be compared.
        wait_for(app, lambda: len(read_log(log)) >= 5 * 30, "5 s of results in the log")

        broker.stop()
        t_down = time.time()
        down = wait_for(app, lambda: (lambda m: m if m["edgecam_mqtt_connected"] == 0 else None)(app.metrics()),
                        "mqtt_connected 0 in /metrics")
        last_before = max(r["frame"] for r in subscriber.json(f"{PREFIX}/result"))
        time.sleep(3.0)
        during = app.metrics()
        t_up = time.time()
        broker.start()  # same port

        wait_for(app, lambda: [r for r in subscriber.json(f"{PREFIX}/result", since=t_up)
                               if r["frame"] > last_before], "a new /result after the broker restart")
        after = wait_for(app, lambda: (lambda m: m if m["edgecam_mqtt_connected"] == 1 and m["edgecam_mqtt_queued"] == 0
                                       else None)(app.metrics()), "the queue flushed after the reconnect")
        assert subscriber.on(f"{PREFIX}/availability", since=t_up)[-1] == b"online"
        assert app.stop() == 0

    # The mqtt gauges told the story.
    assert during["edgecam_mqtt_connected"] == 0 and during["edgecam_mqtt_queued"] > 0
    assert after["edgecam_mqtt_reconnects_total"] >= 1
    assert after["edgecam_mqtt_dropped_total"] == 0, "queue_size 1000 holds a 3 s outage at 30 results/s"
    assert after["edgecam_mqtt_published_total"] > down["edgecam_mqtt_published_total"]
    assert after["edgecam_frames_dropped_total"] == 0

    logged = read_log(log)
    frames = [line["frame"] for line in logged]
    assert frames == list(range(frames[0], frames[0] + len(frames))), "a frame is missing from the log"
    # Frames kept coming while the broker was away, as many as in as long a stretch before it.
    stamps = [wall(line["timestamp"]) for line in logged]
    span = t_up - t_down
    in_outage = sum(t_down <= t < t_up for t in stamps)
    before = sum(t_down - span <= t < t_down for t in stamps)
    assert in_outage >= 0.8 * before > 0, f"{in_outage} frames during the {span:.1f} s outage, {before} before"
    assert any(line["frame"] > last_before for line in logged if wall(line["timestamp"]) >= t_up)


def test_wrong_password_exits_5_with_one_line(tmp_path, model_env, video):
    broker = Mosquitto(tmp_path, users={"cam": "right-password"})
    broker.start()
    try:
        (tmp_path / "mqtt-password").write_text("wrong-password\n")
        cfg = mqtt_config(tmp_path, video, broker, paced=True, username="cam",
                          password_file=str(tmp_path / "mqtt-password"))
        with Edgecam(run_args(cfg), model_env, tmp_path) as app:
            code = app.wait(TIMEOUT)
    finally:
        broker.stop()
    err = app.stderr()
    assert code == 5, err
    assert "Traceback" not in err
    # One message says what, where and what to do (the sink logs it, and the
    # pipeline repeats it when it stops the run on it).
    messages = set(re.findall(r"MQTT broker \S+ refused .*?\(not retrying\)", err))
    assert len(messages) == 1, err
    message = messages.pop()
    assert f"127.0.0.1:{broker.port} refused user 'cam'" in message, err
    assert "check mqtt.username and mqtt.password_file" in message, err
    assert "wrong-password" not in err


def test_sigkill_leaves_the_last_will_sigterm_says_offline(tmp_path, model_env, video, broker, subscriber):
    cfg = mqtt_config(tmp_path, video, broker, paced=True)
    topic = f"{PREFIX}/availability"

    with Edgecam(run_args(cfg), model_env, tmp_path, name="killed") as app:
        wait_for(app, lambda: subscriber.on(topic) == [b"online"], "online")
        wait_for(app, lambda: subscriber.on(f"{PREFIX}/result"), "a result")
        app.send(signal.SIGKILL)
        assert app.wait() == -signal.SIGKILL
    wait_for(None, lambda: subscriber.on(topic) == [b"online", b"offline"], "offline from the Last Will")
    # The broker saw the socket close without a DISCONNECT packet: that is what fires the Will.
    assert f"Client {CLIENT_ID} closed its connection." in broker.log(), broker.log()[-2000:]
    assert f"Client {CLIENT_ID} disconnected." not in broker.log(), broker.log()[-2000:]

    results_before = len(subscriber.on(f"{PREFIX}/result"))
    with Edgecam(run_args(cfg), model_env, tmp_path, name="terminated") as app:
        wait_for(app, lambda: subscriber.on(topic)[2:] == [b"online"], "online again")
        # A result of this run (the killed one's are there already): it runs, with its signal handlers set.
        wait_for(app, lambda: len(subscriber.on(f"{PREFIX}/result")) > results_before, "a result")
        assert app.stop() == 0
    wait_for(None, lambda: subscriber.on(topic)[2:] == [b"online", b"offline"], "offline after SIGTERM")
    # edgecam said goodbye itself (a DISCONNECT packet), the broker did not fire the Will.
    assert f"Client {CLIENT_ID} disconnected." in broker.log(), broker.log()[-2000:]
    assert "Traceback" not in app.stderr()
