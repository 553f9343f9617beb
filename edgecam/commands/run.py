"""``edgecam run``: classify a camera or video live, with the outputs the config and flags ask for."""

from __future__ import annotations

import logging
import sys

from edgecam.commands import add_interpreters_arg, add_model_args, load_config, model_overrides
from edgecam.errors import ConfigError

logger = logging.getLogger("edgecam")


def register(sub) -> None:
    p = sub.add_parser("run", help="classify a camera or video live: window, log, HTTP, MQTT")
    add_model_args(p)
    p.add_argument("--source", help="auto, picamera2, a webcam index (0), a video file, URL, pipeline, folder, "
                                    "or demo (a slideshow of photos)")
    p.add_argument("--demo-fallback", action="store_true",
                   help="for a first run by hand (make run passes it): when the source is auto (from the config, "
                        "not --source) and no camera is found, play the demo instead, and say which was chosen")
    add_interpreters_arg(p)
    p.add_argument("--display", choices=["auto", "window", "none"])
    p.add_argument("--log", help="write predictions as JSON Lines to this file")
    p.add_argument("--record", help="write the annotated video to this file")
    p.add_argument("--realtime", action="store_true", help="pace a file at its native FPS, as a camera would")
    p.set_defaults(func=cmd_run)


def run_overrides(args) -> dict:
    """The config keys ``run``'s flags set (None: not given)."""
    from edgecam.sources import parse_source

    o = model_overrides(args)
    if args.source is not None:
        if not args.source.strip():
            # Path("") is the current folder: an empty value would be read as a folder of images.
            raise ConfigError("--source: empty; pass auto, picamera2, a webcam index (0), a video file, "
                              "a URL, a folder of images or demo", what="bad flag")
        src = parse_source(args.source)
        o["source.type"], o["source.uri"] = src["type"], src["uri"]
    o["model.interpreters"] = args.interpreters
    o["display.mode"] = args.display
    o["log.path"] = args.log
    if args.realtime:
        o["source.realtime"] = True
    if getattr(args, "record", None):
        o["record.path"] = args.record
    return o


def cmd_run(args) -> int:
    from edgecam.app import App, StartupStopped, startup_signals

    overrides = run_overrides(args)
    cfg = load_config(args, overrides)
    logging.getLogger().setLevel(cfg.log_level)  # the CLI set the handlers up
    with startup_signals() as early:
        try:
            # An explicit --source is a choice: nothing falls back from it.
            app = App(cfg, overrides=overrides, changes_to=sys.stdout,
                      demo_fallback=args.demo_fallback and args.source is None)
        except StartupStopped as stopped:
            logger.info("%s received during start-up, stopping", stopped)
            return 0
        if app.source_note:
            print(f"edgecam: {app.source_note}", file=sys.stderr, flush=True)
        if early["hup"]:  # systemctl reload while starting: do it now
            app.pipeline.reload_requested = True
        early["starting"] = False
        return app.run()
