"""Which results go to the review queue: untaught, unknown by distance, a small margin, a flicker; one crop per
region per gap; the crops written by a thread of their own."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np

from edgecam.result import Classification, Extra, RegionChange, RegionState
from edgecam.studio.feeder import Feeder
from edgecam.studio.review import ReviewQueue
from tests.doubles import wait_until

LABELS = ("empty", "car", "bike")
BOX = (0.5, 0.5, 1.0, 1.0)


def region(labels=LABELS, head=object()):
    return SimpleNamespace(cfg=SimpleNamespace(labels=list(labels) if labels else None),
                           classifier=SimpleNamespace(head=head), box=BOX)


def result(scores, label="empty", unknown=False, changes=()):
    raw = Classification(np.array(scores, np.float32), LABELS, extra={Extra.UNKNOWN: unknown, Extra.DISTANCE: 0.1})
    state = RegionState(name="garage", box=BOX, label=label, score=max(scores), index=0, frame=1, wall_time=0.0,
                        classified=True)
    return Classification(np.zeros(0, np.float32), (), extra={Extra.REGION_RESULTS: {"garage": raw},
                                                                Extra.REGION_CHANGES: list(changes)},
                          regions={"garage": state})


def feed(feeder, res):
    feeder.on_result(res)
    pending = dict(feeder._pending)
    feeder._pending.clear()
    return pending.get("garage", {}).get("reason")


def test_the_reasons(tmp_path):
    live = {"garage": region()}
    f = Feeder(ReviewQueue(tmp_path), lambda: live, gap_s=0.0)
    assert feed(f, result([0.9, 0.05, 0.05])) is None  # sure
    assert feed(f, result([0.5, 0.42, 0.08])) == "margin"
    assert feed(f, result([0.9, 0.05, 0.05], unknown=True)) == "unknown"
    assert feed(f, result([0.9, 0.05, 0.05], label="unknown")) == "unknown"
    live["garage"] = region(head=None)
    assert feed(f, result([0.9, 0.05, 0.05])) == "untaught"
    live["garage"] = region(labels=None, head=None)  # the model's own classes are its states: not untaught
    assert feed(f, result([0.9, 0.05, 0.05])) is None
    assert f.latest("garage")["labels"] == ["empty", "car", "bike"]
    live["garage"] = region()
    flips = [RegionChange("garage", s, None, 0.9, 1, 0.0) for s in ("car", "empty", "car")]
    assert feed(f, result([0.9, 0.05, 0.05], changes=flips[:2])) is None  # two changes: not yet
    assert feed(f, result([0.9, 0.05, 0.05], changes=flips[2:])) == "flicker"


def test_one_crop_per_gap_written_by_the_writer(tmp_path):
    q = ReviewQueue(tmp_path)
    live = {"garage": region()}
    f = Feeder(q, lambda: live, gap_s=60.0)
    picture = np.full((100, 200, 3), 77, np.uint8)
    for _ in range(5):
        f.on_result(result([0.5, 0.45, 0.05]))
        f.on_frame(picture, time.time())
    f.close()
    items = wait_until(lambda: q.items("garage"), "the crop written")
    assert len(items) == 1 and items[0]["reason"] == "margin" and items[0]["guess"] == "empty"
    assert items[0]["labels"][:2] == ["empty", "car"]
