"""One camera's run-time control: its overrides, the config file's settings, the commands waiting to apply.

A command (over MQTT, from another thread) is only queued here; the camera's
output loop applies it, through the same path as ``systemctl reload``
(:meth:`edgecam.pipeline.app.App.reload`, :meth:`edgecam.pipeline.cameras.CamerasApp.reload`):
:meth:`Control.wake` asks the loop for a reload, the reload takes the commands
(:meth:`Control.drain`), lays the overrides over the config file's settings
(:meth:`Control.effective`) and swaps the live settings in, between two
results. So a command takes effect on the next frame, and a command and a
reload never race.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgecam.control.overrides import OverridesStore
from edgecam.errors import ConfigError

logger = logging.getLogger(__name__)

#: Commands waiting for the output loop; more are refused (a flood changes nothing it has not applied).
MAX_PENDING = 64


@dataclass(frozen=True)
class Outcome:
    """What a command did: the key, the value as taken (None when refused), and why it was refused.

    ``restart``: taken, and it applies as the run starts again in this process, right after the answer (a
    model the running camera cannot take in place: regions, a stage shared with other cameras).
    """

    key: str
    value: Any = None
    error: str | None = None
    reply: Callable[[Outcome], None] | None = None
    restart: bool = False


class Control:
    """The control of one camera: :attr:`store` (its overrides) over :attr:`file_cfg` (the config file's)."""

    def __init__(self, file_cfg, camera: str):
        self.camera = camera
        self.file_cfg = file_cfg
        self.store = OverridesStore(file_cfg.state_dir, camera)
        self._pending: deque = deque()
        self._lock = threading.Lock()
        #: Asks the camera's output loop for a reload (set by the app once its pipeline exists).
        self.wake: Callable[[], None] | None = None
        #: Called from the output loop with each applied or refused command (the MQTT output's state and reply).
        self.listeners: list[Callable[[Outcome], None]] = []

    def effective(self):
        """The config file's settings with the overrides that still hold (the file wins for a key it changed)."""
        return self.store.over(self.file_cfg)

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def submit(self, key: str, value: Any, reply: Callable[[Outcome], None] | None = None) -> bool:
        """Queue a command (any thread); False when too many wait (it is answered as refused)."""
        with self._lock:
            full = len(self._pending) >= MAX_PENDING
            if not full:
                self._pending.append((key, value, reply))
        if full:
            self._answer(Outcome(key, error=f"{key}: refused, {MAX_PENDING} commands already wait", reply=reply))
            return False
        if self.wake is not None:
            self.wake()
        return True

    def drain(self) -> list[Outcome]:
        """In the output loop: check and keep each waiting command; one log line for each refused one."""
        out = []
        while True:
            with self._lock:
                if not self._pending:
                    break
                key, value, reply = self._pending.popleft()
            try:
                taken = self.store.set(self.file_cfg, key, value)
                out.append(Outcome(key, taken, reply=reply))
                logger.warning("control: camera %s: %s set to %r", self.camera, key, taken)
            except ConfigError as e:
                out.append(Outcome(key, error=e.problems[0], reply=reply))
                logger.warning("control: camera %s: command refused, nothing changed: %s", self.camera,
                               e.problems[0])
            except OSError as e:  # the state directory: the command would not survive a restart
                out.append(Outcome(key, error=f"{key}: cannot keep it in {self.store.path} ({e.strerror})",
                                   reply=reply))
                logger.error("control: camera %s: cannot write %s (%s); command refused", self.camera,
                             self.store.path, e.strerror)
        return out

    def answer(self, outcomes: list[Outcome]) -> None:
        """After the new settings are in: tell the listeners (state topics) and each command's sender."""
        for o in outcomes:
            self._answer(o)

    def _answer(self, o: Outcome) -> None:
        for listener in self.listeners:
            try:
                listener(o)
            except Exception as e:  # an output's trouble never stops the camera
                logger.error("control: camera %s: a listener failed: %s", self.camera, e)
        if o.reply is not None:
            o.reply(o)
