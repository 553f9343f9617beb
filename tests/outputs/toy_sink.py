"""A toy output, written the way docs/events.md ("Add a sink") says: this one module, plus one
:func:`edgecam.outputs.register` line (tests/outputs/test_plugins.py). It counts results, and refuses a
``log.path`` without a name before ``.toy``."""

from __future__ import annotations

from pathlib import Path

from edgecam.outputs import SinkPlugin
from edgecam.outputs.base import Sink

#: The registration: the key, the Config attribute it reads, when a config wants it, where its class is.
PLUGIN = SinkPlugin("toy", "log", lambda cfg, ctx: str(cfg.log.path or "").endswith(".toy"),
                    f"{__name__}:ToySink")


class ToySink(Sink):
    name = "toy"

    def __init__(self, path: str):
        self.path = path
        self.results = 0

    @classmethod
    def from_config(cls, cfg, ctx) -> ToySink:
        return cls(cfg.log.path)

    @classmethod
    def check(cls, cfg) -> list[str]:
        if PLUGIN.enabled(cfg, None) and Path(cfg.log.path).name == ".toy":
            return [f"log.path: got {cfg.log.path!r}, expected a name before .toy (the toy output's file)"]
        return []

    def on_result(self, result) -> None:
        self.results += 1
