"""The HTTP output under a few thousand random and malformed requests, sent on raw sockets.

A real server (the HTTP output with events, regions and a live picture) gets
requests built from a seeded random generator: known paths with mangled ids,
queries and percent-escapes, bad request lines and methods, huge and broken
headers, bad Range and Content-Length, random bodies and plain random bytes.
Every request must get an HTTP status line, nothing may be logged with a
traceback, no request may end in a 500 (which is what an unexpected exception
becomes), and once the clients are gone the process holds the file handles it
held before. ``EDGECAM_FUZZ_SEED`` / ``EDGECAM_FUZZ_N`` change the run; a
failure names the seed and the request so that it reproduces.
"""

from __future__ import annotations

import collections
import logging
import os
import random
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from edgecam.outputs.base import RegionInfo
from tests.doubles import wait_until
from tests.events.hostile import handles_left, make_history, open_fds, raw, started, status

SEED = int(os.environ.get("EDGECAM_FUZZ_SEED", "24"))
N = int(os.environ.get("EDGECAM_FUZZ_N", "3000"))

PATHS = ["/", "/index.html", "/stream.mjpg", "/snapshot.jpg", "/api/latest", "/healthz", "/metrics", "/api/regions",
         "/region/door.jpg", "/region/nope.jpg", "/events", "/events/", "/events/1", "/api/events", "/api/events/1",
         "/events/1/clip", "/events/1/clip.mjpg", "/events/1/snapshot.jpg", "/events/2/thumb.jpg", "/api/examples"]
NUMBERS = ["1", "0", "-1", "99999999999999999999", str(2**63), str(2**63 - 1), "\xb2", "\u0663", "1e3", "0x10",
           " 1", "1 ", "", "+1", "1.5", "NaN", "9" * 300, "%31", "01", "１"]
METHODS = ["GET", "GET", "GET", "GET", "GET", "HEAD", "POST", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE",
           "CONNECT", "get", "G\x00T", "GET GET", "\xff\xfe", "X" * 300, ""]
VERSIONS = ["HTTP/1.0", "HTTP/1.1", "HTTP/1.1", "HTTP/0.9", "HTTP/2.0", "HTTP/1.1.1", "HTTP/", "http/1.1",
            "HTTP/9999999999999999999.0", "FOO", ""]
HEADER_NAMES = ["Host", "Origin", "Range", "Content-Length", "Content-Type", "Authorization", "Connection",
                "Transfer-Encoding", "Expect", "Cookie", "X-\xff", "Bad Name", ""]


def junk(rng: random.Random, n: int | None = None) -> str:
    n = rng.randrange(0, 40) if n is None else n
    alphabet = "abc019%/?&=#+;:.\\~\x00\x01\x7f\x80\xb2\xff\"'<>[]{}" + "\u0663\u00e9"
    return "".join(rng.choice(alphabet) for _ in range(n))


def mangle_path(rng: random.Random) -> str:
    path = rng.choice(PATHS)
    roll = rng.random()
    if roll < 0.3:
        path = path.replace("1", rng.choice(NUMBERS), 1) if "1" in path else path + "/" + rng.choice(NUMBERS)
    elif roll < 0.45:
        path += rng.choice(["/..", "/../../events.db", "%2e%2e/%2e%2e/events.db", "/%00", "//", "/%", "%zz", "%c0%af"])
    elif roll < 0.55:
        path = rng.choice(["*", "", "/a b", "/api/events\t?x", "http://evil/api/events", "//[::1/x", "//host:abc/",
                           "\\..\\", "/" * 500, "/%" * 200, junk(rng)])
    elif roll < 0.6:
        path += junk(rng)
    if rng.random() < 0.5:
        keys = ["limit", "offset", "day", "rule", "label", "token", "t", junk(rng, 3)]
        pairs = [f"{rng.choice(keys)}={rng.choice(NUMBERS + [junk(rng), '%', '%zz', '%ff%fe', 'a&b #c+d'])}"
                 for _ in range(rng.choice((1, 2, 3, 50, 500)))]
        path += "?" + "&".join(pairs)
    if rng.random() < 0.85:  # mostly one request target (a space splits the request line: a 400)
        path = path.replace(" ", "%20").replace("\t", "%09")
    return path.replace("\r", "").replace("\n", "")


def headers(rng: random.Random, method: str) -> list[str]:
    out = []
    roll = rng.random()
    if roll < 0.7:
        out.append("Host: " + rng.choice(["127.0.0.1", "127.0.0.1:8080", "localhost:8080", "localhost", "[::1]:1"]))
    elif roll < 0.9:
        out.append("Host: " + rng.choice(["evil.example", "", "a:b:c", "[::1", "127.0.0.1:99999999999999999999",
                                          junk(rng)]))
    for _ in range(rng.choice((0, 1, 2, 5))):
        name = rng.choice(HEADER_NAMES)
        value = rng.choice([junk(rng), rng.choice(NUMBERS), "bytes=0-1", "bytes=5-1", "bytes=-", "bytes=-0",
                            "bytes=99999999999999999999999-", "bytes=0-1,5-6", "items=0-1", "bytes=-99999999999999999",
                            "application/json", "chunked", "100-continue", "http://evil.example", "null",
                            "Bearer " + junk(rng), "keep-alive"])
        out.append(f"{name}: {value}")
    roll = rng.random()
    if roll < 0.03:
        out.append("X-Huge: " + "a" * rng.choice((8000, 70000)))
    elif roll < 0.05:
        out += [f"X-{i}: {i}" for i in range(rng.choice((99, 101, 300)))]
    elif roll < 0.07:
        out.append("no colon here")
    elif roll < 0.09:
        out.append(" folded: continuation")
    if method == "POST" and rng.random() < 0.6:
        out.append("Content-Type: application/json")
    return out


