"""How ``threads: auto`` picks among the layouts it measured (:mod:`edgecam.model.calibration`).

What "best" means depends on the run about to happen:

* ``every_frame`` (a file): the pipeline's throughput, frames out per second.
* ``latest`` (a live camera, or a file paced as one): the camera sets the
  pace, so of the layouts that classify (nearly) every frame the one that
  spends the least CPU per frame wins, as a Pi on battery or in a hot case
  wants; capture-to-result latency breaks ties. More interpreters are taken
  only when no single one keeps up (otherwise no frame waits for them). When
  no layout keeps up, the most results per second.

Within :data:`TOLERANCE` of the best, the layout with fewer interpreters
(less memory), then the cheaper or quicker one, is taken: smaller differences
are within what one window measures.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from edgecam.camera.capture import DropPolicy

TOLERANCE = 0.03  # closer than this to the best counts as a tie
KEEP_UP = 0.9  # latest policy: a layout that classifies this share of the camera's frames keeps up
# Several cameras on one stage (edgecam.model.scheduler): every frame of every camera (see choose()).
KEEP_UP_CAMERAS = 0.99
LATENCY_TOLERANCE = 0.10  # several cameras: a p95 latency this close to the quickest counts as a tie


@dataclass(frozen=True)
class Measurement:
    """What one layout did over a window of results (or a whole bench run)."""

    fps: float  # results per second
    cpu_ms: float  # CPU time of the whole process per result (capture, inference, outputs)
    latency_p50: float  # capture to result, ms
    latency_p95: float
    inferred: float = 1.0  # share of the captured frames that were classified (latest policy drops the rest)


def median_of(samples: list[Measurement]) -> Measurement:
    """Field by field median of several measurements of one layout."""
    return Measurement(*(statistics.median(getattr(s, f) for s in samples)
                         for f in ("fps", "cpu_ms", "latency_p50", "latency_p95", "inferred")))


def choose(policy: str, measured: dict, cameras: int = 1):
    """The layout to keep, from each candidate's (median) :class:`Measurement` (``measured``: layout ->
    measurement); see the module's docstring.

    ``cameras``: how many cameras the stage serves. Several cameras' frames often arrive together and
    wait for one another, so of the layouts that classify every frame the quickest (capture-to-result
    p95) is kept, not the cheapest: measured with 3 paced cameras, one interpreter dropped 1.3 % and
    doubled the p95 latency (37 ms against 20 with two, for 0.8 ms more CPU per frame).
    """
    if not measured:
        raise ValueError("nothing measured")
    if policy == DropPolicy.LATEST and cameras > 1:
        keepers = {lay: m for lay, m in measured.items() if m.inferred >= KEEP_UP_CAMERAS} or measured
        quickest = min(m.latency_p95 for m in keepers.values())
        near = [lay for lay, m in keepers.items() if m.latency_p95 <= quickest * (1 + LATENCY_TOLERANCE)]
        return min(near, key=lambda lay: (lay.interpreters, keepers[lay].cpu_ms, lay))
    if policy == DropPolicy.LATEST:
        keepers = {lay: m for lay, m in measured.items() if m.inferred >= KEEP_UP}
        # A second interpreter only helps when frames wait for the first: with one that
        # keeps up, it would be memory spent on measurement noise.
        single = {lay: m for lay, m in keepers.items() if lay.interpreters == 1}
        keepers = single or keepers
        if keepers:
            least = min(m.cpu_ms for m in keepers.values())
            near = [lay for lay, m in keepers.items() if m.cpu_ms <= least * (1 + TOLERANCE)]
            return min(near, key=lambda lay: (lay.interpreters, keepers[lay].latency_p50, lay))
    best = max(m.fps for m in measured.values())
    near = [lay for lay, m in measured.items() if m.fps >= best * (1 - TOLERANCE)]
    return min(near, key=lambda lay: (lay.interpreters, measured[lay].cpu_ms, lay))
