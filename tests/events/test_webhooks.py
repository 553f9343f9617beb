"""Webhooks against hostile peers and URLs: a server that answers one byte at a time, a redirect, URLs that are
not URLs (in the config, and at send time); one line each, counted, never a traceback."""

from __future__ import annotations

import logging
import socket
import threading

import pytest

from edgecam.config import schema as config
from edgecam.errors import ConfigError
from edgecam.config.events import EventRuleConfig, EventsConfig
from edgecam.events.sink import EventsSink
from edgecam.events.webhook import Webhooks
from tests.conftest import run_cli
from tests.doubles import wait_until
from tests.events.test_actions import Receiver, results


class Dripper:
    """A loopback HTTP server that reads the request, then answers one byte every 0.5 s, forever (its header
    never ends); ``log`` gets ("closed", n) when the client hung up after n bytes."""

    def __init__(self, log: list, status: bytes = b"HTTP/1.1 200 OK\r\nX-Drip: "):
        self.log, self.status = log, status
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.stop = threading.Event()
        threading.Thread(target=self._serve, name="test-dripper", daemon=True).start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._drip, args=(conn,), name="test-drip", daemon=True).start()

    def _drip(self, conn):
        with conn:
            conn.recv(65536)
            self.log.append(("request", self.url))
            sent = 0
            data = self.status + b"a" * 10**6
            while not self.stop.is_set():
                try:
                    conn.sendall(data[sent:sent + 1])
                except OSError:
                    break
                sent += 1
                if self.stop.wait(0.5):
                    return
            self.log.append(("closed", sent))

    def close(self):
        self.stop.set()
        self.sock.close()


def test_a_server_dripping_its_answer_costs_the_timeout_and_never_holds_up_another_url(tmp_path, caplog):
    log: list = []
    slow, ok = Dripper(log), Receiver()
    rules = [EventRuleConfig(name="slow", label="ibex", cooldown_s=0, for_s=0, snapshot=False, webhook=slow.url),
             EventRuleConfig(name="ok", label="tabby", cooldown_s=0, for_s=0, snapshot=False, webhook=ok.url)]
    sink = EventsSink(EventsConfig(rules=rules, webhook_timeout_s=5, webhook_retries=0), tmp_path / "ev")
    sink.start()
    try:
        for r in results(["ibex", "background"]):
            sink.on_result(r)
        wait_until(lambda: ("request", slow.url) in log, "the slow server got the start's POST")
        for r in results(["tabby", "background"]):
            sink.on_result(r)
        # the other URL's POSTs go out while the slow one is still being dripped
        wait_until(lambda: len(ok.got) == 2, "the other rule's two POSTs")
        assert not [e for e in log if e[0] == "closed"]
        # then the slow one's deadline closes the connection mid-header: one failure per POST, counted
        wait_until(lambda: sink.webhook_failures["slow"] == 2, "both POSTs to the dripping server given up on",
                   timeout=60)
        assert [e[0] for e in log].count("closed") >= 1
    finally:
        sink.close()
        slow.close()
        ok.close()
    assert sink.webhook_failures == {"slow": 2, "ok": 0}
    lines = [r for r in caplog.records if slow.url in r.getMessage()]
    assert len(lines) == 1 and "no whole answer within 5 s" in lines[0].getMessage(), caplog.text
    assert "Traceback" not in caplog.text and not any(r.exc_info for r in caplog.records)


def serve(handler) -> tuple:
    import http.server

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, name="test-http", daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/hook"


