"""The picture of ``edgecam models compare --plot``: top-1 against invoke time.

One point per model at (invoke p50 at its fastest thread count, top-1), a
vertical bar for the 95% interval of the top-1 and a thin horizontal whisker
to the invoke p95; the Pareto front (the models that no other model beats on
both speed and accuracy) joined by a line. The time axis is logarithmic: the
models here span 1 ms to 20 ms.

Drawn with OpenCV, which edgecam already depends on: the figure is a few
dozen primitives, and matplotlib would add about eight packages and a second
of import time on a Pi for one picture. It is drawn at twice the size and
shrunk with area averaging, which smooths the lines and the text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edgecam.pictures import write_image

WIDTH, HEIGHT = 1200, 800
_S = 2  # supersampling
_MARGIN = {"left": 120, "right": 50, "top": 90, "bottom": 110}
FRONT_BGR = (0, 140, 255)  # orange
_FAMILY_BGR = {"v1": (180, 119, 31), "v2": (44, 160, 44), "v3": (40, 39, 214)}  # blue, green, red
_OTHER_BGR = (120, 120, 120)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class Point:
    """One model on the plot."""

    name: str
    ms: float  # invoke p50
    ms_p95: float
    top1: float
    lo: float  # 95% interval of top-1
    hi: float


def pareto_front(points: Sequence[Point]) -> list[Point]:
    """The points no other point beats on both axes (faster and at least as accurate, or as fast and more
    accurate), fastest first."""
    front: list[Point] = []
    for p in sorted(points, key=lambda p: (p.ms, -p.top1)):
        if not front or p.top1 > front[-1].top1:
            front.append(p)
    return front


def family_colour(name: str) -> tuple[int, int, int]:
    n = name.lower().replace("-", "_")
    for key in ("v3", "v2", "v1"):
        if f"_{key}" in n or n.startswith(key) or f"net{key}" in n:
            return _FAMILY_BGR[key]
    return _OTHER_BGR


def _nice_log_ticks(lo: float, hi: float) -> list[float]:
    ticks = []
    for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            v = m * 10.0**e
            if lo <= v <= hi:
                ticks.append(v)
    return ticks


@dataclass(frozen=True)
class Axes:
    """Data -> pixel mapping of the plot (in final-image pixels)."""

    ms_lo: float
    ms_hi: float
    acc_lo: float
    acc_hi: float

    @classmethod
    def fit(cls, points: Sequence[Point]) -> Axes:
        ms = [p.ms for p in points] + [p.ms_p95 for p in points]
        lo, hi = min(ms), max(ms)
        lo, hi = lo / 1.5, hi * 1.5
        accs = [p.lo for p in points] + [p.hi for p in points]
        a_lo = max(0.0, math.floor(min(accs) * 10 - 0.5) / 10)
        a_hi = min(1.0, math.ceil(max(accs) * 10 + 0.3) / 10)
        return cls(lo, hi, a_lo, a_hi)

    def x(self, ms: float) -> float:
        w = WIDTH - _MARGIN["left"] - _MARGIN["right"]
        f = (math.log10(ms) - math.log10(self.ms_lo)) / (math.log10(self.ms_hi) - math.log10(self.ms_lo))
        return _MARGIN["left"] + f * w

    def y(self, acc: float) -> float:
        h = HEIGHT - _MARGIN["top"] - _MARGIN["bottom"]
        return _MARGIN["top"] + (1 - (acc - self.acc_lo) / (self.acc_hi - self.acc_lo)) * h


def _pt(x: float, y: float) -> tuple[int, int]:
    return int(round(x * _S)), int(round(y * _S))


def _text(img, text, x, y, scale=0.5, colour=(40, 40, 40), thickness=1) -> None:
    cv2.putText(img, text, _pt(x, y), _FONT, scale * _S, colour, thickness * _S, cv2.LINE_AA)


def _text_size(text: str, scale: float = 0.5, thickness: int = 1) -> tuple[int, int]:
    (w, h), _ = cv2.getTextSize(text, _FONT, scale * _S, thickness * _S)
    return w // _S, h // _S


def render(points: Sequence[Point], title: str, subtitle: str = "") -> np.ndarray:
    """The plot as a BGR image (HEIGHT x WIDTH)."""
    if not points:
        raise ValueError("nothing to plot")
    ax = Axes.fit(points)
    img = np.full((HEIGHT * _S, WIDTH * _S, 3), 255, np.uint8)
    frame = _Frame(_MARGIN["left"], WIDTH - _MARGIN["right"], _MARGIN["top"], HEIGHT - _MARGIN["bottom"])
    _draw_grid(img, ax, frame)
    front = pareto_front(points)  # under the points
    for a, b in zip(front, front[1:]):
        cv2.line(img, _pt(ax.x(a.ms), ax.y(a.top1)), _pt(ax.x(b.ms), ax.y(b.top1)), FRONT_BGR, 3 * _S, cv2.LINE_AA)
    placed = _draw_points(img, ax, points, front)
    _draw_labels(img, ax, points, placed, frame)
    _draw_titles(img, title, subtitle, frame)
    return cv2.resize(img, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class _Frame:
    """The plot area inside the margins, in output pixels."""

    left: float
    right: float
    top: float
    bottom: float


def _draw_grid(img: np.ndarray, ax: Axes, f: _Frame) -> None:
    """The grid lines, the tick labels and the frame."""
    for v in _nice_log_ticks(ax.ms_lo, ax.ms_hi):
        x = ax.x(v)
        cv2.line(img, _pt(x, f.top), _pt(x, f.bottom), (225, 225, 225), _S)
        label = f"{v:g}"
        _text(img, label, x - _text_size(label)[0] / 2, f.bottom + 22)
    step = 0.05 if ax.acc_hi - ax.acc_lo <= 0.5 else 0.1
    v = math.ceil(ax.acc_lo / step - 1e-9) * step
    while v <= ax.acc_hi + 1e-9:
        y = ax.y(v)
        cv2.line(img, _pt(f.left, y), _pt(f.right, y), (225, 225, 225), _S)
        label = f"{v:.2f}"
        _text(img, label, f.left - 12 - _text_size(label)[0], y + 6)
        v += step
    cv2.rectangle(img, _pt(f.left, f.top), _pt(f.right, f.bottom), (60, 60, 60), _S)


def _draw_points(img: np.ndarray, ax: Axes, points: Sequence[Point],
                 front: Sequence[Point]) -> list[tuple[float, float, float, float]]:
    """Each point, its interval bar and its whisker; returns the boxes the labels must not cover."""
    placed: list[tuple[float, float, float, float]] = []
    for p in points:  # whiskers and interval bars first, points over them
        c = family_colour(p.name)
        light = tuple(int(v + (255 - v) * 0.45) for v in c)
        x, y = ax.x(p.ms), ax.y(p.top1)
        x95 = ax.x(p.ms_p95)
        cv2.line(img, _pt(x, y), _pt(x95, y), light, _S, cv2.LINE_AA)
        cv2.line(img, _pt(x95, y - 4), _pt(x95, y + 4), light, _S, cv2.LINE_AA)
        cv2.line(img, _pt(x, ax.y(p.lo)), _pt(x, ax.y(p.hi)), c, 2 * _S, cv2.LINE_AA)
        for yy in (ax.y(p.lo), ax.y(p.hi)):
            cv2.line(img, _pt(x - 6, yy), _pt(x + 6, yy), c, 2 * _S, cv2.LINE_AA)
        placed += [(x - 9, y - 9, x + 9, y + 9), (x - 7, ax.y(p.hi) - 2, x + 7, ax.y(p.lo) + 2),
                   (x, y - 3, x95 + 2, y + 3)]
    for p in points:
        c = family_colour(p.name)
        x, y = ax.x(p.ms), ax.y(p.top1)
        cv2.circle(img, _pt(x, y), 8 * _S, FRONT_BGR if p in front else (255, 255, 255), -1, cv2.LINE_AA)
        cv2.circle(img, _pt(x, y), 6 * _S, c, -1, cv2.LINE_AA)
    return placed


def _draw_labels(img: np.ndarray, ax: Axes, points: Sequence[Point],
                 placed: list[tuple[float, float, float, float]], f: _Frame) -> None:
    """Each point's name and top-1, where it overlaps nothing drawn so far, on a white ground."""
    labels = []
    for p in sorted(points, key=lambda p: -p.top1):
        x, y = ax.x(p.ms), ax.y(p.top1)
        label = f"{p.name} {p.top1:.2f}"
        w, h = _text_size(label, 0.55)
        tries = [(dx, dy) for dy in (-12, h + 14, -2 * h - 12, 2 * h + 22, -3 * h - 18, 3 * h + 30)
                 for dx in (12, -w - 12, -w / 2)]
        best = None
        for dx, dy in tries:
            box = (x + dx - 3, y + dy - h - 3, x + dx + w + 3, y + dy + 5)
            if not (box[0] > f.left and box[2] < f.right and box[1] > f.top and box[3] < f.bottom):
                continue
            hits = sum(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed)
            if best is None or hits < best[0]:
                best = (hits, box)
            if hits == 0:
                break
        box = best[1] if best else (x + 12, y - 12 - h, x + 12 + w, y - 7)
        placed.append(box)
        labels.append((label, box))
    for label, box in labels:  # on a white ground, so a crossing line never hides a letter
        (x0, y0), (x1, y1) = _pt(max(box[0], 0), max(box[1], 0)), _pt(box[2], box[3])
        roi = img[y0:y1, x0:x1]
        roi[:] = (roi * 0.2 + 255 * 0.8).astype(np.uint8)
        _text(img, label, box[0] + 3, box[3] - 5, 0.55, (30, 30, 30))


