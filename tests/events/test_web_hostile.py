"""The events' HTTP paths under hostile input: huge and non-ASCII ids, paging with any label, the stream limit
and the file handles, damaged clips; and the same numbers on the command line."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from edgecam.bounded import BadNumber, bounded_int
from edgecam.config.schema import HttpConfig
from edgecam.events.web import EventsWeb
from edgecam.outputs.http import HttpSink
from edgecam.stats import Stats
from tests.conftest import REPO
from tests.doubles import StreamClient, wait_until
from tests.events.hostile import make_history, open_fds, raw, sockets_and_db, started, status

HUGE = "99999999999999999999"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("events")
    make_history(folder)
    return folder


@pytest.fixture
def served(folder):
    sinks = []

    def make(**cfg):
        sinks.append(started(events_dir=folder, **cfg))
        return sinks[-1]

    yield make
    for s in sinks:
        s.close()


def get(sink, target: str, headers: bytes = b"") -> tuple[int | None, bytes]:
    answer = raw(sink.port, f"GET {target} HTTP/1.0\r\n".encode("latin-1") + headers + b"\r\n")
    return status(answer), answer.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("text, low, high, ok", [
    ("0", 0, 10, 0), ("10", 0, 10, 10), ("007", 0, 10, 7), ("11", 0, 10, None), ("0", 1, 10, None),
    ("", 0, 10, None), ("-1", 0, 10, None), ("+1", 0, 10, None), (" 1", 0, 10, None), ("1 ", 0, 10, None),
    ("1\n", 0, 10, None), ("\xb2", 0, 10, None), ("\u0663", 0, 10, None), ("1e3", 0, 10**6, None),
    (HUGE, 0, 2**63 - 1, None), ("9" * 5000, 0, 2**63 - 1, None), (str(2**63 - 1), 0, 2**63 - 1, 2**63 - 1),
])
def test_the_bounded_integer_parser_takes_ascii_digits_in_range_only(text, low, high, ok):
    if ok is None:
        with pytest.raises(BadNumber) as e:
            bounded_int(text, "n", low, high)
        assert "\n" not in str(e.value) and len(str(e.value)) < 200
    else:
        assert bounded_int(text, "n", low, high) == ok


@pytest.mark.parametrize("target, code", [
    (f"/api/events/{HUGE}", 404), (f"/api/events/{2**63}", 404), ("/api/events/\xb2", 404),
    ("/api/events/0", 404), ("/api/events/-1", 404), (f"/events/{HUGE}/clip", 404), ("/events/\xb2/clip", 404),
    (f"/events/{HUGE}/clip.mjpg", 404), (f"/events/{HUGE}", 404), ("/events/\xb2", 404),
    (f"/api/events?offset={HUGE}", 400), ("/api/events?offset=\xb2", 400), ("/api/events?offset=-1", 400),
    (f"/api/events?limit={HUGE}", 400), ("/api/events?limit=1e3", 400), (f"/api/events?offset={2**63 - 1}", 200),
    ("/api/events?limit=100000", 200),
])
def test_huge_and_non_ascii_numbers_in_paths_and_queries_are_a_clear_4xx(served, caplog, target, code):
    sink = served()
    with caplog.at_level(logging.DEBUG, logger="edgecam"):
        got, body = get(sink, target)
    assert got == code, (target, body[:200])
    assert "Traceback" not in caplog.text and not [r for r in caplog.records if r.exc_info]


def test_a_content_length_that_is_not_ascii_digits_is_a_400(served, caplog):
    sink = served()
    sink.teacher = type("Teacher", (), {"save": lambda *a: ("x", 1)})()  # POST /api/examples answers
    for length in (b"\xb2", HUGE.encode(), b"-5", b"4097", b"1e2"):
        answer = raw(sink.port, b"POST /api/examples HTTP/1.0\r\nContent-Type: application/json\r\n"
                                b"Content-Length: " + length + b"\r\n\r\n{}")
        assert status(answer) == 400, (length, answer[:200])
    assert not [r for r in caplog.records if r.exc_info]


def test_the_next_link_is_url_encoded_and_pages_through_any_label(served):
    sink = served()
    seen, target = [], "/api/events?" + "label=a%26b+%23c%2Bd&limit=1"
    while target:
        code, body = get(sink, target)
        assert code == 200, body
        page = json.loads(body)
        seen += [e["label"] for e in page["events"]]
        target = page["next"]
        assert len(seen) <= 3, "paging does not end"
    assert seen == ["a&b #c+d"] * 3


def test_one_limit_for_live_and_clip_streams_and_every_handle_back_after(served, folder, caplog):
    sink = served(max_clients=3)
    base_sockets, base_db = sockets_and_db(open_fds())  # the listening socket
    assert base_db == 0
    assert get(sink, "/api/events")[0] == 200
    assert wait_until(lambda: sockets_and_db(open_fds()) == (base_sockets, 0), "a request's handles closed")
    clips = [StreamClient(sink.port, "/events/1/clip.mjpg") for _ in range(2)]
    live = StreamClient(sink.port)
    assert [c.resp.status for c in (*clips, live)] == [200, 200, 200]
    clips[0].part(), live.part()
    for path in ("/events/1/clip.mjpg", "/stream.mjpg"):  # the fourth stream of either kind
        extra = StreamClient(sink.port, path)
        assert extra.resp.status == 503 and extra.resp.headers["Retry-After"]
        assert b"too many stream clients" in extra.resp.read()
        extra.close()
    metrics = get(sink, "/metrics")[1].decode().splitlines()
    assert "edgecam_http_stream_clients 3" in metrics and "edgecam_http_streams_refused_total 2" in metrics
    # while clips play, no database handle is held (the history is read, and closed, before the file is sent)
    assert sockets_and_db(open_fds())[1] == 0
    for c in (*clips, live):
        c.close()
    assert wait_until(lambda: sink.stream_clients == 0, "the streams' slots given back")
    assert wait_until(lambda: sockets_and_db(open_fds()) == (base_sockets, 0), "the handles back to the baseline")
    assert not [r for r in caplog.records if r.exc_info]


def test_failed_reader_connections_are_closed(folder, tmp_path, monkeypatch):
    """A reader whose first query fails (here: the table is missing) leaves no handle on events.db behind."""
    import sqlite3

    from edgecam.errors import OutputError
    from edgecam.events.history import connect_reader

    bad = tmp_path / "bad"
    bad.mkdir()
    sqlite3.connect(bad / "events.db").close()  # a database without the events table
    before = sockets_and_db(open_fds())[1]
    for _ in range(20):
        with pytest.raises(OutputError):
            connect_reader(bad)
    assert sockets_and_db(open_fds())[1] == before


@pytest.mark.parametrize("cut", [0, 100, 250])
def test_a_damaged_clip_is_one_clear_error_logged_once_or_an_empty_stream(served, folder, tmp_path, caplog, cut):
    import shutil

    from edgecam.events.history import get_event, reading

    copy = tmp_path / "ev"
    shutil.copytree(folder, copy)
    with reading(copy) as conn:
        clip = copy / get_event(conn, 1)["clip"]
    clip.write_bytes(clip.read_bytes()[:cut])
    sink = HttpSink(HttpConfig(port=0), Stats())
    EventsWeb(copy).mount_on(sink)
    sink.start()
    try:
        with caplog.at_level(logging.DEBUG, logger="edgecam"):
            answers = [get(sink, "/events/1/clip.mjpg") for _ in range(3)]
    finally:
        sink.close()
    if cut < 224:  # the headers cut: nothing to play
        assert [code for code, _ in answers] == [500] * 3
        assert "cannot be played" in json.loads(answers[0][1])["error"]
        assert len([r for r in caplog.records if "cannot play a clip" in r.getMessage()]) == 1
    else:  # the headers whole, no frame whole: a stream that ends at once
        assert answers == [(200, b"--edgecamframe--\r\n")] * 3
    assert "Traceback" not in caplog.text and not [r for r in caplog.records if r.exc_info]


@pytest.mark.parametrize("args", [["show", HUGE], ["show", "\xb2"], ["show", "0"], ["list", "--limit", HUGE],
                                  ["list", "--limit", "\u0663"], ["list", "--limit", "0"]])
def test_the_command_line_refuses_huge_and_non_ascii_numbers_with_exit_2(folder, args):
    proc = subprocess.run([sys.executable, "-m", "edgecam", "events", *args[:1], "--dir", str(folder), *args[1:]],
                          capture_output=True, text=True, timeout=60, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "unexpected error" not in proc.stderr
    assert "expected" in proc.stderr.strip().splitlines()[-1]  # one line (after argparse's usage line)