def test_a_redirect_is_a_failure_naming_where_it_pointed_and_is_not_followed(caplog):
    import http.server

    reached: list = []

    class Target(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            reached.append(self.command)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_GET

        def log_message(self, *a):
            pass

    target, target_url = serve(Target)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(302)
            self.send_header("Location", target_url)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    server, url = serve(Handler)
    failed: list = []
    hooks = Webhooks(2.0, 0, failed.append)
    try:
        hooks.post(url, "r", {"x": 1})
        wait_until(lambda: failed == ["r"], "the redirected POST counted as failed")
    finally:
        hooks.close()
        for s in (server, target):
            s.shutdown()
            s.server_close()
    assert reached == [] and hooks.sent == 0  # (a follower reaches it before the POST is done with)
    line = [r.getMessage() for r in caplog.records if url in r.getMessage()]
    assert len(line) == 1 and f"HTTP 302, a redirect to '{target_url}', not followed" in line[0]


NOT_URLS = ["http://127.0.0.1:abc/x", "http://[::1/x", "http://127.0.0.1/a\x01b", "http://127.0.0.1:99999/x",
            "ftp://127.0.0.1/x", "file:///etc/passwd", "http://:80/x", "http://u:p@127.0.0.1/x",
            "http://127.0.0.1:0/x", "http://127.0.0.1/caf\u00e9", "http://127.0.0.1/a b"]


@pytest.mark.parametrize("url", NOT_URLS)
def test_a_url_that_is_not_one_is_a_config_error_naming_the_key(url):
    data = {"events": {"rules": [{"name": "a", "label": "x", "webhook": url}]}}
    with pytest.raises(ConfigError) as err:
        config.from_dict(data, "cfg.yaml")
    assert len(err.value.problems) == 1, err.value.problems
    line = err.value.problems[0]
    assert line.startswith("events.rules[0].webhook: got ") and "expected an http:// or https:// URL" in line
    assert repr(url)[1:-1][:12] in line and "\n" not in line


@pytest.mark.parametrize("url", ["http://nas.local:8123/api/webhook/bins", "https://[::1]:8443/x?token=a%20b",
                                 "HTTP://Example.COM", "http://b\u00fccher.example/x", "http://10.0.0.2:65535/"])
def test_real_urls_pass(url):
    cfg = config.from_dict({"events": {"rules": [{"name": "a", "label": "x", "webhook": url}]}}, "cfg.yaml")
    assert cfg.events.rules[0].webhook == url


def test_check_config_refuses_a_url_that_is_not_one(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text('events:\n  rules:\n    - {name: a, label: x, webhook: "http://127.0.0.1:abc/x"}\n')
    proc = run_cli(["check-config", str(cfg)])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "events.rules[0].webhook: got 'http://127.0.0.1:abc/x', expected an http:// or https:// URL" \
        in proc.stderr


@pytest.mark.parametrize("url", NOT_URLS)
def test_at_send_time_a_bad_url_is_one_line_and_a_counted_failure(url, caplog):
    caplog.set_level(logging.DEBUG)
    failed: list = []
    hooks = Webhooks(1.0, 1, failed.append, sleep=lambda s: False)
    try:
        hooks.post(url, "r", {"x": 1})
        hooks.post(url, "r", {"x": 2})
        wait_until(lambda: failed == ["r", "r"], "both POSTs counted as failed")
    finally:
        hooks.close()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0].getMessage(), [r.getMessage() for r in errors]
    assert not any(r.exc_info for r in caplog.records) and "Traceback" not in caplog.text


def test_a_stop_cuts_a_dripping_server_short_and_counts_what_was_not_sent(caplog):
    log: list = []
    slow = Dripper(log)
    failed: list = []
    hooks = Webhooks(60.0, 0, failed.append)
    try:
        for i in range(5):
            hooks.post(slow.url, "r", {"i": i})
        wait_until(lambda: ("request", slow.url) in log, "the first POST being dripped")
        hooks.close(timeout=0.5)  # the first POST is cut at the stop's deadline, not its own 60 s
        assert not any(w.thread.is_alive() for w in hooks._workers.values())
    finally:
        slow.close()
    assert failed == ["r"] * 5  # nothing lost silently
    assert "4 POST(s) not sent at the stop" in caplog.text