def _draw_titles(img: np.ndarray, title: str, subtitle: str, f: _Frame) -> None:
    """The title, the axis names and the legend."""
    _text(img, title, f.left, 36, 0.75, (20, 20, 20), 2)
    if subtitle:
        _text(img, subtitle, f.left, 66, 0.5, (90, 90, 90))
    xl = "invoke time, ms (p50 at the fastest thread count; whisker to p95; log scale)"
    _text(img, xl, (f.left + f.right) / 2 - _text_size(xl, 0.55)[0] / 2, f.bottom + 56, 0.55)
    yl = "top-1 (95% interval)"
    (tw, th) = _text_size(yl, 0.55)
    label_img = np.full((int(th * 2.2) * _S, (tw + 10) * _S, 3), 255, np.uint8)
    _text(label_img, yl, 4, th * 1.6, 0.55)
    rot = cv2.rotate(label_img, cv2.ROTATE_90_COUNTERCLOCKWISE)
    y0 = int((f.top + f.bottom) / 2 * _S - rot.shape[0] / 2)
    x0 = int(24 * _S)
    img[y0:y0 + rot.shape[0], x0:x0 + rot.shape[1]] = rot
    legend = [(FRONT_BGR, "Pareto front: nothing is both faster and more accurate"),
              (_FAMILY_BGR["v1"], "MobileNet V1"), (_FAMILY_BGR["v2"], "MobileNet V2"),
              (_FAMILY_BGR["v3"], "MobileNet V3")]
    lx, ly = f.left + 10, f.bottom + 80
    for colour, text in legend:
        cv2.circle(img, _pt(lx, ly - 5), 6 * _S, colour, -1, cv2.LINE_AA)
        _text(img, text, lx + 12, ly, 0.5)
        lx += _text_size(text, 0.5)[0] + 40


def write_plot(path: str, points: Sequence[Point], title: str, subtitle: str = "") -> None:
    """Render and write a PNG; raises OSError when it cannot be written."""
    write_image(path, render(points, title, subtitle))
