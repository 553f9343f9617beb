"""The Host check (DNS rebinding), the Origin check on state-changing requests, and the open-to-the-network warning."""

from __future__ import annotations

import logging
import socket

import pytest

from edgecam.config.schema import HttpConfig, from_dict
from edgecam.errors import ConfigError
from edgecam.outputs.base import RegionInfo
from edgecam.outputs.http import HttpSink
from edgecam.stats import Stats
from tests.events.hostile import raw, started, status


@pytest.fixture
def serve(tmp_path):
    sinks = []

    def make(**cfg):
        regions = (RegionInfo("door", (0.25, 0.25, 0.75, 0.75), ("closed", "open")),)
        sinks.append(started(regions=regions, examples_dir=str(tmp_path / "ex"), **cfg))
        return sinks[-1]

    yield make
    for s in sinks:
        s.close()


def ask(sink, host: str | None, path: str = "/api/latest", method: str = "GET", extra: str = "",
        body: bytes = b"") -> tuple[int | None, bytes]:
    head = f"{method} {path} HTTP/1.1\r\n" + (f"Host: {host}\r\n" if host is not None else "") + extra
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    answer = raw(sink.port, (head + "\r\n").encode() + body)
    return status(answer), answer.partition(b"\r\n\r\n")[2]


def test_only_requests_naming_this_server_are_answered(serve):
    sink = serve()
    me = socket.gethostname()
    for host in ("127.0.0.1", f"127.0.0.1:{sink.port}", "localhost", f"localhost:{sink.port}", "[::1]:8080",
                 "192.168.1.20:8080", me, f"{me}.local:{sink.port}", f"{me.upper()}.", "cam.localhost", None):
        assert ask(sink, host)[0] == 200, host
    for host in ("evil.example", f"evil.example:{sink.port}", "127.0.0.1.evil.example", "[::1", "a:b:c", "",
                 "localhost:http", f"{me}.evil.example"):
        code, body = ask(sink, host)
        assert code == 403, host
        assert b"http.allowed_hosts" in body and body.count(b"\n") == 1
    assert ask(sink, "evil.example", "/healthz")[0] == 403  # every path: one rule


def test_allowed_hosts_adds_names_suffixes_or_any(serve):
    sink = serve(allowed_hosts=["cam.example.org", ".home.arpa"])
    assert ask(sink, "cam.example.org:8080")[0] == 200 and ask(sink, "CAM.example.org")[0] == 200
    assert ask(sink, "garage.home.arpa")[0] == 200 and ask(sink, "other.example.org")[0] == 403
    assert ask(serve(allowed_hosts=["*"]), "anything.example")[0] == 200


def test_a_post_from_another_site_is_refused_and_from_this_one_answered(serve):
    sink = serve()
    body = b'{"region": "door", "label": "open"}'
    host = f"127.0.0.1:{sink.port}"
    for origin in ("http://evil.example", "null", f"http://evil.example:{sink.port}", "https://127.0.0.1",
                   "not a url", "http://[::1"):
        code, answer = ask(sink, host, "/api/examples", "POST", f"Origin: {origin}\r\n", body)
        assert code == 403 and b"another site" in answer, origin
    assert ask(sink, host, "/api/examples", "POST", f"Origin: http://{host}\r\n", body)[0] == 201
    assert ask(sink, host, "/api/examples", "POST", "", body)[0] == 201  # not a browser: no Origin
    # a GET from another page is answered (a page may show the picture; it cannot read it across origins)
    assert ask(sink, host, "/api/latest", "GET", "Origin: http://evil.example\r\n")[0] == 200


@pytest.mark.parametrize("host, token, warned", [("0.0.0.0", False, True), ("0.0.0.0", True, False),
                                                  ("::", False, True), ("127.0.0.1", False, False),
                                                  ("localhost", False, False)])
def test_listening_on_the_network_without_a_token_is_one_warning(tmp_path, caplog, host, token, warned):
    cfg = {"host": host, "port": 0}
    if token:
        (tmp_path / "token").write_text("s3cret-token")
        cfg["token_file"] = str(tmp_path / "token")
    sink = HttpSink(HttpConfig(**cfg), Stats())
    try:
        with caplog.at_level(logging.INFO, logger="edgecam"):
            sink.start()
    except Exception as e:  # no IPv6 here
        pytest.skip(f"cannot listen on {host}: {e}")
    finally:
        sink.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == int(warned), warnings
    if warned:
        assert "without a token" in warnings[0] and "http.token_file" in warnings[0] and "\n" not in warnings[0]


def test_allowed_hosts_must_be_names(tmp_path):
    names = ["cam.example.org", ".lan", "*"]
    assert from_dict({"http": {"allowed_hosts": names}}).http.allowed_hosts == names
    for bad in (["cam example"], ["http://cam/"], [1], [""], "cam.example.org"):
        with pytest.raises(ConfigError, match="allowed_hosts"):
            from_dict({"http": {"allowed_hosts": bad}})
