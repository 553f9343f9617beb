"""The run's counters: the rate meter's sliding window (the overlay and the status line read it)."""

import random

import pytest

from edgecam.stats import RateMeter


def brute_force(times: list[float], now: float, window: float) -> float:
    inside = [t for t in times if now - t <= window]
    if len(inside) < 2:
        return 0.0
    span = inside[-1] - inside[0]
    return (len(inside) - 1) / span if span > 0 else 0.0


@pytest.mark.parametrize("seed", range(8))
def test_the_rate_is_events_over_the_window(seed):
    rng = random.Random(seed)
    meter, times, now = RateMeter(window_s=2.0), [], 0.0
    for _ in range(500):
        now += rng.choice([0.0, 0.001, 0.033, 0.1, 0.5, 2.5])  # bursts, equal times, gaps past the window
        meter.tick(now)
        times.append(now)
        asked = now + rng.choice([0.0, 0.5, 1.999, 2.0, 3.0])
        assert meter.rate(asked) == pytest.approx(brute_force(times, asked, 2.0))


@pytest.mark.parametrize("ticks, now, expected", [
    ([], 1.0, 0.0),
    ([1.0], 1.0, 0.0),  # one event: no rate yet
    ([1.0, 1.0], 1.0, 0.0),  # no time between them
    ([0.0, 0.5, 1.0], 1.0, 2.0),
    ([0.0, 0.5, 1.0], 2.5, 2.0),  # 0.0 has left the window: 0.5 .. 1.0
    ([0.0, 0.5, 1.0], 3.0, 0.0),  # only the newest is still inside it
    ([0.0, 1.0, 2.0, 3.0], 3.0, 1.0),  # 1.0 .. 3.0: two intervals in two seconds
])
def test_edges(ticks, now, expected):
    meter = RateMeter(window_s=2.0)
    for t in ticks:
        meter.tick(t)
    assert meter.rate(now) == pytest.approx(expected)
