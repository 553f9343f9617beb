"""Webhook actions: each event's start and end POSTed as JSON, from a thread per URL.

``webhook: URL`` on a rule: the event (``{"type": "start"|"end", "id", "rule",
"label", "region", "start", "end", "peak_score", "host", "snapshot"}``, times in epoch
seconds) is POSTed with ``Content-Type: application/json``. A POST that
fails (refused, no whole answer within ``events.webhook_timeout_s``, an answer
other than 2xx, a redirect) is tried again ``events.webhook_retries`` times,
waiting 1, 2, 4... seconds (at most 30) between tries; after the last it is
counted as a failure of its rule (``/metrics``) and logged in one line (once
per URL until one gets through).

``webhook_timeout_s`` bounds the whole try: connecting, sending, and the
answer's status line and headers. A watchdog closes the connection at the
deadline, so a server that answers a byte at a time costs the timeout, not
forever (name resolution is bounded by the system's resolver).

Each URL has its own thread and queue (:data:`QUEUE_SIZE` POSTs; past that
the oldest is dropped and counted as failed): a slow or dead server delays
its own POSTs, never another URL's, nor a frame. Redirects are not followed
(a POST would become a GET without its body, possibly to another host): a
3xx is a failure naming where it pointed. At a stop, what is still queued
gets ``close``'s few seconds in all, one try each; what is left then is
counted as failed.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable

logger = logging.getLogger(__name__)

QUEUE_SIZE = 100
MAX_BACKOFF_S = 30.0
WATCH_S = 0.05  # past the deadline, how often the watchdog closes a socket the request may have opened since


class Watch:
    """Closes the socket of one request once its deadline (monotonic) has passed (module docstring);
    :meth:`cut` brings the deadline nearer (a stop)."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.conn = None  # the http.client connection, once urllib made it
        self.fired = False
        self._done = False
        self._cond = threading.Condition()
        threading.Thread(target=self._run, name="events-webhook-watch", daemon=True).start()

    def cut(self, deadline: float) -> None:
        with self._cond:
            self.deadline = min(self.deadline, deadline)
            self._cond.notify()

    def finish(self) -> None:
        with self._cond:
            self._done = True
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while not self._done:
                left = self.deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            if self._done:
                return
            self.fired = True
            while not self._done:  # until the request gave up (it may connect after the deadline)
                sock = getattr(self.conn, "sock", None)
                if sock is not None:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                self._cond.wait(WATCH_S)


class _Watched:
    """A urllib handler whose connections its :class:`Watch` can close."""

    watch: Watch

    def do_open(self, http_class, req, **kw):
        def make(*args, **kwargs):
            self.watch.conn = http_class(*args, **kwargs)
            return self.watch.conn
        return super().do_open(make, req, **kw)


class _HTTP(_Watched, urllib.request.HTTPHandler):
    pass


class _HTTPS(_Watched, urllib.request.HTTPSHandler):
    pass


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # the 3xx comes back as an HTTPError


def post_once(url: str, body: bytes, timeout_s: float, watch: Watch | None = None) -> str:
    """POST ``body`` to ``url`` within ``timeout_s`` in all (or by ``watch``'s deadline, which may come
    sooner); '' when the server took it (2xx), else why not, in one line. Never raises."""
    if not url.lower().startswith(("http://", "https://")):
        return "not an http:// or https:// URL"
    watch = watch or Watch(time.monotonic() + timeout_s)
    deadline = watch.deadline
    handlers = [_HTTP(), _HTTPS(), _NoRedirect()]
    for h in handlers[:2]:
        h.watch = watch
    try:
        req = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "edgecam"})
        with urllib.request.build_opener(*handlers).open(req, timeout=max(0.01, deadline - time.monotonic())) as r:
            return "" if 200 <= r.status < 300 else f"HTTP {r.status}"  # the body is not waited for
    except urllib.error.HTTPError as e:
        if 300 <= e.code < 400:
            return (f"HTTP {e.code}, a redirect to {e.headers.get('Location')!r}, not followed (a POST is not "
                    "redirected); set the webhook to the URL it names")
        return f"HTTP {e.code}"
    except Exception as e:  # anything, in one line: a URL that is not one must not be a traceback per event
        if watch.fired:
            return f"no whole answer within {timeout_s:g} s"
        if isinstance(e, urllib.error.URLError):
            e = e.reason if isinstance(e.reason, BaseException) else e
        if isinstance(e, (TimeoutError, socket.timeout)):
            return f"no answer within {timeout_s:g} s"
        what = getattr(e, "strerror", None) or str(e) or type(e).__name__
        return " ".join(f"{what}".split())
    finally:
        watch.finish()


