"""A push's model switch, through the run's one way of changing a camera live: its commands' control.

Each camera's :class:`edgecam.control.live.Control` gets ``model.name`` as a command would set it (checked by
the config's rules, kept in the overrides store: it survives a restart, and a changed config file wins over
it), and its output loop applies it through the reload path. The switch waits for every camera's answer, then
checks that each camera runs the new model; when one does not, every camera is set back to the model it had,
so that a failed push leaves the node as it was (now and after a restart).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from edgecam.control.overrides import Key
from edgecam.errors import EdgecamError, ModelError

logger = logging.getLogger(__name__)

ANSWER_TIMEOUT_S = 60.0  # loading a model (and building its interpreter) on a Pi Zero takes seconds


@dataclass(frozen=True)
class Switchable:
    """One camera: its name, its control, and what it runs now (the loaded classifier's name)."""

    name: str
    control: object  # edgecam.control.live.Control
    running: Callable[[], str]


class ControlSwitch:
    """``switch(name)``: every camera to model ``name`` live, or none (see the module docstring)."""

    def __init__(self, cameras: Callable[[], list[Switchable]], timeout_s: float = ANSWER_TIMEOUT_S):
        self.cameras, self.timeout_s = cameras, timeout_s
        self.restarting: set[str] = set()  # the cameras that take the model as the run starts again

    def _set(self, cams: list[Switchable], names: dict[str, str]) -> list[str]:
        """Submit ``model.name`` to each camera and wait for its answer; the problems, one line each."""
        done = threading.Semaphore(0)
        problems: list[str] = []

        def reply(cam: Switchable):
            def answer(outcome) -> None:
                if outcome.error:
                    problems.append(f"camera {cam.name}: {outcome.error}")
                elif outcome.restart:  # it takes the model as the run starts again, right after this answer
                    self.restarting.add(cam.name)
                done.release()
            return answer

        for cam in cams:
            cam.control.submit(Key.MODEL, names[cam.name], reply=reply(cam))
        for cam in cams:
            if not done.acquire(timeout=self.timeout_s):
                problems.append(f"camera {cam.name}: no answer within {self.timeout_s:.0f} s (is it running?)")
                break
        return problems

    def __call__(self, name: str) -> bool:
        """Switch; True when the run starts again to take it (its cameras answered so): the push is answered
        by the next run, which finds the request again (retained) and every camera running ``name``."""
        cams = self.cameras()
        if not cams:
            raise EdgecamError("no camera is running here")
        self.restarting = set()
        before = {cam.name: cam.running() for cam in cams}
        problems = self._set(cams, {cam.name: name for cam in cams})
        if not problems:
            problems = [f"camera {cam.name}: it still runs {cam.running()}; it takes {name} at a restart only"
                        for cam in cams if cam.running() != name and cam.name not in self.restarting]
        if problems:
            back = self._set(cams, before)
            if back:
                logger.error("fleet: could not set every camera back to its model: %s", "; ".join(back))
            raise ModelError("; ".join(problems))
        return bool(self.restarting)
