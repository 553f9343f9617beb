"""The teach page in a real browser (Debian's chromium over the DevTools protocol) on a generated scene:
draw a region with the mouse, label 3 states x 10 crops with the "this is" buttons and from the review queue,
retrain, see the matrix, use the model, the region's state follows the scene, "why", undo.

``EDGECAM_UPDATE_SCREENSHOTS=1`` also writes the steps' screenshots into docs/ (docs/teach.md shows them;
tests/e2e/test_screenshots.py checks they are there).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.cdp import Browser
from tests.doubles import wait_until
from tests.scenes import REGION, Scene
from tests.studio import SceneCamera

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")
STATES = ["empty", "scooter", "tricycle"]
DOCS = Path(__file__).resolve().parents[2] / "docs"
UPDATE = os.environ.get("EDGECAM_UPDATE_SCREENSHOTS") == "1"


@pytest.fixture(scope="module")
def scene(shared_dir):
    return Scene(shared_dir / "images" / "imagenet-sample")


def shot(page, name: str, tmp_path: Path, selector: str | None = None) -> None:
    """Keep what the page shows, ``selector`` scrolled into view (in docs/ when retaking the screenshots;
    5 bits a channel keeps them small)."""
    if selector:
        page.evaluate(js(selector) + ".scrollIntoView({block: 'center'})")
        time.sleep(0.3)
    img = cv2.imdecode(np.frombuffer(page.screenshot(), np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[1] >= 600
    cv2.imwrite(str((DOCS if UPDATE else tmp_path) / name), img // 8 * 8 + 4, [cv2.IMWRITE_PNG_COMPRESSION, 9])


def js(selector: str) -> str:
    return f"document.querySelector({json.dumps(selector)})"


def draw_region(page) -> None:
    """Drag the scene's region on the picture with the mouse, name it and its states, save."""
    page.wait_for("(document.getElementById('view') || {}).naturalWidth > 0 && document.querySelector('[data-region=door]') !== null",
                  "the picture and the config's region")
    rect = page.evaluate("(() => { const b = document.getElementById('draw').getBoundingClientRect();"
                         " return [b.left, b.top, b.width, b.height]; })()")
    x, y, w, h = rect
    x0, y0, x1, y1 = REGION
    page.mouse("mousePressed", x + x0 * w, y + y0 * h)
    for f in (0.3, 0.7, 1.0):
        page.mouse("mouseMoved", x + (x0 + f * (x1 - x0)) * w, y + (y0 + f * (y1 - y0)) * h)
    page.mouse("mouseReleased", x + x1 * w, y + y1 * h)
    page.wait_for("!document.getElementById('new').hidden", "the region form")
    page.evaluate("document.getElementById('new-name').value = 'garage';"
                  "document.getElementById('new-states').value = 'empty, scooter, tricycle';"
                  "document.getElementById('save').click()")
    page.wait_for(js("[data-region=garage] [data-action=retrain]") + " !== null", "the drawn region's panel")


def label(page, cam, tmp_path) -> None:
    """Per state: 5 clicks on "this is", 5 crops of the review queue filed with a click."""
    for state in STATES:
        cam.show(state)
        time.sleep(0.6)
        for _ in range(5):
            page.evaluate(js(f"[data-region=garage] button[data-this={state}]") + ".click()")
            time.sleep(0.15)
        since = time.time()
        def new_items():
            ids = [i["id"] for i in cam.call("GET", "/api/teach/review?region=garage")[1]["items"]
                   if i["time"] >= since]
            return ids[:5] if len(ids) >= 5 else None

        items = wait_until(new_items, "5 new crops in the queue", timeout=20, interval=0.2)
        page.wait_for(" && ".join(js(f".item[data-item='{i}']") + " !== null" for i in items), "the queue shown")
        if state == "empty":
            shot(page, "teach-review.png", tmp_path, f".item[data-item='{items[-1]}']")
        for item in items:
            page.evaluate(js(f".item[data-item='{item}'] button[data-file={state}]") + ".click()")
        wait_until(lambda: cam.studio.describe()["regions"][-1]["examples"].get(state) == 10,
                   f"10 examples of {state}", timeout=10)


def test_draw_label_retrain_use_undo_in_the_browser(scene, model_env, tmp_path):
    door = {"regions": [{"name": "door", "box": [0.0, 0.0, 0.3, 0.3], "labels": ["open", "closed"]}]}
    with SceneCamera(scene, tmp_path, config=door) as cam:
        cam.studio.feeder.gap_s = 0.15  # queue crops faster than a real camera would (the test's time)
        with Browser(CHROMIUM, tmp_path, f"{cam.base}/teach?token={cam.token}") as page:
            draw_region(page)
            assert cam.studio.store.load()[0].box == pytest.approx(REGION, abs=0.01)
            shot(page, "teach-region.png", tmp_path)
            label(page, cam, tmp_path)
            page.evaluate(js("[data-region=garage] [data-action=retrain]") + ".click()")
            page.wait_for(js("[data-region=garage] table.confusion") + " !== null", "the confusion matrix", 60)
            cells = page.evaluate("[...document.querySelectorAll('[data-region=garage] table.confusion td')]"
                                  ".map(td => td.textContent)")
            assert sum(int(c) for c in cells if c.isdigit()) == 30  # 3 x 3 counts of the 30 examples
            shot(page, "teach-evidence.png", tmp_path, "[data-region=garage] table.confusion")
            page.evaluate(js("[data-region=garage] [data-action=use]") + ".click()")
            for state in ("scooter", "tricycle", "empty", "scooter"):
                cam.show(state)
                cam.wait_state("garage", state)
            page.evaluate(js("[data-region=garage] details.why summary") + ".click()")
            page.wait_for(js("[data-region=garage] details.why .thumbs img") + " !== null", "the nearest examples")
            shot(page, "teach-why.png", tmp_path, "[data-region=garage] details.why")
            page.evaluate(js("[data-region=garage] [data-action=undo]") + ".click()")
            wait_until(lambda: cam.studio.versions("garage").current() is None, "undo", timeout=10)
            wait_until(lambda: cam.region_label("garage") not in STATES + [None], "the base model back", timeout=15)