class _Worker:
    """The thread and queue of one URL."""

    def __init__(self, hooks: Webhooks, url: str, n: int):
        self.hooks, self.url = hooks, url
        self.queue: deque = deque()
        self.cond = threading.Condition()
        self.down = False  # its last POST failed (logged once until one gets through)
        self.thread = threading.Thread(target=self._run, name=f"events-webhook-{n}", daemon=True)
        self.thread.start()

    def post(self, rule: str, body: bytes) -> None:
        with self.cond:
            if len(self.queue) >= QUEUE_SIZE:
                self.hooks._failed(self.queue.popleft()[0])
            self.queue.append((rule, body))
            self.cond.notify()

    def _run(self) -> None:
        hooks = self.hooks
        while True:
            with self.cond:
                self.cond.wait_for(lambda: self.queue or hooks._closing)
                if not self.queue:
                    return
                if hooks._closing and time.monotonic() >= hooks._close_by:
                    left = [rule for rule, _ in self.queue]
                    self.queue.clear()
                    for rule in left:
                        hooks._failed(rule)
                    logger.error("events: webhook %s: %d POST(s) not sent at the stop (counted as failed)",
                                 self.url, len(left))
                    return
                rule, body = self.queue.popleft()
            self._deliver(rule, body)

    def _deliver(self, rule: str, body: bytes) -> None:
        hooks = self.hooks
        tries = 1 if hooks._closing else 1 + hooks.retries
        why = ""
        for attempt in range(tries):
            if attempt and hooks._sleep(min(MAX_BACKOFF_S, 2.0 ** (attempt - 1))):
                break  # closing: no more waiting
            why = hooks._post(self.url, body)
            if not why:
                hooks._sent()
                if self.down:
                    self.down = False
                    logger.warning("events: webhook %s answers again", self.url)
                return
        hooks._failed(rule)
        if not self.down:
            self.down = True
            logger.error("events: webhook %s failed after %d tries: %s; events go on, and so do the tries",
                         self.url, tries, why)


class Webhooks:
    """The webhook threads, one per URL (module docstring). ``failed(rule)`` counts a POST given up on."""

    def __init__(self, timeout_s: float, retries: int, failed: Callable[[str], None], sleep=None):
        self.timeout_s, self.retries, self.failed = timeout_s, retries, failed
        self.sent = 0
        self._workers: dict[str, _Worker] = {}
        self._lock = threading.Lock()  # the workers, and the counters several threads update
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait  # a retry's wait ends at once when closing
        self._closing = False  # close() began: what is queued is tried once, until _close_by
        self._close_by = float("inf")
        self._watches: set[Watch] = set()  # of the POSTs going on (a stop brings their deadlines nearer)

    def post(self, url: str, rule: str, payload: dict) -> None:
        """Queue one POST (from the output loop: never waits)."""
        with self._lock:
            worker = self._workers.get(url)
            if worker is None:
                worker = self._workers[url] = _Worker(self, url, len(self._workers) + 1)
        worker.post(rule, json.dumps(payload).encode())

    def close(self, timeout: float = 5.0) -> None:
        """Stop; what is still queued gets ``timeout`` seconds in all to go out, one try each."""
        self._close_by = time.monotonic() + timeout
        self._closing = True
        self._stop.set()  # a retry waiting ends now
        with self._lock:
            workers = list(self._workers.values())
            for watch in self._watches:
                watch.cut(self._close_by)
        for w in workers:
            with w.cond:
                w.cond.notify()
        for w in workers:
            w.thread.join(max(0.0, self._close_by - time.monotonic()) + 1.0)

    def _post(self, url: str, body: bytes) -> str:
        watch = Watch(time.monotonic() + self.timeout_s)
        with self._lock:
            self._watches.add(watch)
            watch.cut(self._close_by)  # under the lock: a stop beginning now cuts it either here or in close()
        try:
            return post_once(url, body, self.timeout_s, watch)
        finally:
            with self._lock:
                self._watches.discard(watch)

    def _failed(self, rule: str) -> None:
        with self._lock:
            self.failed(rule)

    def _sent(self) -> None:
        with self._lock:
            self.sent += 1
