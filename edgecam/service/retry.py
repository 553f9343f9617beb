"""Start-up steps that may heal by themselves, retried while systemd waits.

A model that has to be downloaded at start (the configured one is not in the
model folder yet) fails with :class:`~edgecam.errors.DownloadError` (exit 75)
when the network is not up yet, the server times out or answers 5xx. On the
command line that is reported at once. Under systemd the step is tried again
after 5, 10 and 20 s first, with the reason in ``systemctl status``; only then
does edgecam exit 75 and the unit (``Restart=on-failure``) start it again.

Why retry inside the process at all: systemd 252 (Debian and Raspberry Pi OS
Bookworm) has no restart back-off (``RestartSteps=`` came in 254), so the unit
alone would retry every ``RestartSec=`` and give up after ``StartLimitBurst=``
starts. A start that takes ~40 s before it fails stays below that limit, so
a Pi that boots before its network keeps trying until the network comes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from edgecam.errors import DownloadError
from edgecam.service.notify import Notifier

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Waits between attempts under systemd; the last failure is raised (exit 75).
DELAYS_S = (5.0, 10.0, 20.0)
#: How long one attempt (download, then model load and first frame) may take,
#: told to systemd with EXTEND_TIMEOUT_USEC so that TimeoutStartSec= does not
#: cut the retries short. It never shortens the unit's own timeout.
ATTEMPT_S = 90.0


def retry_transient(
    action: Callable[[], T],
    notifier: Notifier,
    what: str,
    delays: tuple[float, ...] = DELAYS_S,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``action``; under systemd retry it after each of ``delays`` while it
    raises DownloadError. Outside systemd (no notify socket) it runs once."""
    waits = list(delays) if notifier.enabled else []
    attempt = 1
    while True:
        try:
            return action()
        except DownloadError as e:
            if not waits:
                raise
            delay = waits.pop(0)
            logger.warning("%s failed (attempt %d): %s; trying again in %.0f s", what, attempt, e.message, delay)
            notifier.status(f"{what} failed (attempt {attempt}), trying again in {delay:.0f} s: {e.message}")
            notifier.notify(f"EXTEND_TIMEOUT_USEC={int((delay + ATTEMPT_S) * 1_000_000)}")
            sleep(delay)
            attempt += 1
