"""Webhook actions: each event's start and end POSTed as JSON, from a thread of their own.

``webhook: URL`` on a rule: the event (``{"type": "start"|"end", "id", "rule",
"label", "region", "start", "end", "peak_score", "host", "snapshot"}``, times in epoch
seconds) is POSTed with ``Content-Type: application/json``. A POST that
fails (refused, a timeout of ``events.webhook_timeout_s``, an answer other
than 2xx) is tried again ``events.webhook_retries`` times, waiting 1, 2, 4...
seconds (at most 30) between tries; after the last it is counted as a
failure of its rule (``/metrics``) and logged (once per URL until one gets
through). The pipeline only queues: a slow or dead server delays other
webhooks, never a frame. The queue holds :data:`QUEUE_SIZE` POSTs; past
that the oldest is dropped and counted as failed.
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


class Webhooks:
    """The ``events-webhook`` thread and its queue. ``failed(rule)`` counts a POST given up on."""

    def __init__(self, timeout_s: float, retries: int, failed: Callable[[str], None], sleep=None):
        self.timeout_s, self.retries, self.failed = timeout_s, retries, failed
        self.sent = 0
        self._queue: deque = deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait  # a retry's wait ends at once when closing
        self._closing = False  # close() began: what is queued is tried once, then the thread ends
        self._down: set[str] = set()  # URLs whose last POST failed (logged once until one gets through)
        self._thread = threading.Thread(target=self._run, name="events-webhook", daemon=True)
        self._thread.start()

    def post(self, url: str, rule: str, payload: dict) -> None:
        """Queue one POST (from the output loop: never waits)."""
        with self._cond:
            if len(self._queue) >= QUEUE_SIZE:
                _, old_rule, _ = self._queue.popleft()
                self.failed(old_rule)
            self._queue.append((url, rule, json.dumps(payload).encode()))
            self._cond.notify()

    def close(self, timeout: float = 5.0) -> None:
        """Stop; what is still queued gets ``timeout`` seconds to go out, without retries."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._stop.set()  # a retry waiting ends now
        self._thread.join(timeout)
        with self._cond:
            self._cond.notify()
        self._thread.join(self.timeout_s + 1)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._closing)
                if not self._queue:
                    return
                url, rule, body = self._queue.popleft()
            try:
                self._deliver(url, rule, body)
            except Exception as e:  # a worker loop logs and goes on
                logger.exception("events: webhook %s: %s", url, e)

    def _deliver(self, url: str, rule: str, body: bytes) -> None:
        tries = 1 if self._closing else 1 + self.retries
        why = ""
        for attempt in range(tries):
            if attempt:
                if self._sleep(min(MAX_BACKOFF_S, 2.0 ** (attempt - 1))):
                    break  # closing: no more waiting
            why = self._post_once(url, body)
            if not why:
                self.sent += 1
                if url in self._down:
                    self._down.discard(url)
                    logger.warning("events: webhook %s answers again", url)
                return
        self.failed(rule)
        if url not in self._down:
            self._down.add(url)
            logger.error("events: webhook %s failed after %d tries: %s; events go on, and so do the tries",
                         url, tries, why)

    def _post_once(self, url: str, body: bytes) -> str:
        """POST ``body``; '' when the server took it (2xx), else why not."""
        req = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "edgecam"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as r:
                r.read(65536)
                return "" if 200 <= r.status < 300 else f"HTTP {r.status}"
        except urllib.error.HTTPError as e:
            return f"HTTP {e.code}"
        except urllib.error.URLError as e:
            return str(getattr(e.reason, "strerror", None) or e.reason)
        except (TimeoutError, socket.timeout):
            return f"no answer within {self.timeout_s:g} s"
        except OSError as e:
            return e.strerror or str(e)

