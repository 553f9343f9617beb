"""HttpHub: one server for two cameras' sinks, fed synthetic frames and results, read by real HTTP clients."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import numpy as np
import pytest

from edgecam.camera.frame import Frame
from edgecam.config import schema as config_mod
from edgecam.config.schema import HttpConfig
from edgecam.errors import NetworkError
from edgecam.outputs.http_hub import HttpHub
from edgecam.result import Classification
from edgecam.stats import SourceState, Stats
from tests.doubles import StreamClient, wait_until
from tests.outputs.test_http import decode, get, post

COLOURS = {"door": (0, 0, 255), "yard": (0, 255, 0)}  # BGR: red door, green yard
LABELS = {"door": ["cat", "dog", "tabby"], "yard": ["fox", "deer", "hedgehog"]}


def camera_cfg(tmp_path, **source):
    return config_mod.from_dict({"examples_dir": str(tmp_path / "examples"), "source": source})


def feed(view, stats: Stats, name: str, i: int, scores=(0.1, 0.2, 0.7)) -> None:
    """What a camera's output loop does for one frame: its own colour, its own labels."""
    t = time.monotonic()
    stats.frame_captured(t)
    r = Classification(np.array(scores, np.float32), LABELS[name], model="synthetic", frame_index=i,
                       capture_time=t, wall_time=time.time(), result_time=t, inference_ms=3.0)
    stats.result_ready(r.inference_ms, t, r.top.name, r.top.score)
    view.on_result(r)
    img = np.full((120, 160, 3), COLOURS[name], np.uint8)
    view.on_frame(Frame(img, i, t, time.time()), img, r)
    stats.frame_output(t)


@pytest.fixture
def make_hub(tmp_path):
    hubs = []

    def make(names=("door", "yard"), source=None, **http):
        hub = HttpHub(HttpConfig(enabled=True, port=0, **http))
        cams = {}
        for name in names:
            stats = Stats()
            cams[name] = (hub.sink(name, camera_cfg(tmp_path, **(source or {})), stats), stats)
        hub.start()
        hubs.append(hub)
        return hub, cams

    yield make
    for hub in hubs:
        hub.close()


def test_api_cameras_lists_each_camera_with_its_label_rate_age_and_state(make_hub):
    hub, cams = make_hub()
    for i in range(3):
        feed(*cams["door"], "door", i)
    status, headers, body = get(hub, "/api/cameras")
    assert status == 200 and headers["Content-Type"] == "application/json"
    door, yard = json.loads(body)["cameras"]
    assert door["name"] == "door" and door["url"] == "/camera/door/"
    assert door["state"] == "running" and door["reason"] is None
    assert door["label"] == "tabby" and door["score"] == pytest.approx(0.7)
    assert door["fps"] >= 0 and 0 <= door["age_s"] < 5
    assert yard == {"name": "yard", "url": "/camera/yard/", "state": "starting", "reason": None, "label": None,
                    "score": 0.0, "fps": 0.0, "capture_fps": 0.0, "age_s": None}


