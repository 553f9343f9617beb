"""The heads on embeddings: fitting, predicting, folds, cross-validation and the unknown distance,
on synthetic clusters whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from edgecam.measure.significance import wilson_interval
from edgecam.model import heads


def clusters(n_per: int, k: int = 3, dim: int = 64, spread: float = 0.35, seed: int = 0):
    """``k`` directions in ``dim`` dimensions (the same for every ``seed``), ``n_per`` noisy points each
    (non-negative, as pooled features are)."""
    centres = np.random.default_rng(100).uniform(0, 1, (k, dim)) ** 3
    rng = np.random.default_rng(seed)
    x = np.concatenate([c + rng.normal(0, spread * c.mean(), (n_per, dim)) for c in centres])
    y = np.repeat(np.arange(k), n_per)
    return np.clip(x, 0, None).astype(np.float32), y, centres


@pytest.mark.parametrize("method", heads.METHODS)
def test_each_method_learns_separable_clusters(method):
    x, y, centres = clusters(10)
    head = heads.fit(x, y, ["a", "b", "c"], method)
    xt, yt, _ = clusters(50, seed=1)
    probs, dist = head.predict(xt)
    assert probs.shape == (150, 3) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert (probs.argmax(axis=1) == yt).mean() >= 0.95
    assert dist.shape == (150,) and np.all(dist >= -1e-6)


@pytest.mark.parametrize("method", heads.METHODS)
def test_a_single_vector_is_predicted_as_one_row(method):
    x, y, _ = clusters(5)
    probs, dist = heads.fit(x, y, ["a", "b", "c"], method).predict(x[4])
    assert probs.shape == (1, 3) and dist.shape == (1,)


def test_logreg_ignores_what_varies_in_every_class():
    """Two classes that differ in one feature while another swings widely in both (light, say): the
    distance to the class means is swamped by the swing, the regression learns to look past it."""
    rng = np.random.default_rng(3)

    def data(n):
        x = rng.uniform(0.5, 1.5, (2 * n, 128)).astype(np.float32)
        y = np.repeat([0, 1], n)
        x[y == 1, 7] += 1.5  # what tells them apart
        x[:, 3] = rng.uniform(0, 30, 2 * n)  # what does not
        return x, y

    x, y = data(40)
    xt, yt = data(200)
    acc = {m: (heads.fit(x, y, ["no", "yes"], m).predict(xt)[0].argmax(axis=1) == yt).mean() for m in heads.METHODS}
    assert acc["logreg"] >= 0.95 and acc["ncm"] < 0.7


def test_folds_are_stratified_and_cover_everything_once():
    y = np.array([0] * 10 + [1] * 7 + [2] * 3)
    fs = heads.folds(y, 3, seed=5)
    flat = np.sort(np.concatenate(fs))
    assert np.array_equal(flat, np.arange(len(y)))
    for f in fs:
        counts = np.bincount(y[f], minlength=3)
        assert counts[0] in (3, 4) and counts[1] in (2, 3) and counts[2] == 1


def test_cross_validation_predicts_every_example_from_a_head_that_never_saw_it():
    x, y, _ = clusters(10)
    x[3] = x[25]  # example 3 (class 0) is a copy of one of class 2: held out, it can only be called 2
    cv = heads.cross_validate(x, y, ["a", "b", "c"], "ncm", n_folds=5)
    assert cv.n == 30 and cv.n_folds == 5
    assert cv.predicted[3] == 2
    m = cv.confusion()
    assert m.sum() == 30 and m[0, 2] >= 1 and m.trace() == cv.correct
    lo, hi = wilson_interval(cv.correct, cv.n)
    assert lo < cv.accuracy < hi or cv.accuracy == 1.0


def test_folds_are_capped_by_the_smallest_class():
    x, y, _ = clusters(3)
    assert heads.cross_validate(x, y, ["a", "b", "c"], "ncm", n_folds=10).n_folds == 3
    with pytest.raises(ValueError, match="at least 2"):
        heads.cross_validate(x[:7], y[:7], ["a", "b", "c"], "ncm")  # class 2 has one example left


def test_the_unknown_distance_separates_a_new_kind_of_picture():
    x, y, centres = clusters(10, k=3)
    cv = heads.cross_validate(x, y, ["a", "b", "c"], "logreg")
    head = heads.fit(x, y, ["a", "b", "c"], "logreg", cv.unknown_distance())
    xt, _, _ = clusters(30, seed=1)
    _, known = head.predict(xt)
    other = np.clip(np.random.default_rng(9).uniform(0, 1, (20, 64)) ** 3, 0, None)  # other directions
    _, novel = head.predict(other)
    assert (known <= head.unknown_distance).mean() >= 0.95
    assert (novel > head.unknown_distance).all()


def test_confusion_text_lists_each_state():
    x, y, _ = clusters(4)
    text = heads.confusion_text(heads.cross_validate(x, y, ["open", "closed", "half"], "ncm"))
    lines = text.splitlines()
    assert "open" in lines[0] and lines[1].split()[0] == "open" and len(lines) == 4
    assert sum(int(v) for line in lines[1:] for v in line.split()[1:]) == 12


def test_wrong_sizes_and_methods_are_refused():
    x, y, _ = clusters(4)
    head = heads.fit(x, y, ["a", "b", "c"], "ncm")
    with pytest.raises(ValueError, match="fitted on 64"):
        head.predict(np.ones(10))
    with pytest.raises(ValueError, match="unknown method"):
        heads.fit(x, y, ["a", "b", "c"], "svm")


def test_many_states_show_the_worst_confusions_not_the_whole_matrix():
    """Issue 24: 1,000 states printed an 8 MB matrix; past CONFUSION_SHOWN states, the worst confusions."""
    from edgecam.model.heads import CONFUSION_SHOWN, WORST_SHOWN, CrossValidation, confusion_text

    k = 40
    labels = tuple(f"s{i}" for i in range(k))
    truth = np.repeat(np.arange(k), 3)
    predicted = truth.copy()
    predicted[[0, 1, 3]] = [5, 5, 7]  # s0 -> s5 twice, s1 -> s7 once
    cv = CrossValidation("ncm", labels, truth, predicted, np.zeros(len(truth), np.float32), 3)
    text = confusion_text(cv)
    assert text.splitlines() == [f"the 2 most frequent confusions of {k} states (true -> predicted: times):",
                                 "  s0 -> s5: 2", "  s1 -> s7: 1"]
    small = CrossValidation("ncm", labels[:CONFUSION_SHOWN], truth[:30] % CONFUSION_SHOWN,
                            truth[:30] % CONFUSION_SHOWN, np.zeros(30, np.float32), 3)
    assert confusion_text(small).startswith("true \\ predicted") and WORST_SHOWN == 10
