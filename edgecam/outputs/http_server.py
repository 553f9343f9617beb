"""The HTTP side of :class:`edgecam.outputs.http.HttpSink`: server and request handler (the page: ``http_page.py``).

The server serves a *site*: one camera's HttpSink, or the hub of several
(:class:`edgecam.outputs.http_hub.HttpHub`). The site checks each request
(``guard``, ``authorized``) and says who answers its path (``view_for``: the
site itself, or the camera under ``/camera/<name>/``, with the path below it).
The handler then only uses that *view*'s public side (``routes``, ``page``,
``health``, ``latest_json``, ``metrics_text``, ``latest_picture``, the stream
slots and waits); locks and counters stay theirs.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import socket
import socketserver
import sys
import threading
import time
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from edgecam.bounded import BadNumber, bounded_int
from edgecam.errors import EdgecamError

logger = logging.getLogger("edgecam.outputs.http")  # one logger for the whole HTTP output

BOUNDARY = "edgecamframe"

_TOKEN_IN_URL = re.compile(r"(token=)[^&\s\"]*")
_TOO_MANY = b"503 too many connections at once; try again later\n"

class Refused(Enum):
    """Why a stream got no slot (:meth:`edgecam.outputs.http.HttpSink.join_stream`)."""

    FULL = "full"  # every http.max_clients slot is taken
    CLOSING = "closing"  # the output is closing


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # listen() backlog: the default 5 makes the sixth connect of a burst (a
    # page's parallel requests, Prometheus with several viewers) wait for TCP
    # retransmits whenever the accept loop is a moment behind.
    request_queue_size = 128
    #: Connections served at once (each a thread and a file handle); past it a connection gets a 503 at once.
    #: Far under systemd's default of 1024 open files, so that the events' media can always be written.
    max_connections = 200

    def __init__(self, address, handler, sink):  # sink: the HttpSink whose view it serves
        self.sink = sink
        self._n = 0
        self._count_lock = threading.Lock()
        self.active = 0  # connections being served
        # room for every stream http.max_clients allows, and the page's requests beside them
        self.max_connections = max(type(self).max_connections, sink.cfg.max_clients + 50)
        self.refused = 0  # connections refused: max_connections reached
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def server_bind(self):
        # HTTPServer.server_bind() calls socket.getfqdn(), a DNS lookup that
        # can hang on a Pi without network; we never need the name.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def process_request(self, request, client_address):
        # Like ThreadingMixIn's, but with named threads and a cap on how many at once.
        with self._count_lock:
            full = self.active >= self.max_connections
            if not full:
                self.active += 1
        if full:
            self.refused += 1
            with contextlib.suppress(OSError):
                request.settimeout(1.0)
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nRetry-After: 5\r\nConnection: close\r\n"
                                b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n\r\n%s"
                                % (len(_TOO_MANY), _TOO_MANY))
            self.shutdown_request(request)
            return
        self._n += 1
        t = threading.Thread(target=self._serve_one, args=(request, client_address),
                             name=f"http-client-{self._n}", daemon=True)
        try:
            t.start()
        except RuntimeError:  # no thread to be had (a limit of the system): the slot is not taken
            with self._count_lock:
                self.active -= 1
            raise

    def _serve_one(self, request, client_address):
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._count_lock:
                self.active -= 1

    def handle_error(self, request, client_address):
        # Reached only by what Handler.handle_one_request did not catch (setup, finish): one line, no traceback.
        exc = sys.exc_info()[1]
        logger.warning("http: error serving %s: %s: %s", client_address[0], type(exc).__name__, exc)


class _DeadlineReader(io.RawIOBase):
    """The request's socket, read against a deadline for the whole request head.

    Each read waits at most until ``deadline`` (then raises TimeoutError);
    ``deadline = None`` lifts it once the headers are in.
    """

    def __init__(self, sock: socket.socket, deadline: float, read_timeout: float):
        self.sock = sock
        self.deadline: float | None = deadline
        self.read_timeout = read_timeout
        self.expired = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.deadline is None:
            self.sock.settimeout(self.read_timeout)
        else:
            left = self.deadline - time.monotonic()
            if left <= 0:
                self.expired = True
                raise TimeoutError("request headers too slow")
            self.sock.settimeout(min(left, self.read_timeout))
        try:
            return self.sock.recv_into(buffer)
        except TimeoutError:
            self.expired = self.deadline is not None and time.monotonic() >= self.deadline
            raise


class Handler(BaseHTTPRequestHandler):
    """One connection: routes GET/HEAD to the sink's view; the stream is served from this thread."""

    server: Server
    server_version = "edgecam"
    sys_version = ""
    # Every request is answered as HTTP/1.0 at least, with a status line: for a request line without a
    # version ("GET /") or naming HTTP/0.9 (even a malformed one) the standard library would send a bare
    # body, with no status nor headers (a stream with no headers at all).
    default_request_version = "HTTP/1.0"

    @property
    def request_version(self) -> str:
        return self._request_version

    @request_version.setter
    def request_version(self, version: str) -> None:
        self._request_version = "HTTP/1.0" if version == "HTTP/0.9" else version

    def setup(self):
        # A send timeout: a client that stops reading is dropped, not waited on.
        sink = self.server.sink
        self.view = sink  # who answers the request (do_GET: the site, or one of a hub's cameras)
        self.timeout = sink.send_timeout_s
        super().setup()
        self.rfile.close()  # the plain socket file setup() made; ours replaces it
        self._reader = _DeadlineReader(self.connection, time.monotonic() + sink.header_timeout_s, self.timeout)
        self.rfile = io.BufferedReader(self._reader)

    def parse_request(self) -> bool:
        ok = super().parse_request()  # reads the headers
        self._reader.deadline = None
        if ok:  # the one place every request passes, whatever its method: the Host and Origin checks
            why = self.server.sink.guard.refusal(self.command, self.headers)
            if why is not None:
                self.close_connection = True
                self._send(403, f"403 forbidden: {why}\n".encode())
                return False
        return ok

    def send_response(self, code, message=None):
        self._responded = True
        super().send_response(code, message)

    def handle_one_request(self):
        """One request, answered whatever it holds: what a route did not expect is a 500 and one log line."""
        self._responded = False
        try:
            super().handle_one_request()  # logs a TimeoutError at debug and asks to close
        except OSError as e:  # the client left or reset mid-request
            logger.debug("http: %s left (%s)", self.address_string(), e)
            self.close_connection = True
        except Exception as e:
            what = f"{getattr(self, 'command', None) or '?'} {(getattr(self, 'path', None) or '?')[:100]!r}"
            logger.warning("http: cannot answer %s: %s: %s", what, type(e).__name__, e)
            self.close_connection = True
            if not self._responded:
                with contextlib.suppress(OSError):
                    self._send(500, b"500 internal error: the server's log says what\n")
        if self._reader.expired:
            try:
                body = b"408 request timeout: send the whole request at once\n"
                self.wfile.write(b"HTTP/1.0 408 Request Timeout\r\nConnection: close\r\n"
                                 b"Content-Type: text/plain; charset=utf-8\r\n"
                                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            except OSError:
                pass
            self.close_connection = True

    def do_HEAD(self):
        self.do_GET()  # _send and _stream leave the body out for HEAD

    def log_message(self, format, *args):
        logger.debug("http: %s %s", self.address_string(), _TOKEN_IN_URL.sub(r"\1***", format % args))

    def _target(self) -> tuple[str, dict] | None:
        """(path, query) of the request target; None (a 400 sent) when it cannot be split."""
        try:
            url = urlsplit(self.path)
            return url.path, parse_qs(url.query, max_num_fields=100)
        except ValueError as e:
            self._send(400, f"400 bad request target: {e}\n".encode())
            return None

    def do_GET(self):
        site = self.server.sink
        target = self._target()
        if target is None:
            return
        full, query = target
        if not site.authorized(self.headers, query, full):
            self._send(401, b"401 unauthorized: send 'Authorization: Bearer <token>'\n",
                       extra={"WWW-Authenticate": "Bearer"})
            return
        self.view, path = site.view_for(full)
        if not path:  # /camera/<name>: its page's relative URLs need the slash
            self._redirect_slash()
            return
        name = self.view.routes.get(path)
        route = getattr(self, name) if name else None
        if route is None and path.startswith("/region/") and path.endswith(".jpg"):
            route = lambda: self._region_jpeg(path[len("/region/"):-len(".jpg")])  # noqa: E731
        mounted = self.view.mounted(path) if route is None else None
        if mounted is not None:  # a path another part answers (the events': HttpSink.mount)
            route = lambda: mounted(self, path, query)  # noqa: E731
        if route is None:
            self._send(404, f"404 not found: {full[:200]}\n".encode())
            return
        try:
            route()
        except OSError as e:  # the client left, stopped reading, or we are closing
            logger.debug("http: %s left (%s)", self.address_string(), e)
            self.close_connection = True

    def do_POST(self):
        """``POST /api/examples`` with JSON ``{"region": NAME, "label": STATE}``: save the region's crop as an example.

        Only JSON bodies: a page of another site cannot send one without the
        browser asking this server first (which it never agrees to), so a
        button elsewhere cannot fill the examples folder.
        """
        site = self.server.sink
        target = self._target()
        if target is None:
            return
        full = target[0]
        self.close_connection = True  # a body left unread must not be taken for the next request
        if not site.authorized(self.headers, {}, full):  # the header only: no ?token= for a POST
            self._send(401, b"401 unauthorized: send 'Authorization: Bearer <token>'\n",
                       extra={"WWW-Authenticate": "Bearer"})
            return
        self.view, path = site.view_for(full)
        studio = getattr(self.view, "studio", None)
        if studio is not None and path.startswith("/api/teach/"):  # the teach page's (edgecam.studio.api)
            studio.write(self, path)
            return
        teacher = getattr(self.view, "teacher", None)
        if path != "/api/examples" or teacher is None or self.command != "POST":
            self._send(404, f"404 not found: POST {full[:200]}\n".encode())
            return
        try:
            length = bounded_int(self.headers.get("Content-Length", ""), "Content-Length", high=4096)
        except BadNumber:
            length = None
        if not self.headers.get("Content-Type", "").startswith("application/json") or length is None:
            self._send(400, b'{"error": "send a JSON body (Content-Type: application/json) under 4 KB"}\n',
                       "application/json")
            return
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            path, count = teacher.save(str(body.get("region")), str(body.get("label")))
        except (ValueError, AttributeError) as e:
            self._json(400, {"error": f"not a JSON object with region and label ({e})"})
        except KeyError as e:
            self._json(404, {"error": e.args[0]})
        except LookupError as e:
            self._json(503, {"error": str(e)})
        except EdgecamError as e:
            self._json(507, {"error": e.message})
        else:
            self._json(201, {"saved": str(path), "examples": count})

    do_DELETE = do_POST  # DELETE /api/teach/regions/<name>: the same checks, the same answers

    def _json(self, code: int, data: dict):
        self._send(code, json.dumps(data).encode() + b"\n", "application/json")

    def _regions(self):
        teacher = self.view.teacher
        self._json(200, {"regions": teacher.describe() if teacher is not None else []})

    def _region_jpeg(self, name: str):
        teacher = self.view.teacher
        jpeg = teacher.crop_jpeg(name) if teacher is not None else None
        if jpeg is None:
            known = teacher is not None and name in teacher.regions
            self._send(503 if known else 404, b"503 no picture yet\n" if known else b"404 no such region\n")
        else:
            self._send(200, jpeg, "image/jpeg")

    def _send(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8", extra: dict | None = None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _page(self):
        self._send(200, self.view.page, "text/html; charset=utf-8",
                   extra={"Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"})

    def _redirect_slash(self):
        url = urlsplit(self.path)
        self._send(308, b"308 the page is at the same address with a slash at the end\n",
                   extra={"Location": url.path + "/" + (f"?{url.query}" if url.query else "")})

    def _cameras(self):
        self._json(200, self.view.cameras_json())

    def _snapshot(self):
        _, jpeg, result = self.view.latest_picture()
        if jpeg is None:
            self._send(503, b"503 no frame yet\n", extra={"Retry-After": "1"})
        else:
            self._send(200, jpeg, "image/jpeg", extra={"X-Edgecam-Result": result.decode()})

    def _latest(self):
        data = self.view.latest_json()
        if data is None:
            self._send(503, b'{"error": "no result yet"}\n', "application/json", extra={"Retry-After": "1"})
        else:
            self._send(200, json.dumps(data).encode() + b"\n", "application/json")

    def _healthz(self):
        ok, reason = self.view.health()
        self._send(200 if ok else 503, reason.encode() + b"\n")

    def _metrics(self):
        self._send(200, self.view.metrics_text().encode(), "text/plain; version=0.0.4; charset=utf-8")

    def _stream(self):
        sink = self.view
        if self.command == "HEAD":  # what a stream would be, without taking a client slot
            self.send_response(200 if not sink.closing else 503)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.close_connection = True
            return
        with self.stream_slot() as ok:
            if not ok:
                return
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self._stream_frames(sink)

    @contextlib.contextmanager
    def stream_slot(self):
        """``with handler.stream_slot() as ok``: one of the ``http.max_clients`` slots that every stream
        (live and event clips) shares, held for the block; ``ok`` False when refused (the 503 is sent)."""
        sink = self.view
        refused = sink.join_stream(self.connection)
        if refused is Refused.FULL:
            self._send(503, f"503 too many stream clients (http.max_clients = {sink.cfg.max_clients}, live and "
                            f"clip streams together); try again later or use /snapshot.jpg\n".encode(),
                       extra={"Retry-After": "5"})
        elif refused is Refused.CLOSING:
            self._send(503, b"503 shutting down\n", extra={"Retry-After": "5"})
        if refused:
            self.close_connection = True
            yield False
            return
        try:
            yield True
        finally:
            sink.leave_stream(self.connection)
            self.close_connection = True

    def _stream_frames(self, sink):
        interval = 1.0 / sink.cfg.stream_fps
        sent, result = 0, b"{}"  # sequence number of the picture this client has, and its result
        while True:
            # Skip whatever came in between: we want the newest only.
            fresh = sink.wait_for_picture(sent, timeout=sink.keepalive_s)
            if sink.closing:
                return
            if fresh:
                seq, jpeg, result = sink.latest_picture()
            else:
                seq, jpeg = sent, sink.cached_jpeg()  # idle: re-send, to notice a client that left
            if jpeg is None:
                continue
            t0 = time.monotonic()
            # Each part names the result drawn on it (X-Edgecam-Result), for the live page's list.
            self.wfile.write(
                f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n".encode()
                + b"X-Edgecam-Result: " + result + b"\r\n\r\n" + jpeg + b"\r\n"
            )
            sent = seq
            # Pace to stream_fps; close() wakes us at once.
            if sink.wait_closed(max(0.0, interval - (time.monotonic() - t0))):
                return
