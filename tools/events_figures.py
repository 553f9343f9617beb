"""The figures of issue 14 (events), measured here: pre-roll memory, disk writes per event and per idle hour.

    .venv/bin/python tools/events_figures.py [--video ../shared/video/imagenet20_640x480_30fps.mp4] [--dir DIR]

1. Pre-roll memory at 640x480, 30 fps, pre_s 5: the ring's JPEG bytes (events.jpeg_quality 85) over the
   shared video's real photos (looped), its peak, and the bound (events.pre_roll_mb).
2. Disk writes (``write_bytes`` of /proc/self/io: what reached the block layer; everything the events
   write is fsynced) for one event of 10 s, with a snapshot only, and with a clip (pre_s 5, post_s 5),
   fed through the real events output at the file's 30 fps clock; and for 10 minutes of the same frames
   with no event. Per hour with one event every 10 minutes = 6 events + the idle part.

The events output runs in this process on the video's frames with results made up on a schedule (the
rule's label for 10 s): the model is not what is measured here (``edgecam bench`` with a rules config
measures the pipeline; see the issue-14 note).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edgecam.events.clips import PreRoll  # noqa: E402
from edgecam.config.events import EventRuleConfig, EventsConfig  # noqa: E402
from edgecam.events.media import jpeg  # noqa: E402
from edgecam.events.sink import EventsSink  # noqa: E402
from edgecam.camera.frame import Frame  # noqa: E402
from edgecam.result import Classification  # noqa: E402

FPS = 30.0
LABELS = ("background", "ibex")


def frames(video: Path):
    cap = cv2.VideoCapture(str(video))
    out = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        out.append(f)
    return out


def written() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError("no write_bytes in /proc/self/io")


def preroll(pictures, seconds: float = 5.0, quality: int = 85) -> dict:
    ring = PreRoll(seconds, 16 * 1024 * 1024)
    peak, sizes = 0, []
    for i in range(int(FPS * seconds * 3)):  # 15 s: the ring is full for 10 of them
        data = jpeg(pictures[i % len(pictures)], quality)
        sizes.append(len(data))
        ring.add(i / FPS, data)
        peak = max(peak, ring.bytes)
    return {"frames_in_ring": len(ring.frames), "peak_bytes": peak, "peak_mb": round(peak / 2**20, 2),
            "jpeg_kb_mean": round(float(np.mean(sizes)) / 1024, 1), "jpeg_kb_max": round(max(sizes) / 1024, 1),
            "bound_mb": 16.0}


def run(pictures, folder: Path, rule: EventRuleConfig, seconds: float, event: tuple[float, float] | None,
        clip_fps: float | None = None) -> dict:
    """Feed ``seconds`` of frames at 30 fps (the file clock) with the rule's label during ``event``."""
    sink = EventsSink(EventsConfig(rules=[rule], clip_format="avi", clip_fps=clip_fps), folder)
    sink.start()

    class File:
        live, realtime, fps = False, False, FPS

    sink.source_opened(File())
    before, wall0 = written(), time.time()
    for i in range(int(seconds * FPS)):
        t = i / FPS
        on = event is not None and event[0] <= t < event[1]
        scores = np.array([0.1, 0.9] if on else [0.9, 0.1], np.float32)
        sink.on_result(Classification(scores, LABELS, frame_index=i, wall_time=wall0 + t))
        img = pictures[i % len(pictures)]
        sink.on_frame(Frame(img, i, t, wall0 + t), img, None)
    while sink.clips is not None and sink.clips.clips:  # the clip is done when its post_s is
        time.sleep(0.05)
    sink.history.flush()
    after = written()  # start (creating the database) and close (its checkpoint) are left out
    sink.close()
    files = [p for p in folder.rglob("*") if p.is_file()]
    return {"write_bytes": after - before, "write_mb": round((after - before) / 2**20, 2),
            "files": len([p for p in files if "media" in p.parts]),
            "media_mb": round(sum(p.stat().st_size for p in files if "media" in p.parts) / 2**20, 2)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--video", default=str(REPO.parent / "shared" / "video" / "imagenet20_640x480_30fps.mp4"))
    p.add_argument("--dir", help="where to write (a disk, not tmpfs: write_bytes counts block writes)")
    args = p.parse_args()
    pictures = frames(Path(args.video))
    out = {"preroll_640x480_30fps_5s": preroll(pictures)}
    base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="edgecam-events-", dir=str(REPO)))
    snap = EventRuleConfig(name="ibex", label="ibex", cooldown_s=0)
    clip = EventRuleConfig(name="ibex", label="ibex", cooldown_s=0, clip=True, pre_s=5, post_s=5)
    # warm-up: the database is created, the first-run costs are not an event's
    run(pictures, base / "warm", snap, 2, (0.5, 1.0))
    out["idle_10_min"] = run(pictures, base / "idle", snap, 600, None)
    out["event_10s_snapshot"] = run(pictures, base / "snap", snap, 30, (10, 20))
    out["event_10s_clip_pre5_post5"] = run(pictures, base / "clip", clip, 30, (10, 20))
    out["event_10s_clip_pre5_post5_clip_fps_10"] = run(pictures, base / "clip10", clip, 30, (10, 20), clip_fps=10)
    idle_per_s = out["idle_10_min"]["write_bytes"] / 600
    # an hour with one event every 10 minutes: 6 windows of 30 s with an event, idle in between
    for kind in ("event_10s_snapshot", "event_10s_clip_pre5_post5", "event_10s_clip_pre5_post5_clip_fps_10"):
        per_hour = 6 * out[kind]["write_bytes"] + idle_per_s * (3600 - 6 * 30)
        out[f"per_hour_one_event_every_10_min_{kind[6:]}_mb"] = round(per_hour / 2**20, 2)
    out["per_hour_no_events_mb"] = round(idle_per_s * 3600 / 2**20, 3)
    print(json.dumps(out, indent=2))
    if not args.dir:
        import shutil

        shutil.rmtree(base)
    return 0


if __name__ == "__main__":
    sys.exit(main())
