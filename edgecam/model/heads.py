"""Small classifiers on embeddings, fitted with NumPy alone in well under a second.

``edgecam learn`` turns a few examples per state (``DIR/<label>/*.png``) into
embeddings of the base MobileNet (:mod:`edgecam.model.embedding`) and fits one of
these heads on them:

* ``ncm``: nearest class mean. Each class is the mean of its examples'
  L2-normalised embeddings; a picture's scores are a softmax of its cosine
  similarity to each mean (``TEMPERATURE``);
* ``knn``: the ``k`` most similar examples vote, weighted by similarity;
* ``logreg``: multinomial logistic regression (softmax) on the centred,
  normalised embeddings, with an L2 penalty, by gradient descent.

Every head also says how far a picture is from what it was taught: the
cosine distance to the nearest class mean. Past ``unknown_distance`` (set from
the cross-validated distances of the examples themselves, with a margin) the
picture is like none of the examples: the region's state is ``unknown``.

:func:`cross_validate` gives the accuracy on held-out examples (stratified
k-fold) and the confusion matrix, for any method. Its interval is the caller's
to compute (:func:`edgecam.measure.significance.wilson_interval` of ``correct``
and ``n``): statistics live in edgecam.measure, which imports this package.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

METHODS = ("ncm", "knn", "logreg")
TEMPERATURE = 20.0  # ncm: softmax(similarity * TEMPERATURE); a 0.1 similarity gap is a 7:1 odds
KNN_K = 3
LOGREG_L2 = 1e-3
LOGREG_STEPS = 300
#: unknown_distance = this times the largest distance of a held-out example to its own class mean.
UNKNOWN_MARGIN = 1.5


def normalise(embeddings: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero)."""
    x = np.asarray(embeddings, np.float32)
    if x.ndim == 1:
        x = x[None, :]
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class Head:
    """A fitted head: ``method``, class ``labels``, its arrays, and the ``unknown_distance``."""

    method: str
    labels: tuple[str, ...]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    unknown_distance: float = float("inf")

    @property
    def dim(self) -> int:
        return int(self.arrays["means"].shape[1])

    def distance(self, x: np.ndarray) -> np.ndarray:
        """Cosine distance of normalised rows ``x`` to the nearest class mean."""
        means = self.arrays["means"]
        return 1.0 - (x @ means.T).max(axis=1)

    def predict(self, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities per class, distance to the nearest class mean) for each row of ``embeddings``."""
        x = normalise(embeddings)
        if x.shape[1] != self.dim:
            raise ValueError(f"embeddings have {x.shape[1]} values, the head was fitted on {self.dim}")
        a = self.arrays
        if self.method == "ncm":
            probs = _softmax((x @ a["means"].T) * TEMPERATURE)
        elif self.method == "knn":
            sims = x @ a["examples"].T
            k = min(KNN_K, sims.shape[1])
            near = np.argsort(-sims, axis=1)[:, :k]
            probs = np.zeros((x.shape[0], len(self.labels)), np.float32)
            for row in range(x.shape[0]):
                for j in near[row]:
                    probs[row, a["targets"][j]] += max(float(sims[row, j]), 1e-6)
            probs /= probs.sum(axis=1, keepdims=True)
        elif self.method == "logreg":
            probs = _softmax((x - a["center"]) @ a["weights"] + a["bias"])
        else:
            raise ValueError(f"unknown head method {self.method!r}")
        return probs.astype(np.float32), self.distance(x).astype(np.float32)


def _class_means(x: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    return normalise(np.stack([x[y == c].mean(axis=0) for c in range(k)]))


def _fit_logreg(x: np.ndarray, y: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Softmax regression by gradient descent with momentum (full batch: a few hundred examples at most)."""
    center = x.mean(axis=0, keepdims=True)
    xc = (x - center).astype(np.float64)
    scale = float(np.sqrt((xc ** 2).sum(axis=1).mean())) or 1.0
    xc /= scale  # rows of length ~1: one learning rate fits every base model
    n, d = xc.shape
    onehot = np.eye(k)[y]
    w = np.zeros((d, k))
    b = np.zeros(k)
    vw, vb = np.zeros_like(w), np.zeros_like(b)
    lr, momentum = 2.0, 0.9
    for _ in range(LOGREG_STEPS):
        p = _softmax(xc @ w + b)
        gw = xc.T @ (p - onehot) / n + LOGREG_L2 * w
        gb = (p - onehot).mean(axis=0)
        vw = momentum * vw - lr * gw
        vb = momentum * vb - lr * gb
        w += vw
        b += vb
    return {"center": center.astype(np.float32), "weights": (w / scale).astype(np.float32),
            "bias": b.astype(np.float32)}


