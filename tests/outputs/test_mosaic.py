"""The mosaic window of several cameras: composed on pixels, and shown under a real Xvfb."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edgecam.outputs.mosaic import NAME_BAR, compose, grid
from tests.doubles import background
from tests.xvfb import picture_box, xvfb  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parents[2]
RED, BLUE, GREEN = (0, 0, 255), (255, 0, 0), (0, 255, 0)


def plain(bgr, w=320, h=240) -> np.ndarray:
    return np.full((h, w, 3), bgr, np.uint8)


@pytest.mark.parametrize("n, cols, rows", [(1, 1, 1), (2, 2, 1), (3, 2, 2), (4, 2, 2), (5, 3, 2), (9, 3, 3)])
def test_the_grid_is_as_square_as_it_goes(n, cols, rows):
    assert grid(n) == (cols, rows)


def test_each_camera_has_its_cell_its_name_and_keeps_its_aspect():
    out = compose([("door", plain(RED)), ("yard", plain(BLUE, 640, 240)), ("gate", None)], tile_size=(320, 240))
    assert out.shape == (2 * (240 + NAME_BAR), 2 * 320, 3)
    cell_h = 240 + NAME_BAR
    assert out[NAME_BAR + 120, 160].tolist() == list(RED)  # door, top left, fills its cell (same aspect)
    # yard is twice as wide as its cell: scaled to 320x120, centred, black above and below
    assert out[NAME_BAR + 120, 320 + 160].tolist() == list(BLUE)
    assert out[NAME_BAR + 20, 320 + 160].tolist() == [0, 0, 0]
    assert out[cell_h + NAME_BAR + 10, 10].tolist() == [40, 40, 40]  # gate: no picture yet, grey
    bar = out[:NAME_BAR, :320]
    assert (bar > 200).any() and not (out[:NAME_BAR, 320 - 40:320] > 0).any()  # the name is written at the left


MOSAIC_SCRIPT = textwrap.dedent("""
    import time
    import numpy as np
    from edgecam.outputs.mosaic import Mosaic

    quit = []
    mosaic = Mosaic(["door", "yard"], "edgecam-mosaic", on_quit=lambda: quit.append(1))
    mosaic.start()
    mosaic.put("door", np.full((480, 640, 3), (0, 0, 255), np.uint8))
    mosaic.put("yard", np.full((480, 640, 3), (255, 0, 0), np.uint8))
    deadline = time.monotonic() + 60
    while not quit and time.monotonic() < deadline:
        mosaic.show()
        time.sleep(0.03)
    mosaic.close()
    print("quit" if quit else "timeout", flush=True)
""")


def test_the_mosaic_window_shows_both_cameras_side_by_side_and_quits_on_q(xvfb, tmp_path):  # noqa: F811
    env = xvfb.env({**os.environ, "PYTHONPATH": str(REPO)})
    with background([sys.executable, "-c", MOSAIC_SCRIPT], env, tmp_path) as proc:
        wid = xvfb.wait_window("edgecam-mosaic")

        def look(win):
            px, py, pw, ph = picture_box(win)
            pic = win[py:py + ph, px:px + pw]
            return [pic[ph * 3 // 5, pw // 4].tolist(), pic[ph * 3 // 5, 3 * pw // 4].tolist()]

        win = xvfb.window_pixels(wid, lambda px: look(px) == [list(RED), list(BLUE)], path=tmp_path / "mosaic.png")
        assert look(win) == [list(RED), list(BLUE)]  # door on the left, yard on the right
        xvfb.key(wid, "q")
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.strip() == "quit"


def test_the_mosaic_is_composed_again_only_when_a_picture_came():
    from types import SimpleNamespace

    from edgecam.outputs.mosaic import Mosaic

    mosaic = Mosaic(["door", "yard"])
    shown = []
    mosaic.window = SimpleNamespace(is_open=True, show=shown.append)
    mosaic.put("door", plain(RED))
    mosaic.show()
    mosaic.show()  # nothing new: the same picture, not composed again
    mosaic.put("yard", plain(BLUE))
    mosaic.show()
    assert shown[0] is shown[1] and shown[2] is not shown[1]
    assert shown[2][NAME_BAR + 240, 640 + 320].tolist() == list(BLUE)
