"""EMA smoothing, label hysteresis and label-change events, driven by tables of scores."""

from __future__ import annotations

import numpy as np
import pytest

from edgecam.config.schema import SmoothingConfig
from edgecam.result import Classification, LabelChange
from edgecam.model.smoothing import Smoother

LABELS = ["background", "cat", "dog"]


def res(cat: float, dog: float, frame: int = 0) -> Classification:
    scores = np.array([0.01, cat, dog], np.float32)
    return Classification(scores=scores, labels=LABELS, model="m", frame_index=frame, wall_time=1000.0 + frame)


def feed(smoother: Smoother, steps):
    """Run (cat, dog) pairs through; return [(shown label, event or None)]."""
    out = []
    for i, (cat, dog) in enumerate(steps):
        _, event = smoother.update(res(cat, dog, i))
        out.append((smoother.label, event))
    return out


HYSTERESIS_TABLE = [
    # (cat, dog) -> shown label, label-change event expected
    ((0.50, 0.20), None, False),  # below high: nothing shown yet
    ((0.65, 0.20), "cat", True),  # rises above high: appears
    ((0.45, 0.20), "cat", False),  # between low and high: stays
    ((0.31, 0.20), "cat", False),  # still above low: stays
    ((0.29, 0.20), None, True),  # falls below low: disappears
    ((0.55, 0.20), None, False),  # back between: not enough to reappear
    ((0.20, 0.70), "dog", True),
    ((0.50, 0.45), "dog", False),  # cat is top now, but under high: dog is kept
    ((0.62, 0.35), "cat", True),  # cat above high and above dog: switch
    ((0.61, 0.60), "cat", False),
]


def test_hysteresis_table():
    s = Smoother(SmoothingConfig(mode="none", hysteresis=True, threshold_high=0.6, threshold_low=0.3))
    got = feed(s, [pair for pair, _, _ in HYSTERESIS_TABLE])
    previous = None
    for step, ((pair, want, want_event), (label, event)) in enumerate(zip(HYSTERESIS_TABLE, got)):
        assert label == want, f"step {step} {pair}: shown {label!r}, expected {want!r}"
        assert (event is not None) == want_event, f"step {step} {pair}: event {event}"
        if event is not None:
            assert isinstance(event, LabelChange)
            assert event.label == want and event.previous == previous
            assert event.frame == step and event.wall_time == 1000.0 + step
            cat, dog = pair
            assert event.score == pytest.approx({"cat": cat, "dog": dog, None: 0.0}[want])
        previous = label


THRESHOLD_TABLE = [
    ((0.50, 0.10), "cat", True),
    ((0.10, 0.45), "dog", True),
    ((0.10, 0.41), "dog", False),
    ((0.20, 0.30), None, True),
    ((0.35, 0.30), None, False),
    ((0.40, 0.30), "cat", True),
]


def test_plain_threshold_without_hysteresis():
    s = Smoother(SmoothingConfig(mode="none", hysteresis=False), threshold=0.4)
    got = feed(s, [pair for pair, _, _ in THRESHOLD_TABLE])
    assert [label for label, _ in got] == [want for _, want, _ in THRESHOLD_TABLE]
    assert [e is not None for _, e in got] == [ev for _, _, ev in THRESHOLD_TABLE]


def test_hysteresis_silences_flicker_between_close_classes():
    # A clear cat, then the top class flips every frame without either reaching threshold_high.
    flicker = [(0.65, 0.20)] + [(0.45, 0.40), (0.40, 0.48)] * 10
    plain = feed(Smoother(SmoothingConfig(mode="none", hysteresis=False), threshold=0.0), flicker)
    stable = feed(Smoother(SmoothingConfig(mode="none", hysteresis=True, threshold_high=0.6, threshold_low=0.3)),
                  flicker)
    assert sum(e is not None for _, e in plain) == 20  # an event at nearly every frame
    assert sum(e is not None for _, e in stable) == 1  # shown once, then kept
    assert {label for label, _ in stable} == {"cat"}


def test_ema_follows_a_step_and_converges():
    s = Smoother(SmoothingConfig(mode="ema", window=5))
    first = res(0.8, 0.1)
    out, _ = s.update(first)
    np.testing.assert_allclose(out.scores, first.scores)  # the first result is taken as is
    target = res(0.1, 0.8)
    tops, distances = [], []
    for i in range(40):
        r = res(0.1, 0.8, frame=i + 1)
        out, _ = s.update(r)
        tops.append(out.top.name)
        distances.append(float(np.abs(out.scores - target.scores).max()))
        assert out.frame_index == i + 1  # smoothing keeps the result's identity
    assert tops[0] == "cat"  # one frame of dog does not flip the label at once
    assert tops[-1] == "dog"
    assert all(b < a for a, b in zip(distances, distances[1:]))  # steadily closer
    assert distances[-1] < 1e-3
    np.testing.assert_allclose(first.scores, [0.01, 0.8, 0.1], atol=1e-6)  # the caller's results untouched
    np.testing.assert_allclose(r.scores, [0.01, 0.1, 0.8], atol=1e-6)


def test_ema_smooths_noise():
    rng = np.random.default_rng(0)
    s = Smoother(SmoothingConfig(mode="ema", window=10))
    raw, smooth = [], []
    for i in range(200):
        cat = float(np.clip(0.6 + rng.normal(0, 0.15), 0, 0.9))
        out, _ = s.update(res(cat, 0.05, i))
        raw.append(cat)
        smooth.append(float(out.scores[1]))
    assert np.std(smooth[20:]) < 0.5 * np.std(raw[20:])
    assert abs(np.mean(smooth[20:]) - np.mean(raw[20:])) < 0.05


def test_no_smoothing_passes_results_through():
    for cfg in (SmoothingConfig(mode="none"), SmoothingConfig(mode="ema", window=1)):
        s = Smoother(cfg)
        s.update(res(0.9, 0.05))
        r = res(0.1, 0.8)
        out, _ = s.update(r)
        np.testing.assert_array_equal(out.scores, r.scores)
