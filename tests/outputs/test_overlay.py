"""The overlay as a pure function on pixels: what it changes, where, and how it scales."""

from __future__ import annotations

import numpy as np
import pytest

from edgecam.outputs.overlay import ACCENT, DIM, OverlayStats, draw_overlay
from edgecam.result import Classification

LABELS = ["background", "tabby, tabby cat", "golden retriever", "red fox, Vulpes vulpes", "goldfish"]
GREY = 100  # a flat picture: darkened it becomes 40, text (>= 200) stands out
DIM_BGR = np.array(DIM, np.uint8)


def result(top: float, index: int = 1) -> Classification:
    rest = min((1.0 - top) / (len(LABELS) - 1), top / 4)  # the others stay well below the top
    scores = np.full(len(LABELS), rest, np.float32)
    scores[index] = top
    return Classification(scores=scores, labels=LABELS, model="m", frame_index=7)


def flat(w: int, h: int, value: int = GREY) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


def panel_size(out: np.ndarray, value: int = GREY) -> tuple[int, int]:
    """(width, height) of the darkened panel at the top-left of an overlay drawn on a flat picture.

    The panel's top row and left column are padding, so they show the panel's extent.
    """
    return int((out[0, :, 0] != value).sum()), int((out[:, 0, 0] != value).sum())


def bright(region: np.ndarray) -> np.ndarray:
    return np.all(region > 150, axis=2)


def accent_pixels(out: np.ndarray) -> int:
    return int(np.all(out == ACCENT, axis=2).sum())


def green_pixels(out: np.ndarray) -> int:
    """Accent-ish pixels, anti-aliased text included."""
    b, g, r = (out[:, :, i].astype(int) for i in range(3))
    return int(((g > 120) & (g > r + 50) & (g > b + 50)).sum())


def text_lines(out: np.ndarray, panel_h: int) -> int:
    """How many separate bands of rows hold bright (text or bar outline) pixels."""
    rows = bright(out[:panel_h]).any(axis=1).astype(np.int8)
    return int((np.diff(np.concatenate([[0], rows])) == 1).sum())


def test_input_is_not_modified_and_a_new_image_is_returned():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    before = image.copy()
    out = draw_overlay(image, result(0.8), OverlayStats(30.0, 12.0, 7.5, 33.0))
    assert np.array_equal(image, before)
    assert out is not image and out.shape == image.shape and out.dtype == np.uint8
    assert not np.array_equal(out, image)


def test_panel_is_darker_and_nothing_outside_it_changes():
    rng = np.random.default_rng(2)
    image = rng.integers(60, 256, (480, 640, 3), dtype=np.uint8)
    out = draw_overlay(image, result(0.8), OverlayStats())
    pw, ph = panel_size(draw_overlay(flat(640, 480), result(0.8), OverlayStats()))
    assert 0 < pw < 640 and 0 < ph < 480
    panel_in, panel_out = image[:ph, :pw].astype(int), out[:ph, :pw].astype(int)
    assert panel_out.mean() < 0.6 * panel_in.mean()
    # The padding column is plain darkened picture: every pixel darker than it was.
    assert np.all(panel_out[:, 0] < panel_in[:, 0])
    assert np.array_equal(out[ph:, :], image[ph:, :])
    assert np.array_equal(out[:, pw:], image[:, pw:])


def test_text_pixels_are_drawn_in_the_panel():
    out = draw_overlay(flat(640, 480), result(0.8), OverlayStats(25.0, 10.0, 8.0, 20.0))
    pw, ph = panel_size(out)
    assert bright(out[:ph, :pw]).sum() > 300  # text is there, in every line
    assert not bright(out[ph:]).any()  # and nowhere else
    assert text_lines(out, ph) == 4  # top-3 labels and the stats line


def test_bar_grows_with_the_score():
    high = accent_pixels(draw_overlay(flat(640, 480), result(0.9), OverlayStats(), top_k=1))
    low = accent_pixels(draw_overlay(flat(640, 480), result(0.1), OverlayStats(), top_k=1))
    assert low > 0
    assert high > 5 * low  # 0.9 fills about nine times the bar 0.1 does


