"""Several cameras' events in one folder: one history, one lock, one retention, one view of them all.

A run of several cameras (:class:`edgecam.pipeline.cameras.CamerasApp`)
builds one :class:`EventsHub` per events folder its cameras' configs name
(:meth:`EventsHub.for_cameras`), before the cameras. Each camera's events
output (:class:`edgecam.events.sink.EventsSink`, built from that camera's own
config) finds its hub in :attr:`edgecam.outputs.base.SinkContext.shared_outputs`
(key ``events``) and keeps what is the camera's: its rules, its actions (its
snapshots and clips come from its own frames), its counters. What is the
folder's is the hub's:

* the :class:`edgecam.events.history.History`: the folder's lock (held once,
  by the run), its writer thread (the media writer too), its retention, which
  counts every camera's events together; each row names its camera;
* the /events page and /api/events (:class:`edgecam.events.web.EventsWeb`):
  one view of every camera's events, mounted on each camera's HTTP output,
  listing each camera's rules with their camera.

The hub opens the history when the first camera's events output starts, and
its owner closes it once every camera's outputs are closed (:meth:`close`);
a camera's output that closes before (its file ended, it could not open)
ends its own events and leaves the history to the others.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from edgecam.errors import ConfigError
from edgecam.events.history import History, default_dir
from edgecam.events.web import EventsWeb
from edgecam.names import identifier_problem

#: The key of a hub in :attr:`edgecam.outputs.base.SinkContext.shared_outputs`.
KEY = "events"


class EventsHub:
    """The shared part of several cameras' events in ``folder`` (see the module docstring).

    ``max_age_days``, ``max_mb``: the folder's retention (``events.max_age_days``, ``events.max_mb``), for all
    its cameras together. ``clock``: epoch seconds (retention's "now").
    """

    def __init__(self, folder: str | os.PathLike, max_age_days: float = 0.0, max_mb: float = 0.0,
                 clock=time.time):
        self.folder = Path(folder)
        self.history = History(self.folder, max_age_days, int(max_mb * 1024 * 1024), clock=clock)
        self.web = EventsWeb(self.folder)
        #: camera name -> its events output, in the order they joined
        self.sinks: dict[str, object] = {}
        self._opened = False
        self._closed = False

    @classmethod
    def for_cameras(cls, cameras: list[tuple[str, object]]) -> dict[str, EventsHub]:
        """``(name, Config)`` pairs -> camera name -> its hub, for the cameras with event rules: one hub per
        events folder (``events.dir``, or its default). ConfigError (every problem) when a camera's name cannot
        name its media files, or when cameras sharing a folder ask for different retention."""
        hubs: dict[Path, EventsHub] = {}
        settings: dict[Path, tuple[str, tuple[float, float]]] = {}
        out, problems = {}, []
        for name, cfg in cameras:
            if not cfg.events.rules:
                continue
            if (why := identifier_problem(name)) is not None:
                problems.append(f"cameras: got {name!r} as a camera's name, expected {why}; its events' files carry it")
                continue
            folder = Path(default_dir(cfg))
            key = folder.resolve()
            mine = (cfg.events.max_age_days, cfg.events.max_mb)
            if key not in hubs:
                hubs[key] = cls(folder, *mine)
                settings[key] = (name, mine)
            elif settings[key][1] != mine:
                first, theirs = settings[key]
                problems.append(f"cameras: {name} and {first} keep their events in {folder} with different "
                                f"retention (events.max_age_days, events.max_mb: {mine[0]:g}, {mine[1]:g} and "
                                f"{theirs[0]:g}, {theirs[1]:g}); give them the same, or each its own events.dir")
            out[name] = hubs[key]
        if problems:
            raise ConfigError(problems)
        return out

    def join(self, camera: str, sink) -> None:
        """``sink``, the events output of ``camera``, writes here; its rules are listed with their camera."""
        if camera is None or camera in self.sinks:
            raise ValueError(f"events: a camera joins a folder's events by a name of its own, got {camera!r}")
        self.sinks[camera] = sink
        self.web.add_camera(camera, sink.cfg.rules)

    def open(self) -> None:
        """Open the history (lock the folder, repair, start its writer) unless it is open: the first
        camera's start does; OutputError (exit 4) as :meth:`History.open`."""
        if not self._opened:
            self.history.open()
            self._opened = True

    def close(self) -> None:
        """Write what every camera handed over and close the history (after every camera's outputs closed)."""
        if self._opened and not self._closed:
            self._closed = True
            self.history.close()
