"""Class rules (allow, deny, thresholds per label) for a model's classes, and the whole picture's path."""

from __future__ import annotations

import numpy as np
import pytest

from edgecam.config.schema import SmoothingConfig
from edgecam.result import Classification
from edgecam.model.rules import ClassRules
from edgecam.model.smoothing import Smoother

LABELS = ("background", "cat", "dog", "fox")


def test_build_turns_names_into_indices_and_names_what_is_not_a_class():
    rules, problems = ClassRules.build(LABELS, allow=["cat", "dog"], deny=["dog"], thresholds={"cat": 0.7},
                                       default=0.2, where="model", model="m")
    assert problems == []
    assert rules.allowed.tolist() == [False, True, False, False] and dict(rules.floors) == {1: 0.7}
    assert rules.active and rules.floor(1) == 0.7 and rules.floor(3) == 0.2
    _, problems = ClassRules.build(LABELS, allow=["kat"], thresholds={"wolf": 0.5}, where="regions[2]", model="m")
    assert problems == ["regions[2].allow: 'kat' is not a class of m (background, cat, dog, fox)",
                        "regions[2].thresholds: 'wolf' is not a class of m (background, cat, dog, fox)"]
    assert not ClassRules.build(LABELS, default=0.5)[0].active  # a plain threshold is the smoother's


@pytest.mark.parametrize("index,score,ok", [(1, 0.8, True), (1, 0.6, False), (2, 0.9, False), (3, 0.3, True),
                                            (3, 0.1, False)])
def test_passes(index, score, ok):
    rules, _ = ClassRules.build(LABELS, deny=["dog"], thresholds={"cat": 0.7}, default=0.2)
    assert rules.passes(index, score) is ok


def test_mask_zeroes_what_may_not_be_shown():
    rules, _ = ClassRules.build(LABELS, deny=["dog", "background"])
    assert rules.mask(np.array([0.1, 0.2, 0.6, 0.1], np.float32)).tolist() == pytest.approx([0, 0.2, 0, 0.1])


@pytest.mark.parametrize("hysteresis", [False, True])
def test_a_label_needs_its_own_threshold_to_be_shown(hysteresis):
    cfg = SmoothingConfig(hysteresis=hysteresis, threshold_high=0.5, threshold_low=0.3)
    smoother = Smoother(cfg, 0.1, floors={1: 0.8})
    shown = []
    for cat, dog in [(0.7, 0.2), (0.85, 0.1), (0.2, 0.7)]:
        smoother.update(Classification(np.array([0.0, cat, dog, 0.0], np.float32), LABELS))
        shown.append(smoother.label)
    assert shown == [None, "cat", "dog"]


def test_the_whole_pictures_rules_in_the_pipeline():
    """model.deny and model.thresholds: the log never lists a denied label, a weak one is not shown."""
    from tests.doubles import FakeCamera
    from tests.pipeline.test_pipeline import LABELS as PIPELINE_LABELS, RecordingSink, SlowClassifier, make_pipeline, run

    rules, _ = ClassRules.build(PIPELINE_LABELS, deny=[PIPELINE_LABELS[2]], thresholds={PIPELINE_LABELS[3]: 0.9})
    sink = RecordingSink()
    p = make_pipeline(SlowClassifier(0.0), FakeCamera(fps=0, frames=12, live=False), [sink], "every_frame",
                      rules=rules)
    assert run(p) == 0
    assert len(sink.results) == 12
    for r in sink.results:
        assert r.scores[2] == 0.0  # denied: never a score
    events = [e.label for e in sink.events]
    assert PIPELINE_LABELS[2] not in events and PIPELINE_LABELS[3] not in events  # 0.8 < its 0.9


def test_a_class_is_named_whole_or_by_its_first_name_and_an_ambiguous_one_is_refused():
    """Issue 24, item 13: the one resolution the class rules, the events' rules and check-config share."""
    from edgecam.model.rules import AmbiguousLabel, find_label

    labels = ("crane", "hook, claw", "crane", "maillot", "maillot, tank suit", "cat, a", "cat, b")
    assert find_label("hook", labels) == (1,) and find_label("hook, claw", labels) == (1,)
    assert find_label("crane", labels) == (0, 2)  # the same label twice: both
    assert find_label("maillot", labels) == (3,)  # the whole label wins over a first name
    assert find_label("claw", labels) == ()
    with pytest.raises(AmbiguousLabel, match=r"'cat' is the first name of 2 labels \('cat, a'; 'cat, b'\)"):
        find_label("cat", labels)
    rules, problems = ClassRules.build(labels, allow=["hook", "crane"], thresholds={"hook": 0.6}, where="model",
                                       model="m")
    assert problems == [] and rules.allowed.tolist() == [True, True, True, False, False, False, False]
    assert dict(rules.floors) == {1: 0.6}
    assert ClassRules.build(labels, deny=["cat"], where="model", model="m")[1] == [
        "model.deny: 'cat' is the first name of 2 labels of m ('cat, a'; 'cat, b'); name the whole label"]