def test_shown_label_is_highlighted():
    r = result(0.8)
    plain = green_pixels(draw_overlay(flat(640, 480), r, OverlayStats(), top_k=1))
    marked = green_pixels(draw_overlay(flat(640, 480), r, OverlayStats(), top_k=1, label=LABELS[1]))
    other = green_pixels(draw_overlay(flat(640, 480), r, OverlayStats(), top_k=1, label=LABELS[2]))
    assert marked > plain + 50  # its text is drawn in the accent colour too
    assert other == plain  # a label that is not drawn highlights nothing


def test_panel_scales_with_the_frame():
    small = panel_size(draw_overlay(flat(320, 240), result(0.8), OverlayStats()))
    large = panel_size(draw_overlay(flat(1280, 960), result(0.8), OverlayStats()))
    ratio = large[1] / small[1]
    # 4x the height: the panel grows about as much (a little less: small frames keep a legible minimum).
    assert 2.5 < ratio <= 4.0
    assert large[0] > 2.5 * small[0]


def test_no_result_draws_the_waiting_line():
    out = draw_overlay(flat(640, 480), None, OverlayStats())
    pw, ph = panel_size(out)
    assert text_lines(out, ph) == 2  # "waiting ..." and the stats line
    assert accent_pixels(out) == 0  # no bars
    assert bright(out[:ph, :pw]).sum() > 100
    assert ph < panel_size(draw_overlay(flat(640, 480), result(0.8), OverlayStats()))[1]


@pytest.mark.parametrize("threshold, lines, bars", [(0.0, 4, True), (0.5, 2, True), (0.95, 2, False)])
def test_threshold_limits_the_labels_drawn(threshold, lines, bars):
    out = draw_overlay(flat(640, 480), result(0.8), OverlayStats(), top_k=3, threshold=threshold)
    assert text_lines(out, panel_size(out)[1]) == lines  # labels above it (or a "none" line) + stats
    assert (accent_pixels(out) > 0) == bars


def test_tiny_frame_is_handled():
    image = flat(40, 30)
    out = draw_overlay(image, result(0.8), OverlayStats(30, 30, 5, 10))
    assert out.shape == image.shape
    assert (out < GREY).any()


# -- regions ------------------------------------------------------------------------


def regions_result(garage="open", bins="unknown") -> Classification:
    from edgecam.result import RegionState

    states = {"garage": RegionState("garage", (0.5, 0.5, 1.0, 1.0), garage, 0.93, 1, 7, 0.0, True),
              "bins": RegionState("bins", (0.05, 0.6, 0.3, 0.95), bins, 0.4, None, 7, 0.0, True)}
    return Classification(np.zeros(0, np.float32), (), model="garage", frame_index=7, regions=states)


def test_each_region_is_a_box_green_when_it_has_a_state_grey_while_unknown():
    img = flat(640, 480)
    out = draw_overlay(img, regions_result(), OverlayStats())
    # garage: a green frame along its box (320..639 x 240..479), untouched inside
    assert np.all(out[400, 320] == ACCENT) and np.all(out[479, 500] == ACCENT)
    assert np.all(out[400, 500] == GREY)
    # bins (unknown): grey frame, no green on its edge
    edge = out[round(0.95 * 480) - 1, 40:180]
    assert not np.any(np.all(edge == ACCENT, axis=1)) and np.all(edge == DIM_BGR)
    # The panel lists the regions (no top-k of the whole picture), the known one with a bar.
    assert panel_size(out)[1] > 0 and accent_pixels(out[:80, :300]) > 0
    # The same picture with the garage unknown too has no green at all.
    out2 = draw_overlay(img, regions_result(garage="unknown"), OverlayStats())
    assert accent_pixels(out2) == 0


def test_region_names_are_written_above_their_boxes():
    img = flat(640, 480)
    out = draw_overlay(img, regions_result(), OverlayStats())
    above = out[225:238, 322:415]  # the tag over the garage box, on a black background
    green = (above[:, :, 1].astype(int) > 150) & (above[:, :, 1].astype(int) > above[:, :, 2].astype(int) + 60)
    assert (above == 0).all(axis=2).mean() > 0.2 and green.sum() > 20  # green (anti-aliased) text on black
    assert np.array_equal(draw_overlay(img, regions_result(), OverlayStats()), out)  # pure
