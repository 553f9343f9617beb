"""The review queue on disk: its size never above the cap, oldest out first, kept across restarts; the drawn
regions' file; the head versions' use and undo."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgecam.studio.drawn import BadRegion, DrawnRegion, RegionStore
from edgecam.studio.review import ReviewQueue
from edgecam.studio.versions import KEEP, Versions


def test_the_queue_never_goes_over_its_cap_and_drops_the_oldest(tmp_path):
    cap = 20_000
    q = ReviewQueue(tmp_path / "review", cap)
    rng = np.random.default_rng(1)
    ids = []
    for n in range(300):
        png = bytes(rng.integers(0, 256, int(rng.integers(100, 3000)), dtype=np.uint8))
        ids.append(q.add("garage" if n % 2 else "door", png, {"guess": "x", "reason": "margin"}, when=1e9 + n))
        assert q.disk_bytes() <= cap and q.total == q.disk_bytes()
    kept = {i["id"] for i in q.items()} | {i["id"] for i in q.items("door")}
    assert ids[-1] in kept and ids[0] not in kept and q.dropped > 0
    # the newest ones are the ones kept, in order
    survivors = [i for i in ids if q.region_of(i)]
    assert survivors == ids[len(ids) - len(survivors):]


def test_an_item_bigger_than_the_cap_is_refused_and_nothing_else_goes(tmp_path):
    q = ReviewQueue(tmp_path / "review", 1000)
    first = q.add("garage", b"x" * 400, {})
    assert q.add("garage", b"x" * 5000, {}) is None
    assert q.region_of(first) == "garage"


def test_a_restart_finds_the_queue_and_a_smaller_cap_trims_it(tmp_path):
    q = ReviewQueue(tmp_path / "review", 100_000)
    ids = [q.add("garage", b"p" * 1000, {"guess": "car"}, when=1e9 + n) for n in range(20)]
    again = ReviewQueue(tmp_path / "review", 100_000)
    assert [i["id"] for i in again.items("garage")] == ids[::-1] and again.items()[0]["guess"] == "car"
    small = ReviewQueue(tmp_path / "review", 5_500)
    assert small.disk_bytes() <= 5_500 and small.region_of(ids[-1]) and not small.region_of(ids[0])


def test_filing_moves_the_crop_and_bad_ids_touch_nothing(tmp_path):
    q = ReviewQueue(tmp_path / "review", 100_000)
    item = q.add("garage", b"png-bytes", {})
    dest = tmp_path / "examples" / "garage" / "car" / f"review-{item}.png"
    assert q.take(item, dest) == dest and dest.read_bytes() == b"png-bytes"
    assert q.take(item, dest) is None and q.total == 0 and q.disk_bytes() == 0
    for bad in ("../../x", "", "20260101-000000.000-000001/../x"):
        assert q.take(bad, dest) is None and not q.discard(bad) and q.picture(bad) is None


def test_drawn_regions_are_kept_and_a_damaged_entry_is_left_out(tmp_path):
    store = RegionStore(tmp_path, "main")
    store.put(DrawnRegion("garage", (0.5, 0.3, 0.95, 0.95), ("empty", "car")))
    store.put(DrawnRegion("gate", (0.1, 0.1, 0.3, 0.3), ("open", "shut")))
    store.put(DrawnRegion("garage", (0.4, 0.3, 0.95, 0.95), ("empty", "car", "bike")))  # edited
    assert [(r.name, r.labels) for r in store.load()] == [("gate", ("open", "shut")), ("garage", ("empty", "car",
                                                                                                   "bike"))]
    data = json.loads(store.path.read_text())
    data.append({"name": "bad/name", "box": [0, 0, 1, 1], "labels": ["a", "b"]})
    store.path.write_text(json.dumps(data))
    assert [r.name for r in store.load()] == ["gate", "garage"]
    with pytest.raises(BadRegion, match="config file"):
        store.put(DrawnRegion("door", (0, 0, 1, 1), ("a", "b")), config_names={"door"})
    assert store.delete("gate") and not store.delete("gate")


def test_use_keeps_the_last_versions_and_undo_walks_back(tmp_path):
    v = Versions(tmp_path / "garage")
    for n in range(1, KEEP + 3):
        v.candidate.parent.mkdir(parents=True, exist_ok=True)
        v.candidate.write_bytes(b"head %d" % n)
        assert v.use_candidate() == n and v.current() == n
    assert v.kept() == list(range(3, KEEP + 3))
    assert v.undo() == KEEP + 1 and v.current() == KEEP + 1
    with pytest.raises(FileNotFoundError):
        v.use_candidate()
    while v.current() is not None:
        v.undo()  # back past the versions no longer kept: those are skipped
    with pytest.raises(LookupError, match="nothing to undo"):
        v.undo()