def test_each_camera_answers_its_own_paths_under_its_prefix(make_hub):
    hub, cams = make_hub()
    feed(*cams["door"], "door", 7)
    feed(*cams["yard"], "yard", 3, scores=(0.8, 0.1, 0.1))
    door = json.loads(get(hub, "/camera/door/api/latest")[2])
    yard = json.loads(get(hub, "/camera/yard/api/latest")[2])
    assert (door["camera"], door["frame"], door["top_k"][0]["label"]) == ("door", 7, "tabby")
    assert (yard["camera"], yard["frame"], yard["top_k"][0]["label"]) == ("yard", 3, "fox")
    for name, bgr in COLOURS.items():
        status, headers, body = get(hub, f"/camera/{name}/snapshot.jpg")
        assert status == 200 and headers["Content-Type"] == "image/jpeg"
        assert np.abs(decode(body)[60, 80].astype(int) - bgr).max() < 40
        client = StreamClient(hub.port, f"/camera/{name}/stream.mjpg")
        try:
            assert np.abs(decode(client.part()[1])[60, 80].astype(int) - bgr).max() < 40
        finally:
            client.close()
        assert get(hub, f"/camera/{name}/healthz")[:3:2] == (200, b"ok\n")
    status, headers, page = get(hub, "/camera/door/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'url("stream.mjpg")' in page and b'url("api/latest")' in page  # relative: they work under the prefix
    status, headers, _ = get(hub, "/camera/door?token=x")  # without the slash its relative URLs would break
    assert status == 308 and headers["Location"] == "/camera/door/?token=x"
    for path in ("/camera/nope/", "/camera/nope/api/latest", "/camera/door/metrics", "/stream.mjpg", "/api/latest",
                 "/camera//api/latest", "/camera/door/../yard/api/latest"):
        assert get(hub, path)[0] == 404, path


def test_the_grid_page_and_the_hubs_health(make_hub):
    hub, cams = make_hub(source={"timeout_s": 0.3})
    status, headers, page = get(hub, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'url("api/cameras")' in page and b'"camera/"' in page and b"snapshot.jpg" in page
    assert get(hub, "/index.html")[2] == page
    assert get(hub, "/healthz")[0] == 503  # no camera has a frame yet
    feed(*cams["door"], "door", 0)
    feed(*cams["yard"], "yard", 0)
    assert get(hub, "/healthz")[:3:2] == (200, b"ok\n")
    assert wait_until(lambda: get(hub, "/healthz")[0] == 503)  # both stalled now
    feed(*cams["door"], "door", 1)
    status, _, body = get(hub, "/healthz")
    assert status == 200 and body.startswith(b"yard: stalled: no frame for ")  # degraded: one camera still flows


def test_a_camera_that_is_down_says_so_and_why(make_hub):
    hub, cams = make_hub()
    hub.mark_down("yard", "opencv: cannot open /dev/video9")
    feed(*cams["door"], "door", 0)
    cams["door"][1].capture_state = SourceState.ENDED
    door, yard = json.loads(get(hub, "/api/cameras")[2])["cameras"]
    assert door["state"] == "ended" and door["label"] == "tabby"
    assert (yard["state"], yard["reason"]) == ("down", "opencv: cannot open /dev/video9")
    assert get(hub, "/camera/yard/healthz")[:3:2] == (503, b"down: opencv: cannot open /dev/video9\n")
    assert get(hub, "/camera/yard/snapshot.jpg")[0] == 503


def metrics_text(make_hub) -> str:
    hub, cams = make_hub()
    for i in range(3):
        feed(*cams["door"], "door", i)
    feed(*cams["yard"], "yard", 0)
    cams["yard"][1].extra["mqtt"] = {"connected": True, "published": 4}
    status, _, body = get(hub, "/metrics")
    assert status == 200
    return body.decode()


def test_metrics_label_every_cameras_series_and_give_each_family_once(make_hub):
    text = metrics_text(make_hub)
    lines = text.splitlines()
    assert 'edgecam_frames_captured_total{camera="door"} 3' in lines
    assert 'edgecam_frames_captured_total{camera="yard"} 1' in lines
    assert 'edgecam_label_info{camera="door",label="tabby"} 1' in lines
    assert 'edgecam_inference_seconds_bucket{camera="yard",le="+Inf"} 1' in lines
    assert 'edgecam_inference_seconds_count{camera="door"} 3' in lines
    assert 'edgecam_mqtt_published_total{camera="yard"} 4' in lines
    assert "edgecam_http_stream_clients 0" in lines  # the server's own: once, for every camera
    helps = [line.split()[2] for line in lines if line.startswith("# HELP ")]
    assert len(helps) == len(set(helps)) and len(helps) == len([x for x in lines if x.startswith("# TYPE ")])
    samples = [line for line in lines if not line.startswith("#")]
    assert all('camera="' in line for line in samples if not line.startswith("edgecam_http_"))


def test_metrics_parse_with_prometheus_client(make_hub):
    parser = pytest.importorskip("prometheus_client.parser", reason="prometheus-client not installed (test-only)")
    families = {f.name: f for f in parser.text_string_to_metric_families(metrics_text(make_hub))}
    captured = {s.labels["camera"]: s.value for s in families["edgecam_frames_captured"].samples}
    assert captured == {"door": 3, "yard": 1}
    hist = families["edgecam_inference_seconds"]
    assert {s.labels["camera"] for s in hist.samples} == {"door", "yard"}
    assert families["edgecam_http_streams_refused"].samples[0].labels == {}


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool not installed (apt-get install prometheus; .ci/run does)")
def test_metrics_pass_promtool(make_hub):
    proc = subprocess.run([shutil.which("promtool"), "check", "metrics"], input=metrics_text(make_hub),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and not proc.stdout.strip() and not proc.stderr.strip(), proc.stdout + proc.stderr


def test_the_stream_limit_counts_every_cameras_viewers_together(make_hub):
    hub, cams = make_hub(max_clients=2)
    for name in cams:
        feed(*cams[name], name, 0)
    a, b = StreamClient(hub.port, "/camera/door/stream.mjpg"), StreamClient(hub.port, "/camera/yard/stream.mjpg")
    try:
        a.part(), b.part()
        for name in cams:
            status, _, body = get(hub, f"/camera/{name}/stream.mjpg")
            assert status == 503 and b"max_clients = 2" in body
        lines = get(hub, "/metrics")[2].decode().splitlines()
        assert "edgecam_http_stream_clients 2" in lines and "edgecam_http_streams_refused_total 2" in lines
        a.close()
        # The server notices the hang-up at its next write (a new picture, or the keepalive).
        for i in range(1, 100):
            feed(*cams["door"], "door", i)
            if hub.slots.clients == 1:
                break
            time.sleep(0.05)
        c = StreamClient(hub.port, "/camera/yard/stream.mjpg")
        assert c.resp.status == 200
        c.close()
    finally:
        a.close()
        b.close()


def test_close_ends_every_cameras_streams(make_hub):
    hub, cams = make_hub()
    for name in cams:
        feed(*cams[name], name, 0)
    clients = [StreamClient(hub.port, f"/camera/{name}/stream.mjpg") for name in cams]
    for c in clients:
        c.part()
    t0 = time.monotonic()
    hub.close()
    hub.close()  # idempotent
    assert time.monotonic() - t0 < 3 and hub.slots.clients == 0
    for c in clients:
        c.close()


def test_the_token_and_host_rules_hold_on_every_new_path(make_hub, tmp_path):
    (tmp_path / "token").write_text("s3cret\n")
    hub, cams = make_hub(token_file=str(tmp_path / "token"))
    feed(*cams["door"], "door", 0)
    for path in ("/", "/api/cameras", "/metrics", "/camera/door/", "/camera/door/api/latest",
                 "/camera/door/snapshot.jpg", "/camera/door/stream.mjpg", "/camera/door"):
        assert get(hub, path)[0] == 401, path
        assert get(hub, path + "?token=wrong")[0] == 401, path
    for path in ("/", "/api/cameras", "/camera/door/", "/camera/door/api/latest", "/camera/door/snapshot.jpg"):
        assert get(hub, path + "?token=s3cret")[0] == 200, path
        assert get(hub, path, {"Authorization": "Bearer s3cret"})[0] == 200, path
    assert get(hub, "/metrics?token=s3cret")[0] == 401  # header only, as with one camera
    assert get(hub, "/metrics", {"Authorization": "Bearer s3cret"})[0] == 200
    assert get(hub, "/camera/door/healthz")[0] == 200 and get(hub, "/healthz")[0] == 200  # no token needed
    for path in ("/", "/api/cameras", "/camera/door/api/latest"):
        status, _, body = get(hub, path + "?token=s3cret", {"Host": "evil.example"})
        assert status == 403 and b"DNS rebinding" in body, path
    assert post(hub, "/camera/door/api/examples", {"region": "x", "label": "y"},
                {"Authorization": "Bearer s3cret", "Origin": "http://evil.example"})[0] == 403


def test_a_cameras_regions_are_taught_under_its_prefix(tmp_path):
    from edgecam.outputs.base import RegionInfo
    from edgecam.result import RegionState

    hub = HttpHub(HttpConfig(enabled=True, port=0))
    info = (RegionInfo("gate", (0.0, 0.0, 0.5, 0.5), ("closed", "open")),)
    yard_stats = Stats()
    yard = hub.sink("yard", camera_cfg(tmp_path), yard_stats, regions=info)
    hub.sink("door", camera_cfg(tmp_path), Stats())
    hub.start()
    try:
        t = time.monotonic()
        states = {"gate": RegionState("gate", info[0].box, "open", 0.9, 1, 1, time.time(), True)}
        r = Classification(np.zeros(0, np.float32), (), model="gate", frame_index=1, capture_time=t,
                           wall_time=time.time(), result_time=t, regions=states)
        yard_stats.frame_captured(t)
        yard_stats.regions_ready(3.0, t, states, 1)
        yard.on_result(r)
        img = np.full((120, 160, 3), 90, np.uint8)
        yard.on_frame(Frame(img, 1, t, time.time()), img.copy(), r)
        assert [reg["name"] for reg in json.loads(get(hub, "/camera/yard/api/regions")[2])["regions"]] == ["gate"]
        assert json.loads(get(hub, "/camera/door/api/regions")[2]) == {"regions": []}
        assert decode(get(hub, "/camera/yard/region/gate.jpg")[2]).shape == (60, 80, 3)
        status, data = post(hub, "/camera/yard/api/examples", {"region": "gate", "label": "open"})
        assert status == 201 and "/gate/open/" in data["saved"]
        assert post(hub, "/camera/door/api/examples", {"region": "gate", "label": "open"})[0] == 404
        assert post(hub, "/api/examples", {"region": "gate", "label": "open"})[0] == 404
        assert json.loads(get(hub, "/api/cameras")[2])["cameras"][0]["label"] == "gate open"
    finally:
        hub.close()


def test_a_busy_port_is_one_network_error(make_hub):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        hub = HttpHub(HttpConfig(enabled=True, port=port))
        with pytest.raises(NetworkError) as e:
            hub.start()
    assert str(e.value) == f"http: cannot listen on 127.0.0.1:{port}: address already in use (set http.port)"
    assert e.value.exit_code == 5
    hub.close()
