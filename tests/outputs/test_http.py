"""HttpSink with real HTTP clients on 127.0.0.1, fed synthetic frames and results."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
from datetime import datetime

import cv2
import numpy as np
import pytest

from edgecam.config.schema import HttpConfig
from edgecam.errors import ConfigError, NetworkError
from edgecam.camera.frame import Frame
from edgecam.result import Classification
from edgecam.outputs.http import HttpSink
from edgecam.stats import Stats
from tests.doubles import StreamClient, wait_until

W, H = 320, 240
LABELS = ["cat", "dog", "tabby", "lynx"]
RECT_BGR = (0, 0, 255)


def picture(i: int = 0, noise: bool = False) -> np.ndarray:
    if noise:  # incompressible: big JPEGs that fill socket buffers quickly
        return np.random.default_rng(i).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    img = np.full((H, W, 3), 30, np.uint8)
    cv2.rectangle(img, (80, 60), (240, 180), RECT_BGR, -1)
    cv2.putText(img, str(i), (5, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1)
    return img


def result(i: int, scores=(0.1, 0.2, 0.6, 0.1)) -> Classification:
    t = time.monotonic()
    return Classification(np.array(scores, np.float32), LABELS, model="synthetic", frame_index=i,
                          capture_time=t, wall_time=time.time(), result_time=t + 0.004, inference_ms=3.0)


def feed(sink: HttpSink, stats: Stats, i: int, noise: bool = False) -> None:
    """What the pipeline does for one frame."""
    t = time.monotonic()
    stats.frame_captured(t)
    r = result(i)
    stats.result_ready(r.inference_ms, t, r.top.name, r.top.score)
    sink.on_result(r)
    img = picture(i, noise)
    sink.on_frame(Frame(img, i, t, time.time()), img, r)
    stats.frame_output(t)


class Feeder:
    """Feeds frames from a thread until stopped; counts them."""

    def __init__(self, sink, stats, period_s=0.02, noise=False):
        self.sink, self.stats, self.period_s, self.noise = sink, stats, period_s, noise
        self.fed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-feeder", daemon=True)

    def _run(self):
        while not self._stop.is_set():
            feed(self.sink, self.stats, self.fed, self.noise)
            self.fed += 1
            self._stop.wait(self.period_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def make_sink():
    sinks = []

    def make(stall_timeout_s=5.0, top_k=3, threshold=0.0, **cfg):
        stats = Stats()
        sink = HttpSink(HttpConfig(port=0, **cfg), stats, stall_timeout_s=stall_timeout_s, top_k=top_k,
                        threshold=threshold)
        sink.start()
        sinks.append(sink)
        return sink, stats

    yield make
    for s in sinks:
        s.close()


def get(sink, path, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", sink.port, timeout=10)
    conn.request("GET", path, headers=headers or {})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, resp.headers, body


def decode(jpeg: bytes) -> np.ndarray:
    assert jpeg[:2] == b"\xff\xd8"
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return img


# ----------------------------------------------------------------- endpoints


def test_before_the_first_frame_everything_says_503(make_sink):
    sink, _ = make_sink()
    status, headers, body = get(sink, "/snapshot.jpg")
    assert status == 503 and b"no frame" in body
    status, headers, body = get(sink, "/api/latest")
    assert status == 503 and headers["Content-Type"] == "application/json"
    assert "error" in json.loads(body)
    status, _, body = get(sink, "/healthz")
    assert (status, body) == (503, b"starting\n")
    assert get(sink, "/nope")[0] == 404


def test_snapshot_is_the_newest_frame_as_jpeg(make_sink):
    sink, stats = make_sink()
    for i in range(3):
        feed(sink, stats, i)
    status, headers, body = get(sink, "/snapshot.jpg")
    assert status == 200
    assert headers["Content-Type"] == "image/jpeg"
    assert int(headers["Content-Length"]) == len(body)
    img = decode(body)
    assert img.shape == (H, W, 3)
    b, g, r = img[120, 160].astype(int)  # the rectangle's centre: red
    assert r > 200 and g < 50 and b < 50
    b, g, r = img[5, 300].astype(int)  # outside: dark grey
    assert r < 60


def test_api_latest_reports_the_last_result(make_sink):
    sink, stats = make_sink(top_k=2)
    feed(sink, stats, 0)
    sink.on_result(result(7, scores=(0.05, 0.7, 0.2, 0.05)))
    status, headers, body = get(sink, "/api/latest")
    assert status == 200 and headers["Content-Type"] == "application/json"
    data = json.loads(body)
    assert data["frame"] == 7 and data["model"] == "synthetic"
    assert [l["label"] for l in data["top_k"]] == ["dog", "tabby"]
    assert data["top_k"][0]["score"] == pytest.approx(0.7, abs=1e-4)
    assert datetime.fromisoformat(data["timestamp"]).tzinfo is not None
    assert data["age_s"] >= 0
    assert {"capture_fps", "inference_fps", "output_fps"} <= set(data["stats"])


def test_api_latest_leaves_out_labels_below_the_threshold(make_sink):
    # issue 9 section 3: model.threshold applied to the overlay and the log, not to /api/latest.
    sink, stats = make_sink(top_k=3, threshold=0.15)
    feed(sink, stats, 0)  # scores cat 0.1, dog 0.2, tabby 0.6, lynx 0.1
    data = json.loads(get(sink, "/api/latest")[2])
    assert [l["label"] for l in data["top_k"]] == ["tabby", "dog"]
    sink.threshold = 0.9  # what a reload does
    assert json.loads(get(sink, "/api/latest")[2])["top_k"] == []


def test_page_links_the_stream_and_the_api(make_sink):
    sink, _ = make_sink()
    status, headers, body = get(sink, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    page = body.decode()
    assert "stream.mjpg" in page and "api/latest" in page and "snapshot.jpg" in page
    assert 'name="viewport"' in page
    assert headers["Referrer-Policy"] == "no-referrer"


def test_stream_parts_are_jpegs_of_the_frames(make_sink):
    sink, stats = make_sink(stream_fps=50)
    with Feeder(sink, stats):
        client = StreamClient(sink.port)
        assert client.resp.status == 200
        assert client.resp.headers["Content-Type"].startswith("multipart/x-mixed-replace; boundary=")
        bodies = []
        for _ in range(4):
            headers, data = client.part()
            assert headers["content-type"] == "image/jpeg"
            assert decode(data).shape == (H, W, 3)
            bodies.append(data)
        client.close()
    assert len(set(bodies)) > 1  # the picture changes (frame number drawn in it)


def test_healthz_flips_to_503_when_frames_stop(make_sink):
    sink, stats = make_sink(stall_timeout_s=0.3)
    with Feeder(sink, stats):
        assert wait_until(lambda: get(sink, "/healthz")[0] == 200)
        assert get(sink, "/healthz")[2] == b"ok\n"
    assert wait_until(lambda: get(sink, "/healthz")[0] == 503)
    body = get(sink, "/healthz")[2].decode()
    assert body.startswith("stalled: no frame for ") and body.endswith(" s\n")


# ------------------------------------------------------------------ metrics


def _metrics_setup(make_sink):
    sink, stats = make_sink()
    for i in range(5):
        feed(sink, stats, i)
    stats.result_ready(150.0, time.monotonic(), 'a "quoted"\\label\nwith newline', 0.42)
    stats.reconnects = 2
    stats.extra["mqtt"] = {"connected": True, "queued": 3, "dropped": 0, "published": 10,
                           "reconnects": 1, "broker": "localhost:1883", "last-error": None}
    return sink, stats


def test_metrics_text_has_every_metric(make_sink):
    sink, _ = _metrics_setup(make_sink)
    status, headers, body = get(sink, "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    lines = text.splitlines()
    for name, kind in [("edgecam_frames_captured_total", "counter"), ("edgecam_capture_fps", "gauge"),
                       ("edgecam_inference_seconds", "histogram"), ("edgecam_source_up", "gauge"),
                       ("edgecam_http_stream_clients", "gauge"), ("edgecam_mqtt_queued", "gauge")]:
        assert f"# TYPE {name} {kind}" in lines
        assert any(l.startswith(f"# HELP {name} ") for l in lines)
    assert "edgecam_frames_captured_total 5" in lines
    assert "edgecam_reconnects_total 2" in lines
    assert "edgecam_mqtt_connected 1" in lines
    assert 'edgecam_inference_seconds_bucket{le="+Inf"} 6' in lines
    assert "# TYPE edgecam_mqtt_published_total counter" in lines and "edgecam_mqtt_published_total 10" in lines
    assert "_ms" not in text  # base units only (seconds)
    assert "edgecam_mqtt_broker" not in text  # non-numeric values are skipped
    assert r'edgecam_label_info{label="a \"quoted\"\\label\nwith newline"} 1' in lines


def test_metrics_say_how_old_the_newest_result_is(make_sink):
    sink, stats = make_sink()
    assert "edgecam_result_age_seconds" not in get(sink, "/metrics")[2].decode()  # no result yet: no series
    stats.result_ready(9.0, time.monotonic(), "tabby", 0.8, capture_t=time.monotonic() - 0.25)
    lines = get(sink, "/metrics")[2].decode().splitlines()
    assert "# TYPE edgecam_result_age_seconds gauge" in lines
    age = float(next(line for line in lines if line.startswith("edgecam_result_age_seconds ")).split()[1])
    assert 0.25 <= age < 5


def test_metrics_parse_with_prometheus_client(make_sink):
    parser = pytest.importorskip("prometheus_client.parser", reason="prometheus-client not installed (test-only)")
    sink, _ = _metrics_setup(make_sink)
    families = {f.name: f for f in parser.text_string_to_metric_families(get(sink, "/metrics")[2].decode())}
    # The parser strips _total from counter family names.
    assert families["edgecam_frames_captured"].type == "counter"
    assert families["edgecam_frames_captured"].samples[0].value == 5
    assert families["edgecam_frames_dropped"].type == "counter"
    assert families["edgecam_frames_inferred"].samples[0].value == 6
    assert families["edgecam_frames_output"].samples[0].value == 5
    assert families["edgecam_reconnects"].samples[0].value == 2
    for g in ("edgecam_capture_fps", "edgecam_inference_fps", "edgecam_output_fps", "edgecam_source_up",
              "edgecam_label_score", "edgecam_http_stream_clients"):
        assert families[g].type == "gauge", g
    assert families["edgecam_source_up"].samples[0].value == 1
    assert families["edgecam_label_score"].samples[0].value == pytest.approx(0.42)
    info = families["edgecam_label_info"].samples
    assert [s.labels for s in info] == [{"label": 'a "quoted"\\label\nwith newline'}]

    hist = families["edgecam_inference_seconds"]
    assert hist.type == "histogram"
    buckets = [(s.labels["le"], s.value) for s in hist.samples if s.name.endswith("_bucket")]
    assert buckets[-1] == ("+Inf", 6)
    values = [v for _, v in buckets]
    assert values == sorted(values)  # cumulative
    les = dict(buckets)
    assert les["0.005"] == 5 and les["0.1"] == 5 and les["0.2"] == 6  # five 3 ms, one 150 ms
    sums = {s.name: s.value for s in hist.samples}
    assert sums["edgecam_inference_seconds_count"] == 6
    assert sums["edgecam_inference_seconds_sum"] == pytest.approx((5 * 3.0 + 150.0) / 1000)

    mqtt = {n: (f.type, f.samples[0].value) for n, f in families.items() if n.startswith("edgecam_mqtt_")}
    # (the parser strips _total from counter family names)
    assert mqtt == {"edgecam_mqtt_connected": ("gauge", 1), "edgecam_mqtt_queued": ("gauge", 3),
                    "edgecam_mqtt_dropped": ("counter", 0), "edgecam_mqtt_published": ("counter", 10),
                    "edgecam_mqtt_reconnects": ("counter", 1)}


# ------------------------------------------------------------------- token


@pytest.fixture
def token_file(tmp_path):
    p = tmp_path / "token"
    p.write_text("s3cret-token\n")
    return p


def test_token_is_required_except_for_healthz(make_sink, token_file, caplog):
    caplog.set_level(logging.DEBUG, logger="edgecam.outputs.http")
    sink, stats = make_sink(token_file=str(token_file))
    feed(sink, stats, 0)
    for path in ("/", "/snapshot.jpg", "/api/latest", "/metrics", "/stream.mjpg"):
        status, headers, body = get(sink, path)
        assert status == 401, path
        assert headers["WWW-Authenticate"] == "Bearer"
        assert get(sink, path, {"Authorization": "Bearer wrong"})[0] == 401
        assert get(sink, path + "?token=wrong")[0] == 401
    good = {"Authorization": "Bearer s3cret-token"}
    for path in ("/", "/snapshot.jpg", "/api/latest", "/metrics"):
        assert get(sink, path, good)[0] == 200, path
    # Browsers cannot set headers on <img src>: the page's URLs accept ?token=.
    for path in ("/", "/snapshot.jpg", "/api/latest"):
        assert get(sink, path + "?token=s3cret-token")[0] == 200, path
    assert get(sink, "/metrics?token=s3cret-token")[0] == 401  # Prometheus can send the header
    client = StreamClient(sink.port, "/stream.mjpg?token=s3cret-token")
    assert client.resp.status == 200
    assert decode(client.part()[1]).shape == (H, W, 3)
    client.close()
    status, _, body = get(sink, "/healthz")  # no token needed
    assert (status, body) == (200, b"ok\n")
    # The access log never shows the token.
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "GET /snapshot.jpg?token=***" in logged
    assert "s3cret-token" not in logged


@pytest.mark.parametrize("content", [None, "", "  \n"])
def test_bad_token_file_is_one_config_error(tmp_path, content):
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    sink = HttpSink(HttpConfig(port=0, token_file=str(path)), Stats())
    with pytest.raises(ConfigError) as e:
        sink.start()
    msg = str(e.value)
    assert "\n" not in msg and "http.token_file" in msg and str(path) in msg
    sink.close()


def test_busy_port_is_one_network_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        sink = HttpSink(HttpConfig(port=port), Stats())
        with pytest.raises(NetworkError) as e:
            sink.start()
    assert str(e.value) == f"http: cannot listen on 127.0.0.1:{port}: address already in use (set http.port)"
    assert e.value.exit_code == 5
    sink.close()


def test_access_log_goes_to_debug_not_stderr(make_sink, caplog, capfd):
    caplog.set_level(logging.DEBUG, logger="edgecam.outputs.http")
    sink, _ = make_sink()
    get(sink, "/healthz")
    get(sink, "/nope")
    assert wait_until(lambda: any("GET /nope" in r.getMessage() for r in caplog.records))
    assert all(r.levelno == logging.DEBUG for r in caplog.records if "GET /" in r.getMessage())
    assert capfd.readouterr().err == ""


# -------------------------------------------------------- stream clients


def test_max_clients_cap_gives_503_and_frees_slots(make_sink):
    sink, stats = make_sink(max_clients=2)
    feed(sink, stats, 0)
    a, b = StreamClient(sink.port), StreamClient(sink.port)
    assert a.resp.status == b.resp.status == 200
    a.part(), b.part()
    status, _, body = get(sink, "/stream.mjpg")
    assert status == 503
    assert b"too many stream clients" in body and b"max_clients = 2" in body
    assert "edgecam_http_stream_clients 2" in get(sink, "/metrics")[2].decode().splitlines()
    a.close()
    # The server notices the hang-up at its next write.
    with Feeder(sink, stats):
        assert wait_until(lambda: sink.stream_clients == 1)
        c = StreamClient(sink.port)
        assert c.resp.status == 200
        c.part()
        c.close()
    b.close()


def test_no_encoding_while_nobody_watches(make_sink):
    sink, stats = make_sink()
    for i in range(50):
        feed(sink, stats, i)
    assert sink.encode_count == 0
    get(sink, "/snapshot.jpg")
    get(sink, "/snapshot.jpg")
    assert sink.encode_count == 1  # same frame: encoded once


def test_twenty_clients_share_one_encoding_per_frame(make_sink):
    sink, stats = make_sink(max_clients=25, stream_fps=120)
    parts = [0] * 20
    errors = []
    stop = threading.Event()

    def watch(n):
        try:
            client = StreamClient(sink.port)
            while not stop.is_set():
                _, data = client.part()
                assert data[:2] == b"\xff\xd8"
                parts[n] += 1
            client.close()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    feed(sink, stats, 0)
    with Feeder(sink, stats, period_s=0.01) as feeder:
        threads = [threading.Thread(target=watch, args=(n,), name=f"test-watch-{n}") for n in range(20)]
        for t in threads:
            t.start()
        assert wait_until(lambda: min(parts) >= 5)
        time.sleep(1.0)  # let them all watch for a while
        stop.set()
        for t in threads:
            t.join(10)
    fed = feeder.fed + 1
    assert errors == []
    assert sum(parts) > fed  # clients together got more pictures than there were frames...
    assert 0 < sink.encode_count <= fed  # ...yet every frame was encoded at most once


def test_a_client_that_never_reads_does_not_stop_the_feeder(make_sink):
    sink, stats = make_sink(stream_fps=120)
    sink.send_timeout_s = 0.5
    feed(sink, stats, 0, noise=True)
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)  # tiny, set before connect
    stuck.connect(("127.0.0.1", sink.port))
    stuck.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert wait_until(lambda: sink.stream_clients == 1)

    iterations, returned = 300, []

    def feeder():
        for i in range(iterations):
            feed(sink, stats, i + 1, noise=True)
            returned.append(i)
            time.sleep(0.01)

    t = threading.Thread(target=feeder, name="test-feeder")
    t.start()
    t.join(120)
    assert not t.is_alive() and len(returned) == iterations  # on_frame never blocked
    # The server gave up on the client although the client never hung up.
    assert wait_until(lambda: sink.stream_clients == 0)
    assert sink.encode_count <= iterations + 1
    stuck.close()


def test_close_wakes_every_client_and_is_idempotent(make_sink):
    sink, stats = make_sink()
    feed(sink, stats, 0)
    clients = [StreamClient(sink.port) for _ in range(3)]
    for c in clients:
        c.part()
    assert sink.stream_clients == 3
    sink.close()
    assert sink.stream_clients == 0  # close() waited for the client threads
    for c in clients:
        c.resp.fp.read()  # the server ended the stream: EOF, not a hang (timeout=10)
        c.close()
    sink.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", sink.port), timeout=2).close()
    assert not any(t.name == "http-server" and t.is_alive() for t in threading.enumerate())


# ----------------------------------------------------------- hostile clients (issue 9 #10)


def test_a_client_that_sends_its_headers_slowly_is_cut_off_at_the_deadline(make_sink):
    # Before: one byte every few seconds held a server thread for ever (the 10 s socket
    # timeout is per read, and every read got its byte).
    sink, _ = make_sink()
    sink.header_timeout_s = 1.0
    with socket.create_connection(("127.0.0.1", sink.port), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\n")
        got = b""
        started = time.monotonic()
        s.settimeout(0.3)
        while time.monotonic() - started < 15:
            try:
                s.sendall(b"X")  # a header that never ends
            except OSError:
                break  # the server closed the connection
            try:
                chunk = s.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            if not chunk:
                break
            got += chunk
        held = time.monotonic() - started
    assert got.startswith(b"HTTP/1.0 408 "), got[:100]
    assert held < 15, "the server kept the slow client"
    assert get(sink, "/healthz")[0] == 503  # and the server still answers others


def test_a_client_that_connects_and_says_nothing_is_cut_off_at_the_deadline(make_sink):
    sink, _ = make_sink()
    sink.header_timeout_s = 1.0
    with socket.create_connection(("127.0.0.1", sink.port), timeout=15) as s:
        started = time.monotonic()
        data = s.recv(4096)
        assert data.startswith(b"HTTP/1.0 408 ") and time.monotonic() - started < 10


def test_many_connects_at_once_wait_in_a_deep_listen_queue(make_sink):
    # Before: a listen backlog of 5, so the sixth and later connects of a burst waited for
    # SYN retransmits (1 s, 3 s, ...) whenever the accept loop was a moment behind.
    sink, _ = make_sink()
    sink._server.shutdown()  # the accept loop stops; the socket keeps listening, as when it is busy
    socks = []
    try:
        for _ in range(40):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", sink.port))
            socks.append(s)
        deadline = time.monotonic() + 3.0
        pending = set(socks)
        while pending and time.monotonic() < deadline:
            import select

            _, ready, _ = select.select([], list(pending), [], 0.1)
            for s in ready:
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    pending.discard(s)
        assert not pending, f"{len(pending)} of 40 connects were not accepted into the queue"
    finally:
        for s in socks:
            s.close()


@pytest.mark.parametrize("path", ["/", "/snapshot.jpg", "/api/latest", "/healthz", "/metrics", "/nope"])
def test_head_answers_like_get_without_a_body(make_sink, path):
    # Before: 501 Unsupported method ('HEAD').
    sink, stats = make_sink()
    feed(sink, stats, 0)
    g_status, g_headers, g_body = get(sink, path)
    conn = http.client.HTTPConnection("127.0.0.1", sink.port, timeout=10)
    conn.request("HEAD", path)
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    assert resp.status == g_status and body == b""
    assert resp.headers["Content-Type"] == g_headers["Content-Type"]
    if path not in ("/api/latest", "/metrics"):  # those change between two requests
        assert resp.headers["Content-Length"] == g_headers["Content-Length"] == str(len(g_body))


def test_head_of_the_stream_gives_its_headers_and_takes_no_slot(make_sink):
    sink, stats = make_sink(max_clients=1)
    feed(sink, stats, 0)
    for _ in range(3):
        conn = http.client.HTTPConnection("127.0.0.1", sink.port, timeout=10)
        conn.request("HEAD", "/stream.mjpg")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == b""
        assert resp.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        conn.close()
    assert wait_until(lambda: sink.stream_clients == 0)
    client = StreamClient(sink.port)  # the one slot is still free
    try:
        assert client.resp.status == 200
    finally:
        client.close()


def test_head_needs_the_token_too(make_sink, token_file):
    sink, _ = make_sink(token_file=str(token_file))
    conn = http.client.HTTPConnection("127.0.0.1", sink.port, timeout=10)
    conn.request("HEAD", "/api/latest")
    resp = conn.getresponse()
    assert resp.status == 401 and resp.read() == b""
    conn.close()


# ------------------------------------------------------------------ regions


def region_sink(tmp_path, token: str | None = None):
    from edgecam.outputs.base import RegionInfo

    cfg = {"port": 0}
    if token:
        (tmp_path / "token").write_text(token)
        cfg["token_file"] = str(tmp_path / "token")
    stats = Stats()
    infos = (RegionInfo("garage", (0.25, 0.25, 0.75, 0.75), ("closed", "open"), "open"),
             RegionInfo("bins", (0.0, 0.0, 0.25, 0.5), ("curb", "gone")))
    sink = HttpSink(HttpConfig(**cfg), stats, regions=infos, examples_dir=str(tmp_path / "examples"))
    sink.start()
    return sink, stats


def region_result(i: int, garage="open", bins="curb") -> Classification:
    from edgecam.result import RegionState

    t = time.monotonic()
    states = {"garage": RegionState("garage", (0.25, 0.25, 0.75, 0.75), garage, 0.93, 1, i, 0.0, True),
              "bins": RegionState("bins", (0.0, 0.0, 0.25, 0.5), bins, 0.71, 0, i - 3, 0.0, False)}
    return Classification(np.zeros(0, np.float32), (), model="garage", frame_index=i, capture_time=t,
                          wall_time=time.time(), result_time=t, regions=states)


def feed_regions(sink, stats, i=5):
    t = time.monotonic()
    stats.frame_captured(t)
    r = region_result(i)
    stats.regions_ready(3.0, t, r.regions, 1)
    sink.on_result(r)
    img = picture(i)  # a red rectangle over (80..240, 60..180) of 320x240: the garage box's middle
    sink.on_frame(Frame(img, i, t, time.time()), img.copy(), r)


def post(sink, path, body, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", sink.port, timeout=10)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn.request("POST", path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
    resp = conn.getresponse()
    out = resp.read()
    conn.close()
    return resp.status, json.loads(out) if resp.headers["Content-Type"].startswith("application/json") else out


def test_api_latest_and_metrics_have_each_region(tmp_path):
    sink, stats = region_sink(tmp_path)
    try:
        feed_regions(sink, stats)
        status, _, body = get(sink, "/api/latest")
        data = json.loads(body)
        assert status == 200 and data["top_k"] == []
        assert data["regions"] == {"garage": {"label": "open", "score": 0.93, "frame": 5, "classified": True},
                                   "bins": {"label": "curb", "score": 0.71, "frame": 2, "classified": False}}
        text = get(sink, "/metrics")[2].decode()
        assert 'edgecam_region_state{region="garage",label="open"} 1' in text
        assert 'edgecam_region_score{region="bins"} 0.71' in text
        assert 'edgecam_region_classified_total{region="garage"} 1' in text
        assert 'edgecam_region_classified_total{region="bins"} 0' in text
        assert "edgecam_label_info" not in text  # no whole-picture label with regions
    finally:
        sink.close()


def test_region_crop_and_saving_an_example(tmp_path):
    sink, stats = region_sink(tmp_path)
    try:
        assert get(sink, "/region/garage.jpg")[0] == 503  # no picture yet
        assert post(sink, "/api/examples", {"region": "garage", "label": "open"})[0] == 503
        feed_regions(sink, stats)
        status, headers, body = get(sink, "/region/garage.jpg")
        crop = decode(body)
        assert status == 200 and crop.shape == (120, 160, 3)  # half of 320x240
        assert np.abs(crop[60, 80].astype(int) - RECT_BGR).max() < 40  # the red rectangle fills its middle
        assert get(sink, "/region/nope.jpg")[0] == 404
        assert json.loads(get(sink, "/api/regions")[2]) == {"regions": [
            {"name": "garage", "labels": ["closed", "open"], "states": 2, "examples": {"closed": 0, "open": 0}},
            {"name": "bins", "labels": ["curb", "gone"], "states": 2, "examples": {"curb": 0, "gone": 0}}]}
        status, data = post(sink, "/api/examples", {"region": "garage", "label": "open"})
        assert status == 201 and data["examples"] == 1
        saved = cv2.imread(data["saved"])
        assert data["saved"].startswith(str(tmp_path / "examples" / "garage" / "open")) and saved.shape == (120, 160, 3)
        assert np.array_equal(saved, picture(5)[60:180, 80:240])  # lossless: the very pixels of the box
        assert post(sink, "/api/examples", {"region": "garage", "label": "open"})[1]["examples"] == 2
    finally:
        sink.close()


@pytest.mark.parametrize("body,headers,status,error", [
    ({"region": "garage", "label": "ajar"}, {}, 404, "has no state 'ajar'"),
    ({"region": "../etc", "label": "open"}, {}, 404, "no region '../etc'"),
    (b"region=garage&label=open", {"Content-Type": "application/x-www-form-urlencoded"}, 400, "JSON body"),
    (b"[1, 2]", {}, 400, "not a JSON object"),
    (b"{nope", {}, 400, "not a JSON object"),
])
def test_bad_example_requests_save_nothing(tmp_path, body, headers, status, error):
    sink, stats = region_sink(tmp_path)
    try:
        feed_regions(sink, stats)
        got, data = post(sink, "/api/examples", body, headers)
        assert got == status and error in data["error"]
        assert not (tmp_path / "examples").exists() or not any((tmp_path / "examples").rglob("*.png"))
    finally:
        sink.close()


def test_examples_need_the_token_in_a_header(tmp_path):
    sink, stats = region_sink(tmp_path, token="s3cret")
    try:
        feed_regions(sink, stats)
        assert post(sink, "/api/examples", {"region": "garage", "label": "open"})[0] == 401
        assert post(sink, "/api/examples?token=s3cret", {"region": "garage", "label": "open"})[0] == 401
        assert get(sink, "/region/garage.jpg")[0] == 401
        assert get(sink, "/region/garage.jpg?token=s3cret")[0] == 200  # an <img> can only send it so
        status, data = post(sink, "/api/examples", {"region": "garage", "label": "closed"},
                            {"Authorization": "Bearer s3cret"})
        assert status == 201 and "/garage/closed/" in data["saved"]
    finally:
        sink.close()


def test_without_regions_there_is_nothing_to_teach(make_sink):
    sink, stats = make_sink()
    feed(sink, stats, 1)
    assert post(sink, "/api/examples", {"region": "garage", "label": "open"})[0] == 404
    assert json.loads(get(sink, "/api/regions")[2]) == {"regions": []}
    assert "regions" not in json.loads(get(sink, "/api/latest")[2])
