"""Regions: crops from the full-resolution frame, when a region is due (interval, motion), the
rules and hysteresis that make its state, and the regions' classifier on a real model."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from edgecam.model import regions
from edgecam.model.classifier import Classifier
from edgecam.config.schema import RegionConfig, SmoothingConfig
from edgecam.errors import ConfigError
from edgecam.camera.frame import Frame
from edgecam.result import UNKNOWN, Classification, RegionChange

LABELS = ("open", "closed", "half")


class StubClassifier:
    """What a Region needs of a classifier: labels, input spec, and scores it was told to give."""

    def __init__(self, labels=LABELS, size=16):
        from edgecam.model.preprocess import InputSpec

        self.labels = tuple(labels)
        self.name = "stub"
        self.input_spec = InputSpec(size, size, np.uint8, 1 / 128, 128)
        self.runtime, self.threads, self.view_size = "stub", 1, (size, size)
        self.seen: list[np.ndarray] = []

    def classify_prepared(self, tensor, frame, preprocess_ms=0.0):
        self.seen.append(tensor.copy())
        return Classification(np.array([0.7, 0.2, 0.1], np.float32), self.labels, frame_index=frame.index,
                              inference_ms=1.0)


def frame(image, index=0, t=0.0) -> Frame:
    return Frame(image, index, t, 1000.0 + t)


def raw(scores, labels=LABELS, **extra) -> Classification:
    return Classification(np.array(scores, np.float32), labels, extra=extra)


def test_box_pixels_and_crop_follow_the_picture_size():
    box = (0.5, 0.25, 1.0, 0.75)
    assert regions.box_pixels(box, 640, 480) == (320, 120, 640, 360)
    assert regions.box_pixels(box, 1920, 1080) == (960, 270, 1920, 810)
    img = np.zeros((480, 640, 3), np.uint8)
    assert regions.crop(img, box).shape == (240, 320, 3)
    assert regions.crop(img, (0.0, 0.0, 0.001, 0.001)).shape == (1, 1, 3)  # never empty


def test_the_crop_comes_from_the_full_resolution_frame_not_the_lores_stream():
    img = np.zeros((480, 640, 3), np.uint8)
    img[120:360, 320:640] = (0, 0, 255)  # the box is red in the full picture...
    lores = np.full((224, 224, 3), 255, np.uint8)  # ...and white in a model-sized stream
    clf = StubClassifier(size=16)
    rc = regions.RegionClassifier([regions.Region(RegionConfig(name="a", box=[0.5, 0.25, 1.0, 0.75]), clf)])
    prepared = rc.prepare(Frame(img, 0, 0.0, 0.0, model_input=lores))
    (region, tensor, _), = prepared.items
    assert tensor.shape == (16, 16, 3)
    assert np.all(tensor == (255, 0, 0))  # RGB red: the whole box, stretched, from the full frame


def test_an_interval_spaces_the_classifications():
    clf = StubClassifier()
    region = regions.Region(RegionConfig(name="a", interval_s=1.0), clf)
    rc = regions.RegionClassifier([region])
    img = np.zeros((48, 64, 3), np.uint8)
    classified = []
    for i in range(25):  # 10 frames a second for 2.5 s
        f = frame(img, i, i * 0.1)
        result = rc.classify_prepared(rc.prepare(f), f)
        if result.extra["region_results"]:
            classified.append(i)
    assert classified == [0, 10, 20]
    assert region.skipped_interval == 22


def test_motion_classifies_only_when_the_box_changed_since_the_last_classification():
    clf = StubClassifier()
    region = regions.Region(RegionConfig(name="a", box=[0.0, 0.0, 0.5, 1.0], motion=True, motion_threshold=4.0), clf)
    rc = regions.RegionClassifier([region])
    rng = np.random.default_rng(0)
    base = rng.integers(60, 200, (240, 320, 3), dtype=np.uint8)

    def noisy(img):  # sensor noise, sigma 6: must not count as motion
        return np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)

    changed = base.copy()
    cv2.rectangle(changed, (20, 40), (140, 200), (250, 250, 250), -1)  # something came into the box
    outside = base.copy()
    cv2.rectangle(outside, (200, 40), (310, 200), (0, 0, 0), -1)  # ...or only outside it
    frames = [base] * 5 + [outside] * 5 + [changed] * 5 + [base] * 3
    classified = []
    for i, img in enumerate(frames):
        f = frame(noisy(img), i, i * 0.1)
        if rc.classify_prepared(rc.prepare(f), f).extra["region_results"]:
            classified.append(i)
    assert classified == [0, 10, 15]  # the first frame, the change inside, the change back
    assert region.skipped_motion == len(frames) - 3


def test_a_slow_drift_adds_up_until_it_counts():
    """The comparison is with the last classified picture, not the previous frame: dusk is noticed."""
    clf = StubClassifier()
    region = regions.Region(RegionConfig(name="a", motion=True, motion_threshold=4.0), clf)
    rc = regions.RegionClassifier([region])
    classified = []
    for i in range(30):
        f = frame(np.full((48, 64, 3), 200 - i, np.uint8), i, float(i))  # one grey level darker each frame
        if rc.classify_prepared(rc.prepare(f), f).extra["region_results"]:
            classified.append(i)
    assert classified == [0, 5, 10, 15, 20, 25]


def tracker(*cfgs, smoothing=None):
    rs = [regions.Region(c, StubClassifier()) for c in cfgs]
    return regions.RegionTracker(rs, smoothing or SmoothingConfig())


def step(t, scores, frame_index=0, **extra):
    result = Classification(np.zeros(0, np.float32), (), frame_index=frame_index, wall_time=5.0,
                            extra={"region_results": {"a": raw(scores, **extra)}})
    return t.update(result)


@pytest.mark.parametrize("cfg,scores,expected", [
    (dict(), [0.2, 0.7, 0.1], "closed"),
    (dict(threshold=0.8), [0.2, 0.7, 0.1], UNKNOWN),
    (dict(thresholds={"closed": 0.6}), [0.2, 0.7, 0.1], "closed"),
    (dict(threshold=0.1, thresholds={"closed": 0.9}), [0.2, 0.7, 0.1], UNKNOWN),
    (dict(deny=["closed"]), [0.2, 0.7, 0.1], "open"),
    (dict(allow=["half", "open"]), [0.2, 0.7, 0.1], "open"),
    (dict(allow=["half"], threshold=0.5), [0.2, 0.7, 0.1], UNKNOWN),
], ids=["top", "below-threshold", "class-threshold", "class-threshold-wins", "deny", "allow", "allow-below"])
def test_class_rules(cfg, scores, expected):
    t = tracker(RegionConfig(name="a", **cfg))
    states, events = step(t, scores)
    assert states["a"].label == expected
    assert events == [RegionChange(region="a", label=expected, previous=None,
                                   score=pytest.approx(states["a"].score), frame=0, wall_time=5.0)]


def test_far_from_every_taught_state_is_unknown():
    t = tracker(RegionConfig(name="a"))
    assert step(t, [0.9, 0.05, 0.05], unknown=True)[0]["a"].label == UNKNOWN
    assert step(t, [0.9, 0.05, 0.05], unknown=False)[0]["a"].label == "open"


def test_hysteresis_per_region():
    t = tracker(RegionConfig(name="a"), smoothing=SmoothingConfig(hysteresis=True, threshold_high=0.6,
                                                                     threshold_low=0.3))
    labels = [step(t, s, i)[0]["a"].label for i, s in enumerate(
        [[0.5, 0.4, 0.1], [0.7, 0.2, 0.1], [0.4, 0.35, 0.25], [0.35, 0.55, 0.1], [0.25, 0.65, 0.1]])]
    # nothing above 0.6 yet; open appears; stays at 0.4 (above 0.3); stays while closed < 0.6; closed takes over
    assert labels == [UNKNOWN, "open", "open", "open", "closed"]


def test_a_region_not_classified_keeps_its_state_and_says_so():
    t = tracker(RegionConfig(name="a"), RegionConfig(name="b"))
    first = Classification(np.zeros(0, np.float32), (), frame_index=1,
                           extra={"region_results": {"a": raw([0.1, 0.8, 0.1]), "b": raw([0.8, 0.1, 0.1])}})
    states, events = t.update(first)
    assert [e.region for e in events] == ["a", "b"]
    second = Classification(np.zeros(0, np.float32), (), frame_index=2,
                            extra={"region_results": {"b": raw([0.1, 0.1, 0.8])}})
    states, events = t.update(second)
    assert states["a"].label == "closed" and not states["a"].classified and states["a"].frame == 1
    assert states["b"].label == "half" and states["b"].classified and states["b"].frame == 2
    assert events == [RegionChange(region="b", label="half", previous="open",
                                   score=pytest.approx(0.8), frame=2, wall_time=0.0)]
    assert states["b"].to_dict() == {"label": "half", "score": 0.8, "frame": 2, "classified": True}


def test_build_shares_a_model_and_checks_the_rules_against_its_classes():
    from edgecam.config.schema import from_dict

    cfg = from_dict({"model": {"name": "m"}, "regions": [
        {"name": "a", "allow": ["open"]}, {"name": "b", "box": [0, 0, 0.5, 0.5], "on_label": "closed"}]})
    loads = []

    def load(mcfg):
        loads.append(mcfg.name)
        return StubClassifier()

    built = regions.build(cfg, load)
    assert loads == ["m"] and built[0].classifier is built[1].classifier
    bad = dataclasses.replace(cfg, regions=[dataclasses.replace(cfg.regions[0], allow=["opne"]),
                                            dataclasses.replace(cfg.regions[1], on_label="ajar")])
    with pytest.raises(ConfigError) as e:
        regions.build(bad, load)
    assert e.value.problems == ["regions[0].allow: 'opne' is not a class of m (open, closed, half)",  # as configured
                                "regions[1].on_label: 'ajar' is not one of its states (open, closed, half)"]


def test_on_a_real_model_the_region_result_is_the_crop_classified(model_cache, shared_dir, labels):
    """The cat photo pasted into a grey frame's right half: the region over it says cat, whatever the rest."""
    from edgecam.config.schema import ModelConfig
    from edgecam.model.classifier import load_classifier

    clf = load_classifier(ModelConfig(name="mobilenet_v2", dir=str(model_cache), threads=1), fetch_missing=False)
    cat = cv2.imread(str(shared_dir / "images" / "cat.bmp"))
    img = np.full((600, 1200, 3), 128, np.uint8)
    img[:, 600:] = cv2.resize(cat, (600, 600))
    rc = regions.RegionClassifier([regions.Region(RegionConfig(name="right", box=[0.5, 0, 1, 1]), clf),
                                   regions.Region(RegionConfig(name="left", box=[0, 0, 0.5, 1]), clf)])
    f = frame(img)
    result = rc.classify_prepared(rc.prepare(f), f)
    right = result.extra["region_results"]["right"]
    assert "cat" in right.top.name and right.top.score > 0.3
    assert "cat" not in result.extra["region_results"]["left"].top.name
    # The same as classifying the crop on its own with a stretch resize.
    alone = Classifier(clf.model_path, list(clf.labels), crop="stretch", threads=1).classify(img[:, 600:])
    assert np.array_equal(alone.scores, right.scores)
