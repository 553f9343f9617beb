"""The pipeline's inference stage: one or more interpreters, results in capture order.

With one interpreter this is a loop: take a preprocessed frame, invoke, hand
the result on. With two (``model.interpreters``, or what ``threads: auto``
measured best), each has its own thread and two frames are in flight at once;
a ticket taken with each frame makes the results leave in capture order all
the same, so the outputs never see time go backwards.

During a calibration (:mod:`edgecam.model.calibration`) the stage switches layout
between windows: the workers finish the frames they hold, the interpreters
are rebuilt for the next layout (the old ones let go first), and work goes on
with the frames waiting; none is lost.
"""

from __future__ import annotations

import logging
import threading

from edgecam.errors import EdgecamError

logger = logging.getLogger(__name__)

TICK_S = 0.1  # how often a waiting worker checks for stop or a layout switch


class InferenceStage:
    """Takes ``(frame, tensor, preprocess_ms)`` items from ``frames`` and delivers results in order.

    Args:
        classifier: the :class:`edgecam.model.classifier.Classifier` (or a stand-in
            with ``classify_prepared``; layouts other than its own need
            ``reconfigure`` and ``replica``).
        frames: the capture thread's :class:`edgecam.camera.capture.FrameBuffer`.
        deliver: ``(result, frame) -> None``, called in capture order, one call at a time.
        stop: the run's stop event; set here when a worker fails.
        layout: an :class:`edgecam.model.calibration.Layout` to run (None: the classifier as it is, one interpreter).
        calibration: an :class:`edgecam.model.calibration.Calibration` that picks layouts as results come.
        on_end: called once when the stage ends, whatever the reason.
    """

    def __init__(self, classifier, frames, deliver, stop: threading.Event, *, layout=None, calibration=None,
                 on_end=None):
        self.classifier = classifier
        self.frames = frames
        self.deliver = deliver
        self.stop = stop
        self.calibration = calibration
        self.layout = calibration.layout if calibration is not None else layout
        self.on_end = on_end
        self.error: BaseException | None = None
        self._first_error = threading.Lock()  # two interpreters failing at once: one of them is the error
        self.switches = 0
        self._take = threading.Lock()  # a frame and its ticket are taken together
        self._turn = threading.Condition()
        self._next_ticket = 0
        self._next_out = 0
        self._switch = threading.Event()
        self._pending = None
        self._next_classifier = None  # switch_classifier(): taken at the next switch
        self.stale_dropped = 0  # frames prepared for the model before a switch, not fit for the new one
        self.thread = threading.Thread(target=self._main, name="edgecam-inference", daemon=True)

    @property
    def interpreters(self) -> int:
        return self.layout.interpreters if self.layout is not None else 1

    def start(self) -> None:
        self.thread.start()

    def _main(self) -> None:
        try:
            while not self.stop.is_set():
                workers = self._configure(self.layout)
                helpers = [threading.Thread(target=self._work, args=(w,), name=f"edgecam-inference-{i + 2}",
                                            daemon=True) for i, w in enumerate(workers[1:])]
                for h in helpers:
                    h.start()
                self._work(workers[0])
                for h in helpers:
                    h.join()
                del workers, helpers  # the replicas' interpreters go before the next layout's are built
                if not self._switch.is_set():
                    break  # the source ended, or the run stops
                self._switch.clear()
                self.layout = self._pending
                if self._next_classifier is not None:
                    self.classifier, self._next_classifier = self._next_classifier, None
                self.switches += 1
        except BaseException as e:  # a failure while rebuilding interpreters
            self._failed(e)
        finally:
            if self.on_end is not None:
                self.on_end()

    def _configure(self, layout) -> list:
        clf = self.classifier
        if layout is None:
            return [clf]
        if clf.threads != layout.threads:
            clf.reconfigure(layout.threads)
        return [clf] + [clf.replica() for _ in range(layout.interpreters - 1)]

    def _failed(self, e: BaseException) -> None:
        with self._first_error:
            first = self.error is None
            if first:
                self.error = e
        if first:
            if isinstance(e, EdgecamError):  # a user-facing error: one line, no traceback
                logger.error("inference stopped: %s", e.message)
            else:
                logger.exception("inference thread failed: %s", e)
        self.stop.set()

    def _work(self, clf) -> None:
        try:
            self._loop(clf)
        except BaseException as e:
            self._failed(e)

    def _loop(self, clf) -> None:
        while not (self.stop.is_set() or self._switch.is_set()):
            with self._take:
                if self._switch.is_set():
                    return
                item = self.frames.get(timeout=TICK_S)
                if item is None:
                    if self.frames.ended:
                        return
                    continue
                if _stale(item[1], clf):
                    self.stale_dropped += 1
                    continue
                ticket = self._next_ticket
                self._next_ticket += 1
            frame, tensor, preprocess_ms = item
            result = clf.classify_prepared(tensor, frame, preprocess_ms)
            if not self._wait_turn(ticket):
                return
            try:
                self.deliver(result, frame)
                if self.calibration is not None:
                    layout = self.calibration.observe(result)
                    if layout is not None:
                        self._pending = layout
                        self._switch.set()
                        self.frames.wake()  # a worker waiting for a frame need not wait out its tick
            finally:
                with self._turn:
                    self._next_out += 1
                    self._turn.notify_all()

    def switch_classifier(self, classifier) -> None:
        """Classify with ``classifier`` from now on (a model command, :mod:`edgecam.pipeline.model_switch`).

        The workers finish the frame in hand, then the stage builds its layout again on the new model. A
        frame prepared for the old model that the new one cannot take (another input size or type) is dropped.
        """
        self._next_classifier = classifier
        self._pending = self.layout if self._pending is None or not self._switch.is_set() else self._pending
        self._switch.set()
        self.frames.wake()

    def _wait_turn(self, ticket: int) -> bool:
        """Wait until every earlier ticket's result was delivered; False if the run stops meanwhile."""
        with self._turn:
            while self._next_out != ticket:
                if self.stop.is_set():
                    return False
                self._turn.wait(TICK_S)
        return True


def _stale(tensor, clf) -> bool:
    """Whether ``tensor`` was prepared for another model than ``clf`` (its input's size or type differ)."""
    spec, shape = getattr(clf, "input_spec", None), getattr(tensor, "shape", None)
    if spec is None or shape is None or len(shape) < 2:
        return False
    return tuple(shape[:2]) != (spec.height, spec.width) or tensor.dtype != spec.dtype
