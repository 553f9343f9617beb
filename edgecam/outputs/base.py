"""What an output of the pipeline is: the :class:`Sink` interface every output implements."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import numpy as np

from edgecam.errors import ConfigError, EdgecamError
from edgecam.camera.frame import Frame
from edgecam.result import Classification, LabelChange, RegionChange

if TYPE_CHECKING:
    from edgecam.config.schema import Config
    from edgecam.camera.base import FrameSource


@dataclass(frozen=True)
class RegionInfo:
    """A configured region as the outputs see it: where it is, the states it can take, which one is ON."""

    name: str
    box: tuple[float, float, float, float]
    labels: tuple[str, ...]
    on_label: str | None = None


@dataclass(frozen=True)
class SinkContext:
    """What a sink may need besides the config: the run's live counters, how
    to stop the run, whether a window can open, the source's frame rate (None
    until it is open: see :meth:`Sink.source_opened`), the regions (none: the
    whole picture is classified), the classes of the whole picture's model
    (empty with regions, or when not known), the camera's name when the
    run has several cameras (None with one: the outputs stay as they were),
    and what the run's cameras share of an output, by its key (``events``: the
    :class:`edgecam.events.hub.EventsHub` of the camera's events folder; None
    with one camera)."""

    stats: object
    on_quit: Callable[[], None]
    display: bool
    source_fps: float | None
    regions: tuple[RegionInfo, ...] = ()
    labels: tuple[str, ...] = ()
    camera: str | None = None
    shared_outputs: Mapping[str, object] | None = None
    model: str | None = None  # the models the camera runs (its regions' learned ones too), as its classifier names them


class Sink:
    """An output of the pipeline (window, log, recording, HTTP, MQTT).

    The life of a sink, all from the pipeline's output thread:

    0. :meth:`check` (``edgecam check-config``) lists what the config asks of it that it would refuse;
    1. :meth:`from_config` builds it (:func:`edgecam.outputs.build_sinks`, for
       the sinks registered in :data:`edgecam.outputs.SINKS`), then :meth:`connect`
       shows it the run's other outputs;
    2. :meth:`start` opens what it needs; raising an EdgecamError there is bad
       input, reported before the camera opens;
    3. :meth:`source_opened` once the source is open (its frame rate known);
    4. :meth:`on_result` for each new result, :meth:`on_frame` for each output
       frame (the overlay already drawn when some sink ``wants_frames``),
       :meth:`on_event` when the shown label changes, :meth:`reconfigure`
       when a reload changes the live settings;
    5. :meth:`close`, once, whatever happened.

    A sink that raises is logged and switched off by the fan-out; the others
    go on. Sinks that do slow I/O (network) hand work to their own thread and
    return at once. A sink reports trouble it found in its own threads through
    :attr:`fatal_error` (the run stops with it) and :attr:`failure` (the run
    goes on, but ends with its exit code).
    """

    name = "sink"
    #: True when the sink wants the annotated picture (window, recording,
    #: HTTP view); the overlay is only drawn when some sink does.
    wants_frames = False
    #: With ``wants_frames``: whether the overlay must be drawn on every frame for it (False: the
    #: events output, which draws its own on the rare frame it keeps; ``annotated`` may then be None).
    wants_overlay = True
    #: Closed before the others (the events output: the ends a stop interrupts still reach MQTT and the rest).
    closes_first = False
    #: How many labels a sink that lists labels reports, and the lowest score
    #: it lists (``model.top_k``, ``model.threshold``); see :meth:`reconfigure`.
    top_k = 3
    threshold = 0.0
    #: Set when the sink cannot go on and retrying will not help (MQTT: bad
    #: credentials): the pipeline stops the run with it as its exit code.
    fatal_error: EdgecamError | None = None
    #: Set (by :meth:`close` at the latest) when the sink went on but lost
    #: what it was for (a log where no line could be written): the run ends
    #: with its exit code.
    failure: EdgecamError | None = None

    @classmethod
    def from_config(cls, cfg: Config, ctx: SinkContext) -> Sink:
        """Build the sink from the whole config and the run's context."""
        raise NotImplementedError(f"{cls.__name__} is not built from the config")

    @classmethod
    def check(cls, cfg: Config) -> list[str]:
        """Every problem in ``cfg`` this output would refuse at start as bad input (exit 2), checked
        without starting anything (``edgecam check-config``); [] when its section is off. What may heal by
        itself (a busy port, a folder not yet mounted) is left to :meth:`start`."""
        return []

    def connect(self, sinks: list[Sink]) -> None:
        """The run's outputs, this one included, all built (the events output mounts its pages on HTTP's)."""

    def start(self) -> None:
        """Open files, sockets, windows. Raise an EdgecamError if impossible."""

    def source_opened(self, source: FrameSource) -> None:
        """The source is open: ``source.fps`` is its own rate (a file's is known only now)."""

    def on_result(self, result: Classification) -> None:
        """Called once per new classification."""

    def on_frame(self, frame: Frame, annotated: np.ndarray | None, result: Classification | None) -> None:
        """Called once per output frame."""

    def on_event(self, event: LabelChange | RegionChange) -> None:
        """Called when the (smoothed) top label changes, or a region's state."""

    def on_health(self, health) -> None:
        """A new reading of the board (an :class:`edgecam.health.board.BoardHealth`), from the output loop."""

    def reconfigure(self, top_k: int, threshold: float) -> None:
        """The live settings changed (a reload): sinks that list labels list these many, above this."""
        self.top_k, self.threshold = top_k, threshold

    def on_rule_events(self, events: list) -> None:
        """Rule events that came with no result (:class:`edgecam.result.RuleEvent`): the ends a stop interrupted,
        at the stop, or found in the history at start. Those that come with a result are in its extra."""

    def attach_control(self, control, cfg) -> None:
        """The camera's run-time control (:class:`edgecam.control.live.Control`) and its running config (changed
        in place by reloads and commands): the MQTT output takes commands for it."""

    def enable_rules(self, switches: dict[str, bool]) -> None:
        """Event rules switched on or off live (a command): ``switches`` maps a rule's name to on."""

    def close(self) -> None:
        """Flush and release. Safe to call more than once."""


def refusals(check: Callable[[], object]) -> list[str]:
    """The problems ``check()`` raises as an EdgecamError (a ConfigError: each of its lines); [] when it returns."""
    try:
        check()
    except ConfigError as e:
        return list(e.problems)
    except EdgecamError as e:
        return [e.message]
    return []


def iso_time(wall_time: float) -> str:
    """``wall_time`` (seconds since the epoch; 0 or less: not known, now) as ISO 8601 UTC with milliseconds."""
    t = wall_time if wall_time > 0 else time.time()
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds")
