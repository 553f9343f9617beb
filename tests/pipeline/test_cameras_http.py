"""Several cameras on one HTTP server: CamerasApp with the real model on two paced videos, read over real HTTP."""

from __future__ import annotations

import json
import socket
import threading
import urllib.request

import cv2
import numpy as np
import pytest

from edgecam.config import schema as config_mod
from edgecam.errors import NetworkError
from edgecam.pipeline.cameras import CamerasApp
from tests.doubles import wait_until
from tests.e2e import free_port, http_get, parse_metrics
from tests.pipeline.test_cameras import video
from tests.pipeline.test_pipeline import RecordingSink

COLOURS = {"door": (0, 0, 200), "yard": (0, 160, 0)}  # BGR


def camera_config(uri: str, port: int, **more):
    # Paced as a camera (realtime) and looped: the run goes on until it is stopped.
    return config_mod.from_dict({"source": {"type": "opencv", "uri": uri, "realtime": True, "loop": True},
                                 "display": {"mode": "none"}, "model": {"threads": 1, "top_k": 3},
                                 "http": {"enabled": True, "port": port}, **more})


@pytest.fixture
def cameras(tmp_path, model_env):
    port = free_port()
    # The door has an event rule: its events' page and API are mounted under its prefix.
    events = {"door": {"events": {"dir": str(tmp_path / "events"), "rules": [{"name": "tench", "label": "tench"}]}}}
    cams = [(name, camera_config(video(tmp_path / f"{name}.avi", 30, colour), port, **events.get(name, {})))
            for name, colour in COLOURS.items()]
    return cams, port


def running(base: str) -> list[dict] | None:
    """Every camera of /api/cameras once each is running with a label and a rate, else None."""
    status, _, body = http_get(base + "/api/cameras")
    cams = json.loads(body)["cameras"] if status == 200 else []
    return cams if cams and all(c["state"] == "running" and c["label"] and c["fps"] > 0 for c in cams) else None


def test_two_cameras_are_served_by_one_server_with_a_page_each(cameras):
    cams, port = cameras
    sinks = {name: RecordingSink(name) for name in COLOURS}
    app = CamerasApp(cams, sinks_for=lambda name: [sinks[name]])
    assert app.hub is not None and app.hub.port == port
    assert not any(cam.cfg.http.enabled for cam in app.cameras)  # no camera has a server of its own
    codes = []
    thread = threading.Thread(target=lambda: codes.append(app.run()), name="test-cameras", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        listed = wait_until(lambda: running(base), "both cameras running with a label", timeout=60)
        assert [c["name"] for c in listed] == ["door", "yard"]
        for c in listed:
            assert c["url"] == f"/camera/{c['name']}/" and 0 < c["score"] <= 1 and c["reason"] is None
            assert 0 <= c["age_s"] < 5

        status, headers, page = http_get(base + "/")
        assert status == 200 and headers["Content-Type"].startswith("text/html") and b"api/cameras" in page
        for name, bgr in COLOURS.items():
            status, headers, body = http_get(f"{base}/camera/{name}/")
            assert status == 200 and b"stream.mjpg" in body and b"api/latest" in body
            status, _, body = http_get(f"{base}/camera/{name}/api/latest")
            latest = json.loads(body)
            assert status == 200 and latest["camera"] == name and latest["model"] == "mobilenet_v3_small"
            assert len(latest["top_k"]) == 3 and latest["stats"]["source_state"] == "running"
            status, _, body = http_get(f"{base}/camera/{name}/snapshot.jpg")
            picture = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
            assert status == 200 and picture.shape == (120, 160, 3)
            assert np.abs(np.median(picture[100:, :60], axis=(0, 1)) - bgr).max() < 40  # its own video's colour
        status, _, body = http_get(base + "/camera/door/api/events")
        assert status == 200 and json.loads(body)["rules"] == ["tench"]
        assert http_get(base + "/camera/door/events")[0] == 200
        assert http_get(base + "/camera/yard/api/events")[0] == 404  # no rule there
        metrics = parse_metrics(http_get(base + "/metrics")[2].decode())
        for name in COLOURS:
            assert metrics[f'edgecam_frames_inferred_total{{camera="{name}"}}'] > 0
            assert metrics[f'edgecam_source_up{{camera="{name}"}}'] == 1
        assert "edgecam_http_stream_clients" in metrics
    finally:
        app.stop()
        thread.join(20)
    assert codes == [0]
    assert all(sinks[name].results for name in COLOURS)  # the other outputs were fed as well
    with pytest.raises(OSError):  # the server closed with the run
        urllib.request.urlopen(base + "/healthz", timeout=2)


def test_a_port_in_use_is_one_network_error_exit_code_5(cameras):
    cams, port = cameras
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        with pytest.raises(NetworkError) as e:
            CamerasApp(cams)
    assert e.value.exit_code == 5
    assert e.value.message == f"http: cannot listen on 127.0.0.1:{port}: address already in use (set http.port)"
