"""``edgecam collect``: save a region's crops as examples of one state, for ``edgecam learn``.

    edgecam collect --source SRC --region NAME --label open --count 20 --every 1s [--dir DIR]

Reads the source (the camera, a video, a folder) and every ``--every`` saves
the region's crop, cut from the full-resolution frame exactly as ``run``
cuts it, as ``DIR/<label>/<time>.png`` (lossless), until ``--count`` are
saved or the source ends. ``DIR`` defaults to the region's folder of the
examples (``examples_dir``/``<region>``, where the web page's buttons save
too); ``edgecam learn DIR --name NAME`` then learns from all its states.
For a file, ``--every`` counts in the file's own time (its frame rate), so a
recorded clip gives what the camera would have.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

from edgecam.camera import open_source
from edgecam.commands import load_config
from edgecam.commands.run import run_overrides
from edgecam.errors import EXIT_CONFIG, ConfigError, EdgecamError
from edgecam.names import label_problem
from edgecam.pictures import shown

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min)?\s*$")


def duration(text: str) -> float:
    """``1s``, ``500ms``, ``2``, ``1.5m`` -> seconds (argparse type)."""
    m = _DURATION.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"expected a duration such as 1s, 500ms or 2m, got {text!r}")
    value = float(m.group(1)) * {"ms": 0.001, "s": 1.0, None: 1.0, "m": 60.0, "min": 60.0}[m.group(2)]
    return value


def register(sub) -> None:
    p = sub.add_parser("collect", help="save a region's crops as examples of a state (for edgecam learn)")
    p.add_argument("--source", help="auto, picamera2, a webcam index (0), a video file, URL or folder")
    p.add_argument("--region", required=True, help="the region's name in the config's regions:")
    p.add_argument("--label", required=True, help="the state the region shows now (the subfolder's name)")
    p.add_argument("--count", type=int, default=20, help="how many examples to save (default 20)")
    p.add_argument("--every", type=duration, default=1.0, help="time between two examples (default 1s)")
    p.add_argument("--dir", metavar="DIR", help="examples folder of this region (default: examples_dir/REGION)")
    p.add_argument("--config", help="config file with the regions (default: $EDGECAM_CONFIG, ./config.yaml, ...)")
    p.set_defaults(func=cmd_collect)


def cmd_collect(args) -> int:
    # import cost: regions, the HTTP sink and teach bring cv2 and the web page, 160 ms of every `edgecam --help`
    from edgecam.model.regions import crop
    from edgecam.outputs.http import examples_dir
    from edgecam.outputs.teach import example_folder, save_example

    if args.count < 1:
        raise EdgecamError(f"--count {args.count}: expected 1 or more", EXIT_CONFIG)
    label = args.label
    problem = label_problem(label)
    if problem:
        raise EdgecamError(f"--label {label!r}: a state's name is a folder name; expected {problem}", EXIT_CONFIG)
    args.display = args.log = args.interpreters = args.record = None
    args.realtime = False
    overrides = {k: v for k, v in run_overrides(args).items() if k.startswith("source.")}
    cfg = load_config(args, overrides)
    region = next((r for r in cfg.regions if r.name == args.region), None)
    if region is None:
        known = ", ".join(r.name for r in cfg.regions) or "none"
        raise ConfigError(f"--region {args.region}: no such region in {cfg.path or 'the config'} (regions: {known}); "
                          "add it under regions: with a name and a box")
    if region.labels and label not in region.labels:
        print(f"edgecam: note: {label!r} is not among regions.{region.name}.labels ({', '.join(region.labels)})",
              file=sys.stderr)
    folder = Path(args.dir) if args.dir else Path(examples_dir(cfg)) / region.name
    source = open_source(cfg.source)
    saved, next_at, started = 0, None, time.monotonic()
    try:
        for frame in source:
            # A file's own clock (its frame rate); a camera's, the capture time.
            t = frame.timestamp if source.live or not source.fps else frame.index / source.fps
            if next_at is not None and t < next_at:
                continue
            next_at = t + args.every
            saved += 1
            path = save_example(crop(frame.image, region.box).copy(), example_folder(folder, label),
                                frame.wall_time or time.time(), saved)
            print(f"{saved}/{args.count} {shown(path)}", flush=True)
            if saved >= args.count:
                break
    finally:
        source.close()
    if saved < args.count:
        print(f"edgecam: the source ended after {saved} of {args.count} examples", file=sys.stderr)
    print(f"saved {saved} examples of {label} for region {region.name} in {shown(folder / label)} "
          f"({time.monotonic() - started:.1f} s); then: edgecam learn {shown(folder)} --name NAME")
    return 0
