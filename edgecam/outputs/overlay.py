"""The overlay: a pure function from (frame image, result, stats) to a new image.

It draws the top-k labels with scores and small bars, the display FPS, the
inference FPS and time, and the result's age, on a dark translucent panel so
the text stays readable on any picture. Sizes follow the frame height, so the
text is the same share of the picture at 320x240 and at 1920x1080.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edgecam.result import UNKNOWN, Classification

FONT = cv2.FONT_HERSHEY_SIMPLEX
TEXT = (255, 255, 255)
ACCENT = (80, 220, 80)  # BGR green, for the score bars and the shown label
DIM = (200, 200, 200)
PANEL_ALPHA = 0.6


@dataclass(frozen=True)
class OverlayStats:
    """The numbers drawn beside the labels."""

    display_fps: float = 0.0
    inference_fps: float = 0.0
    inference_ms: float = 0.0
    result_age_ms: float | None = None  # frame time minus the result's frame time

    @classmethod
    def of(cls, stats, frame, result: Classification | None, now: float | None = None) -> OverlayStats:
        """The numbers for ``frame`` shown with ``result``, from the run's :class:`edgecam.stats.Stats`."""
        return cls(
            display_fps=stats.output_rate.rate(now),
            inference_fps=stats.inference_rate.rate(now),
            inference_ms=result.inference_ms if result else 0.0,
            result_age_ms=(frame.timestamp - result.capture_time) * 1000 if result else None,
        )


def draw_overlay(image: np.ndarray, result: Classification | None, stats: OverlayStats,
                 top_k: int = 3, threshold: float = 0.0, label: str | None = None) -> np.ndarray:
    """Return a copy of ``image`` (BGR) with the overlay drawn on it.

    ``label`` is the stable label chosen by hysteresis, when there is one; it
    is highlighted among the top-k lines.
    """
    out = image.copy()
    h, w = out.shape[:2]
    scale = max(0.35, h / 480 * 0.55)
    thick = max(1, int(round(scale * 2)))
    line_h = int(round(30 * scale / 0.55 * 0.8))
    pad = int(round(line_h * 0.4))

    lines: list[tuple[str, tuple[int, int, int], float | None]] = []
    if result is not None and result.regions:
        draw_regions(out, result.regions, scale, thick)
        for state in result.regions.values():
            known = state.label not in (None, UNKNOWN)
            text = f"{state.name}: {state.label or '...'}" + (f" {state.score * 100:.0f}%" if known else "")
            lines.append((text, ACCENT if known else DIM, state.score if known else None))
    elif result is None:
        lines.append(("waiting for the first result...", DIM, None))
    else:
        shown = result.top_k(top_k, threshold)
        if not shown:
            lines.append(("(no label above threshold)", DIM, None))
        for entry in shown:
            name = entry.name.split(",")[0]  # "tabby, tabby cat" -> "tabby"
            colour = ACCENT if label is not None and entry.name == label else TEXT
            lines.append((f"{entry.score * 100:5.1f}%  {name}", colour, entry.score))
    age = "" if stats.result_age_ms is None else f"  age {stats.result_age_ms:.0f} ms"
    lines.append(
        (f"display {stats.display_fps:.1f} fps  model {stats.inference_fps:.1f} fps  "
         f"{stats.inference_ms:.1f} ms{age}", DIM, None)
    )

    widths = [cv2.getTextSize(text, FONT, scale, thick)[0][0] for text, _, _ in lines]
    bar_w = int(round(60 * scale / 0.55))
    panel_w = min(w, max(widths) + 3 * pad + bar_w)
    panel_h = min(h, len(lines) * line_h + pad)
    # Darken only the panel's pixels: blending the whole frame would cost more.
    roi = out[0:panel_h, 0:panel_w]
    cv2.convertScaleAbs(roi, dst=roi, alpha=1.0 - PANEL_ALPHA)

    y = pad + int(line_h * 0.7)
    for text, colour, score in lines:
        x = pad
        if score is not None:
            filled = int(round(bar_w * max(0.0, min(1.0, score))))
            top = y - int(line_h * 0.55)
            cv2.rectangle(out, (x, top), (x + bar_w, top + int(line_h * 0.6)), DIM, 1)
            if filled > 0:
                cv2.rectangle(out, (x, top), (x + filled, top + int(line_h * 0.6)), ACCENT, -1)
            x += bar_w + pad
        cv2.putText(out, text, (x, y), FONT, scale, colour, thick, cv2.LINE_AA)
        y += line_h
    return out


def draw_regions(out: np.ndarray, regions: dict, scale: float, thick: int) -> None:
    """Each region's box (green when it has a state, grey while unknown) with its name and state above it."""
    h, w = out.shape[:2]
    for state in regions.values():
        x0, y0 = int(round(state.box[0] * w)), int(round(state.box[1] * h))
        x1, y1 = int(round(state.box[2] * w)) - 1, int(round(state.box[3] * h)) - 1
        known = state.label not in (None, UNKNOWN)
        colour = ACCENT if known else DIM
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, thick)
        text = f"{state.name}: {state.label or '...'}"
        (tw, th), base = cv2.getTextSize(text, FONT, scale * 0.8, thick)
        ty = y0 - 4 if y0 - th - base - 4 >= 0 else y0 + th + 4  # above the box, or inside at the top edge
        cv2.rectangle(out, (x0, ty - th - 2), (min(w - 1, x0 + tw + 4), ty + base), (0, 0, 0), -1)
        cv2.putText(out, text, (x0 + 2, ty), FONT, scale * 0.8, colour, thick, cv2.LINE_AA)