def body(rng: random.Random) -> bytes:
    return rng.choice([b"", b"{}", b'{"region": "door", "label": "open"}', b'{"region": "door", "label": "../x"}',
                       b"[1, 2", b'{"region": 1e999}', bytes(rng.randrange(256) for _ in range(rng.randrange(64))),
                       b"0\r\n\r\n", b"x" * 5000])


def request(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.05:  # plain random bytes (not starting with a blank line: that is no request at all)
        return b"R" + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
    method = rng.choice(METHODS)
    version = rng.choice(("HTTP/1.0", "HTTP/1.1")) if rng.random() < 0.7 else rng.choice(VERSIONS)
    line = f"{method} {mangle_path(rng)} {version}".rstrip()
    if roll < 0.08:
        line = rng.choice([method, f"{method} ", f"  {line}", line.replace(" ", "\t"), line + " extra words"])
    if roll < 0.1:
        line = line + "x" * 70000  # a request line over the limit
    head = "\r\n".join([line, *headers(rng, method)])
    ending = "\r\n\r\n" if rng.random() < 0.9 else rng.choice(["\n\n", "\r\n", "", "\n"])
    data = (head + ending).encode("latin-1", "replace")
    if method in ("POST", "PUT") or rng.random() < 0.05:
        payload = body(rng)
        if rng.random() < 0.7:
            data = data.replace(b"\r\n\r\n", f"\r\nContent-Length: {len(payload)}\r\n\r\n".encode(), 1)
        data += payload
    return data


@pytest.fixture
def server(tmp_path):
    make_history(tmp_path / "events")
    regions = (RegionInfo("door", (0.25, 0.25, 0.75, 0.75), ("closed", "open")),)
    sink = started(events_dir=tmp_path / "events", regions=regions, examples_dir=str(tmp_path / "examples"),
                   max_clients=3)
    sink.header_timeout_s = 2.0  # a request cut short is answered (408) sooner
    yield sink
    sink.close()


def test_a_few_thousand_malformed_requests_each_get_a_status_no_traceback_no_handle_left(server, caplog):
    rng = random.Random(SEED)
    requests = [request(rng) for _ in range(N)]
    base = open_fds()
    answers: dict[int, bytes] = {}
    lock = threading.Lock()

    def one(i):
        answer = raw(server.port, requests[i], timeout=15, stream_head=True)
        with lock:
            answers[i] = answer

    with caplog.at_level(logging.DEBUG, logger="edgecam"), ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(N)))
        assert wait_until(lambda: server.stream_clients == 0, "every stream's slot given back")
        assert wait_until(lambda: not handles_left(base), "the sockets and history handles closed")
    unanswered = [i for i in range(N) if status(answers[i]) is None]
    assert not unanswered, (f"seed {SEED}: {len(unanswered)} requests got no status line, e.g. "
                            f"{requests[unanswered[0]][:300]!r} -> {answers[unanswered[0]][:200]!r}")
    errors = [i for i in range(N) if status(answers[i]) >= 500 and status(answers[i]) not in (501, 503, 505)]
    assert not errors, f"seed {SEED}: {requests[errors[0]][:300]!r} -> {answers[errors[0]][:300]!r}"
    tracebacks = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not tracebacks, f"seed {SEED}: {tracebacks[0].getMessage()}"
    assert "cannot answer" not in caplog.text and "error serving" not in caplog.text
    codes = collections.Counter(status(a) for a in answers.values())
    logging.getLogger(__name__).info("seed %d: %s", SEED, sorted(codes.items()))
    # the generator reaches the routes, not only the parser
    assert all(codes[c] > N / 100 for c in (200, 400, 403, 404)), codes


def test_past_max_connections_a_connection_gets_a_503_at_once_and_is_counted(server):
    server._server.max_connections = 5
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(5)]  # send nothing yet
    try:
        assert wait_until(lambda: server._server.active == 5, "five connections served")
        answer = raw(server.port, b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        assert status(answer) == 503 and b"Retry-After: 5" in answer and b"too many connections" in answer
    finally:
        for s in idle:
            s.close()
    assert wait_until(lambda: server._server.active == 0, "the idle connections' threads gone")
    metrics = raw(server.port, b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").decode().splitlines()
    assert "edgecam_http_connections_refused_total 1" in metrics