def fit(embeddings: np.ndarray, targets: Sequence[int], labels: Sequence[str], method: str = "ncm",
        unknown_distance: float | None = None) -> Head:
    """Fit a head of ``method`` on rows ``embeddings`` with class indices ``targets`` into ``labels``."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    x = normalise(embeddings)
    y = np.asarray(targets, np.int64)
    k = len(labels)
    arrays = {"means": _class_means(x, y, k).astype(np.float32)}
    if method == "knn":
        arrays.update(examples=x.astype(np.float32), targets=y.astype(np.int32))
    elif method == "logreg":
        arrays.update(_fit_logreg(x, y, k))
    head = Head(method, tuple(labels), arrays)
    if unknown_distance is not None:
        head.unknown_distance = float(unknown_distance)
    return head


def folds(targets: Sequence[int], n_folds: int, seed: int = 0) -> list[np.ndarray]:
    """Stratified folds: each class's examples dealt round-robin (after a seeded shuffle) into ``n_folds``."""
    y = np.asarray(targets)
    rng = np.random.default_rng(seed)
    out: list[list[int]] = [[] for _ in range(n_folds)]
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        rng.shuffle(members)
        start = int(rng.integers(n_folds))  # so that small classes do not all fill fold 0 first
        for i, m in enumerate(members):
            out[(start + i) % n_folds].append(int(m))
    return [np.array(sorted(f), np.int64) for f in out if f]


@dataclass
class CrossValidation:
    """Held-out predictions of one method over all examples."""

    method: str
    labels: tuple[str, ...]
    targets: np.ndarray
    predicted: np.ndarray
    own_distance: np.ndarray  # each held-out example's distance to its own class mean (fitted without it)
    n_folds: int

    @property
    def n(self) -> int:
        return int(self.targets.shape[0])

    @property
    def correct(self) -> int:
        return int((self.targets == self.predicted).sum())

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else 0.0

    def confusion(self) -> np.ndarray:
        """Rows: the true class; columns: the predicted one."""
        k = len(self.labels)
        m = np.zeros((k, k), np.int64)
        for t, p in zip(self.targets, self.predicted):
            m[t, p] += 1
        return m

    def unknown_distance(self) -> float:
        """The threshold past which a picture is ``unknown``: ``UNKNOWN_MARGIN`` x the largest held-out distance."""
        return float(self.own_distance.max() * UNKNOWN_MARGIN) if self.n else float("inf")


def cross_validate(embeddings: np.ndarray, targets: Sequence[int], labels: Sequence[str], method: str,
                   n_folds: int = 5, seed: int = 0) -> CrossValidation:
    """Stratified k-fold cross-validation of ``method`` (every example is predicted once, by a head fitted
    without it). ``n_folds`` is capped at the smallest class's size (leave-one-out per class at worst)."""
    x = normalise(embeddings)
    y = np.asarray(targets, np.int64)
    smallest = int(np.bincount(y, minlength=len(labels)).min())
    if smallest < 2:
        raise ValueError("every class needs at least 2 examples to cross-validate")
    n_folds = max(2, min(n_folds, smallest))
    predicted = np.full(y.shape, -1, np.int64)
    own = np.zeros(y.shape, np.float32)
    for test in folds(y, n_folds, seed):
        train = np.setdiff1d(np.arange(len(y)), test)
        head = fit(x[train], y[train], labels, method)
        probs, _ = head.predict(x[test])
        predicted[test] = probs.argmax(axis=1)
        own[test] = 1.0 - (x[test] * head.arrays["means"][y[test]]).sum(axis=1)
    return CrossValidation(method, tuple(labels), y, predicted, own, n_folds)


#: Up to this many states the whole confusion matrix is shown (and stored); more, the worst confusions only.
CONFUSION_SHOWN = 20
WORST_SHOWN = 10


def confusion_text(cv: CrossValidation) -> str:
    """The confusion matrix as aligned text (rows: true state, columns: predicted); with more than
    :data:`CONFUSION_SHOWN` states (1,000 states made an 8 MB matrix), the most frequent confusions instead."""
    m = cv.confusion()
    names = list(cv.labels)
    if len(names) > CONFUSION_SHOWN:
        off = m.copy()
        np.fill_diagonal(off, 0)
        order = np.argsort(off, axis=None)[::-1][:WORST_SHOWN]
        pairs = [(int(i), int(j)) for i, j in zip(*np.unravel_index(order, off.shape)) if off[i, j] > 0]
        if not pairs:
            return f"no confusions between the {len(names)} states"
        return (f"the {len(pairs)} most frequent confusions of {len(names)} states (true -> predicted: times):\n"
                + "\n".join(f"  {names[i]} -> {names[j]}: {int(off[i, j])}" for i, j in pairs))
    w = max(6, *(len(n) for n in names)) + 2
    lines = ["true \\ predicted".ljust(w + 2) + "".join(n.rjust(w) for n in names)]
    for name, row in zip(names, m):
        lines.append(f"  {name}".ljust(w + 2) + "".join(str(int(v)).rjust(w) for v in row))
    return "\n".join(lines)
