"""Building the outputs a config asks for: the sink registry and the Sink interface's defaults."""

from __future__ import annotations

from edgecam.config import schema as config_mod
from edgecam.outputs import FanOut, SinkPlugin, build_sinks, register, unregister
from edgecam.outputs.base import Sink
from edgecam.stats import Stats


class Counter(Sink):
    """An output added the way the sinks package says: one class, one registry entry."""

    name = "counter"

    def __init__(self, top_k: int, fps):
        self.top_k = top_k
        self.fps = fps
        self.results = 0

    @classmethod
    def from_config(cls, cfg, ctx):
        return cls(cfg.model.top_k, ctx.source_fps)

    def on_result(self, result):
        self.results += 1


def test_a_registered_sink_is_built_from_the_config_only_when_wanted():
    register(SinkPlugin("counter", "model", lambda cfg, ctx: cfg.model.top_k > 4, f"{__name__}:Counter"))
    try:
        cfg = config_mod.from_dict({"model": {"top_k": 5}})
        (sink,) = build_sinks(cfg, Stats(), on_quit=lambda: None, display=False, source_fps=12.0)
        assert isinstance(sink, Counter) and (sink.top_k, sink.fps) == (5, 12.0)
        assert build_sinks(config_mod.from_dict({}), Stats(), on_quit=lambda: None, display=False,
                           source_fps=None) == []
    finally:
        unregister("counter")


def test_the_fan_out_reconfigures_and_tells_every_sink_the_source_opened():
    class Source:
        fps = 25.0

    class Rate(Sink):
        fps = None

        def source_opened(self, source):
            self.fps = source.fps

    plain, rate = Sink(), Rate()
    fan = FanOut([plain, rate])
    fan.reconfigure(7, 0.4)
    fan.source_opened(Source())
    assert (plain.top_k, plain.threshold, rate.top_k, rate.threshold) == (7, 0.4, 7, 0.4)
    assert rate.fps == 25.0 and fan.fatal() is None and fan.failure is None
