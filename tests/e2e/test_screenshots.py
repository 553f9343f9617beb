"""The screenshots in docs/: the live page, /events with no event yet and /events after the shared clip's.

``EDGECAM_UPDATE_SCREENSHOTS=1 pytest tests/e2e/test_screenshots.py`` retakes them
from real runs (``edgecam run`` with HTTP and event rules, headless chromium);
without it the test checks that they are there, readable, and small enough
for the repository. Retake them when a page changes, and commit the PNGs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import cv2
import pytest

from tests.e2e import REPO, Edgecam, free_port, run_args, shared_video, write_config

DOCS = REPO / "docs"
# The teach page's: tests/studio/test_page_browser.py retakes them.
SHOTS = ("live-page.png", "events-empty.png", "events.png", "teach-region.png", "teach-review.png",
         "teach-evidence.png", "teach-why.png")
UPDATE = os.environ.get("EDGECAM_UPDATE_SCREENSHOTS") == "1"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
MAX_BYTES = 400_000
# Rules for labels the shared clip shows (tests/e2e: imagenet20_segments.csv), with snapshots for the thumbnails;
# for_s 0: the clip shows each picture for half a second, shorter than the 1 s default.
RULES = [{"name": label.replace(" ", "_"), "label": label, "cooldown_s": 0, "min_score": 0.4, "for_s": 0}
         for label in ("ibex", "teddy", "water tower", "orange")]


@pytest.mark.skipif(UPDATE, reason="EDGECAM_UPDATE_SCREENSHOTS=1: retaking them instead")
@pytest.mark.parametrize("name", SHOTS)
def test_the_screenshot_is_in_docs(name):
    path = DOCS / name
    assert path.is_file(), f"{path} missing: EDGECAM_UPDATE_SCREENSHOTS=1 pytest {Path(__file__).relative_to(REPO)}"
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[0] >= 300 and img.shape[1] >= 600, f"{path}: not a readable screenshot"
    assert path.stat().st_size <= MAX_BYTES, f"{path}: {path.stat().st_size} bytes; keep screenshots small"


def screenshot(url: str, dest: Path, tmp_path: Path, size: str = "800,640") -> None:
    """``dest``: what headless chromium shows of ``url`` after 4 s of the page's own time."""
    shot = tmp_path / dest.name
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
         "--disable-background-networking", "--disable-component-update", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / ('profile-' + dest.stem)}", f"--window-size={size}",
         "--virtual-time-budget=4000", f"--screenshot={shot}", url],
        capture_output=True, text=True, timeout=120)
    img = cv2.imread(str(shot), cv2.IMREAD_COLOR)
    assert img is not None, f"chromium wrote no screenshot of {url} (exit {proc.returncode}): {proc.stderr[-1500:]}"
    # 5 bits a channel: invisible on a photo of a page, and the PNG half the size (the repository keeps every version)
    cv2.imwrite(str(dest), img // 8 * 8 + 4, [cv2.IMWRITE_PNG_COMPRESSION, 9])


def serve(tmp_path: Path, env: dict, photos: Path, events_dir: Path, name: str) -> tuple[Edgecam, int]:
    """``edgecam run`` on the shared cat photo (no event's label), with HTTP and the rules."""
    port = free_port()
    cfg = write_config(tmp_path / f"{name}.yaml", {
        "source": {"type": "images", "uri": str(photos), "fps": 1.0, "loop": True},
        "smoothing": {"mode": "ema", "window": 3},
        "http": {"enabled": True, "port": port},
        "events": {"dir": str(events_dir), "rules": RULES},
    })
    app = Edgecam(run_args(cfg), env, tmp_path, name=name)
    app.wait_http(port)
    return app, port


@pytest.mark.skipif(not UPDATE, reason="set EDGECAM_UPDATE_SCREENSHOTS=1 to retake docs/*.png")
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")
def test_retake_the_screenshots(shared_dir, model_env, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(shared_dir / "images" / "cat.bmp", photos / "cat.bmp")
    events_dir = tmp_path / "events"
    app, port = serve(tmp_path, model_env, photos, events_dir, "empty")
    with app:
        base = f"http://127.0.0.1:{port}"
        app.wait_until(lambda: app.get("/api/latest")[0] == 200, "a first result")
        screenshot(base + "/", DOCS / "live-page.png", tmp_path)
        screenshot(base + "/events", DOCS / "events-empty.png", tmp_path, size="800,400")
        assert app.stop() == 0, app.stderr()
    # the shared clip, at full speed, fills the history; then the page shows it
    cfg = write_config(tmp_path / "clip.yaml", {"events": {"dir": str(events_dir), "rules": RULES}})
    with Edgecam(run_args(cfg, "--source", str(shared_video(shared_dir))), model_env, tmp_path, name="clip") as clip:
        assert clip.wait(120) == 0, clip.stderr()
    app, port = serve(tmp_path, model_env, photos, events_dir, "full")
    with app:
        status, _, body = app.get("/api/events")
        assert status == 200 and b'"rule"' in body, body[:300]
        screenshot(f"http://127.0.0.1:{port}/events", DOCS / "events.png", tmp_path, size="800,700")
        assert app.stop() == 0, app.stderr()
    for name in SHOTS:
        assert (DOCS / name).stat().st_size <= MAX_BYTES, f"{name}: too big for the repository"
