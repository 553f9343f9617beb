"""Classification results: top-k order, ties, threshold, limits and the JSON summary."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgecam.result import Classification, Label


def result(scores, labels=None, **kw) -> Classification:
    scores = np.asarray(scores, dtype=np.float32)
    labels = labels if labels is not None else [f"c{i}" for i in range(len(scores))]
    return Classification(scores=scores, labels=labels, **kw)


def indices(labels: list[Label]) -> list[int]:
    return [l.index for l in labels]


@pytest.mark.parametrize("scores, k, threshold, expected", [
    # best first
    ([0.1, 0.5, 0.2, 0.2], 1, 0.0, [1]),
    ([0.1, 0.5, 0.3, 0.1], 3, 0.0, [1, 2, 0]),
    # ties are broken by the lower index
    ([0.1, 0.3, 0.3, 0.3, 0.0], 2, 0.0, [1, 2]),
    ([0.3, 0.3, 0.3, 0.1], 3, 0.0, [0, 1, 2]),
    ([0.2, 0.2, 0.2, 0.2], 4, 0.0, [0, 1, 2, 3]),
    ([0.0, 0.0, 0.9, 0.0], 3, 0.0, [2, 0, 1]),
    # the threshold cuts the list (a score equal to it stays)
    ([0.1, 0.5, 0.3, 0.05], 4, 0.1, [1, 2, 0]),
    ([0.1, 0.5, 0.3, 0.05], 4, 0.3, [1, 2]),
    ([0.1, 0.5, 0.3, 0.05], 4, 0.9, []),
    # k beyond the number of classes: all of them
    ([0.1, 0.5, 0.3], 10, 0.0, [1, 2, 0]),
    # k = 0 (or less): nothing
    ([0.1, 0.5, 0.3], 0, 0.0, []),
    ([0.1, 0.5, 0.3], -1, 0.0, []),
])
def test_top_k(scores, k, threshold, expected):
    assert indices(result(scores).top_k(k, threshold)) == expected


def test_top_k_names_and_scores():
    top = result([0.1, 0.6, 0.3], ["a", "b", "c"]).top_k(2)
    assert top == [Label(1, "b", pytest.approx(0.6)), Label(2, "c", pytest.approx(0.3))]
    assert all(type(l.score) is float and type(l.index) is int for l in top)


@pytest.mark.parametrize("seed", range(5))
def test_ties_at_the_cut_resolve_by_index_on_large_outputs(seed):
    # Many equal scores straddling the k-th place: argpartition alone would pick
    # arbitrary ones among them; the result must be the lowest indices.
    rng = np.random.default_rng(seed)
    scores = np.zeros(1001, np.float32)
    tied = np.sort(rng.choice(np.arange(1, 1001), 40, replace=False))
    scores[tied] = 0.02
    scores[0] = 0.1
    got = indices(result(scores).top_k(10))
    assert got == [0, *tied[:9].tolist()]


@pytest.mark.parametrize("seed", range(5))
def test_top_k_agrees_with_a_full_stable_sort(seed):
    rng = np.random.default_rng(seed)
    scores = (rng.integers(0, 20, 1001) / 256).astype(np.float32)  # quantized: many ties
    want = sorted(range(1001), key=lambda i: (-scores[i], i))
    for k in (1, 3, 5, 50, 1001):
        assert indices(result(scores).top_k(k)) == want[:k]


IMAGENET = ["background", "tench", "goldfish", "great white shark"] + [f"class{i}" for i in range(4, 1001)]


@pytest.mark.parametrize("n, first, goldfish", [
    (1001, "background", 2),  # class 0 is "background": ImageNet class i is output i
    (1000, "tench", 1),  # no background: every output is one lower
])
def test_names_follow_the_indices_with_1000_or_1001_labels(n, first, goldfish):
    names = IMAGENET if n == 1001 else IMAGENET[1:]
    assert len(names) == n
    scores = np.zeros(n, np.float32)
    scores[goldfish] = 0.9
    scores[goldfish + 1] = 0.1
    res = result(scores, names)
    assert res.labels[0] == first
    assert [(l.index, l.name) for l in res.top_k(2)] == [(goldfish, "goldfish"), (goldfish + 1, "great white shark")]
    assert res.top.name == "goldfish"
    assert len(res.top_k(5000)) == n
    assert res.top_k(5000)[-1].name == "class1000"


def test_top_is_the_best_whatever_its_score():
    assert result([0.01, 0.02, 0.0]).top == Label(1, "c1", pytest.approx(0.02))


@pytest.mark.parametrize("scores", [
    [0.1, 0.3, 0.3, 0.3],  # a tie for the best: the lowest index
    [0.0, 0.0, 0.0],  # all equal
    [0.5],  # one class
    [0.2, float("nan"), 0.7],  # a NaN: top goes the long way, so it agrees with top_k
    [float("nan"), float("nan")],
    [],  # regions only: no scores
])
def test_top_agrees_with_top_k_of_one(scores):
    res, fresh = result(scores), result(scores)
    want = fresh.top_k(1)
    assert res.top == (want[0] if want else None)


def test_answers_are_kept_per_result_and_not_shared_with_a_replaced_one():
    import dataclasses

    res = result([0.1, 0.6, 0.3])
    first = res.top_k(2)
    first.append("changed by a caller")
    assert indices(res.top_k(2)) == [1, 2]  # the cache gives each caller its own list
    assert res.top.index == 1
    other = dataclasses.replace(res, scores=np.asarray([0.9, 0.05, 0.05], np.float32))
    assert other.top.index == 0 and indices(other.top_k(2)) == [0, 1]
    assert "_top_cache" not in repr(res)  # not part of the value


def test_latency_is_capture_to_result():
    res = result([1.0, 0.0], capture_time=100.0, result_time=100.0425)
    assert res.latency_ms == pytest.approx(42.5)


def test_to_dict():
    res = result([0.1, 0.61234567, 0.2, 0.05], ["a", "b", "c", "d"], model="m", frame_index=7,
                 capture_time=10.0, result_time=10.01236, inference_ms=3.14159)
    d = res.to_dict(k=2)
    assert d == {
        "frame": 7,
        "model": "m",
        "latency_ms": 12.36,
        "inference_ms": 3.14,
        "top_k": [{"index": 1, "label": "b", "score": 0.6123}, {"index": 2, "label": "c", "score": 0.2}],
    }
    json.dumps(d)  # plain types only
    assert [e["index"] for e in res.to_dict(k=4, threshold=0.1)["top_k"]] == [1, 2, 0]
    assert res.to_dict(k=0)["top_k"] == []


def test_result_is_frozen():
    res = result([0.5, 0.5])
    with pytest.raises(AttributeError):
        res.model = "other"
