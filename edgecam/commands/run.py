"""``edgecam run``: classify a camera or video live, with the outputs the config and flags ask for."""

from __future__ import annotations

import logging
import re
import sys
from types import SimpleNamespace

from edgecam.camera import parse_source
from edgecam.commands import FLAGS, add_interpreters_arg, add_model_args, load_config, model_overrides
from edgecam.config import schema as config_mod
from edgecam.config.cameras import MAX_CAMERAS, camera_configs, device_problems
from edgecam.errors import ConfigError
from edgecam.names import CAMERA_NAME



def register(sub) -> None:
    p = sub.add_parser("run", help="classify a camera or video live: window, log, HTTP, MQTT")
    add_model_args(p)
    p.add_argument("--source", action="append", metavar="[NAME=]SRC",
                   help="auto, picamera2 (picamera2:1 the second Pi camera), a webcam index (0), a video file, URL, "
                        "pipeline, folder, or demo (a slideshow of photos); repeated, or as NAME=SRC, the cameras "
                        "(cameras: in a config; unnamed ones are cam1, cam2...)")
    p.add_argument("--demo-fallback", action="store_true",
                   help="for a first run by hand (make run passes it): when the source is auto (from the config, "
                        "not --source) and no camera is found, play the demo instead, and say which was chosen")
    add_interpreters_arg(p)
    p.add_argument("--display", choices=["auto", "window", "none"],
                   help="the live window: auto (a window when there is a display), window (a window, or an error "
                        "without a display), none (no window)")
    p.add_argument("--http", metavar="[HOST:]PORT",
                   help="serve the live page, /api and /metrics on PORT (host 127.0.0.1 unless given; "
                        "0.0.0.0:8080 to be reached from other machines; a token: http.token_file in a config)")
    p.add_argument("--mqtt", metavar="HOST[:PORT]",
                   help="publish results to the MQTT broker on HOST (port 1883 unless given)")
    p.add_argument("--log", help="write predictions as JSON Lines to this file")
    p.add_argument("--record", help="write the annotated video to this file")
    p.add_argument("--realtime", action="store_true", help="pace a file at its native FPS, as a camera would")
    p.set_defaults(func=cmd_run)


def _host_port(value: str, flag: str, port_only: bool) -> tuple[str | None, int | None]:
    """``HOST:PORT``, ``[IPv6]:PORT``, ``PORT`` (when ``port_only`` allows it) or ``HOST`` (when it does not)."""
    example = "8080, 127.0.0.1:8080 or 0.0.0.0:8080" if port_only else "localhost, broker.lan or 192.168.1.5:1883"
    text = value.strip()
    host, sep, port = text.rpartition(":") if not text.endswith("]") else ("", "", "")
    if not sep:
        host, port = (None, text) if port_only else (text, "")
    host = host.strip("[]") if host is not None else None
    if (host is not None and not host) or (port and not port.isdigit()) or (port_only and not port) or \
            (port and not 0 <= int(port) <= 65535) or (not port_only and ":" in (host or "") and not sep):
        raise ConfigError(f"{flag}: got {value!r}, expected {'[HOST:]PORT' if port_only else 'HOST[:PORT]'}, "
                          f"e.g. {example}", what="bad flag")
    return host, int(port) if port else None


_NAMED = re.compile(f"({CAMERA_NAME.pattern})=(.*)", re.S)


def split_source(value: str) -> tuple[str | None, str]:
    """``NAME=SRC`` -> (NAME, SRC), else (None, value): NAME is a camera's name, before any ``:`` or ``/`` (so that
    ``rtsp://h/s?a=b`` is a URL, not a camera named rtsp...; ``./a=b.mp4`` is the file a=b.mp4)."""
    m = _NAMED.fullmatch(value)
    return (m.group(1), m.group(2)) if m else (None, value)


def _source_keys(spec: str, flag: str) -> dict:
    """``source.type`` and ``source.uri`` of one ``--source`` value."""
    if not spec.strip():
        # Path("") is the current folder: an empty value would be read as a folder of images.
        raise ConfigError(f"{flag}: empty; pass auto, picamera2, a webcam index (0), a video file, "
                          "a URL, a folder of images or demo", what="bad flag")
    return parse_source(spec)


def source_overrides(values: list[str] | None) -> dict:
    """The config keys of ``--source`` given ``values`` (a list: it may be repeated).

    One unnamed ``--source SRC`` sets ``source.type`` and ``source.uri``, as
    ever (and clears a config's ``cameras:``); several, or ``NAME=SRC``, make
    the ``cameras:`` list (in place of the config's), each camera named NAME
    or cam1, cam2... by its place.
    """
    if not values:
        return {}
    if len(values) == 1 and split_source(values[0])[0] is None:
        src = _source_keys(values[0], "--source")
        return {"source.type": src["type"], "source.uri": src["uri"], "cameras": []}
    if len(values) > MAX_CAMERAS:
        raise ConfigError(f"--source: given {len(values)} times, expected at most {MAX_CAMERAS} cameras",
                          what="bad flag")
    cameras, named = [], {}
    for i, value in enumerate(values, 1):
        name, spec = split_source(value)
        name = name or f"cam{i}"
        if name in named:
            raise ConfigError(f"--source {value}: {name!r} names two cameras (--source {named[name]} too); "
                              "expected distinct names", what="bad flag")
        named[name] = value
        cameras.append({"name": name, "source": _source_keys(spec, f"--source {value}")})
    problems = device_problems([(f"--source {value}", SimpleNamespace(**camera["source"]))
                                for value, camera in zip(values, cameras)])
    if problems:
        raise ConfigError(problems, what="bad flag")
    return {"cameras": cameras}


def run_overrides(args) -> dict:
    """The config keys ``run``'s flags set (None: not given)."""
    o = model_overrides(args)
    if isinstance(args.source, str):  # a command with one source (collect): --source as it always was
        src = _source_keys(args.source, "--source")
        o["source.type"], o["source.uri"] = src["type"], src["uri"]
    else:
        o.update(source_overrides(args.source))
    o["model.interpreters"] = args.interpreters
    o["display.mode"] = args.display
    o["log.path"] = args.log
    if args.realtime:
        o["source.realtime"] = True
    if getattr(args, "record", None):
        o["record.path"] = args.record
    if getattr(args, "http", None) is not None:
        o["http.host"], o["http.port"] = _host_port(args.http, "--http", port_only=True)
        o["http.enabled"] = True
    if getattr(args, "mqtt", None) is not None:
        o["mqtt.host"], o["mqtt.port"] = _host_port(args.mqtt, "--mqtt", port_only=False)
        o["mqtt.enabled"] = True
    return o


def cmd_run(args) -> int:
    # import cost: the pipeline 11 ms and smoothing 6 ms of every `edgecam --help` (and cv2 when it starts)
    from edgecam.pipeline.app import App, run_restarting
    from edgecam.model.smoothing import CALM

    overrides = run_overrides(args)
    cfg = load_config(args, overrides)
    calm = (args.demo_fallback or cfg.source.type == "demo") and cfg.smoothing == config_mod.SmoothingConfig()
    if calm:  # a first run by hand, and the config chose no smoothing: one label line per real change
        overrides.update(CALM)
        cfg = config_mod.apply_overrides(cfg, CALM, FLAGS)  # not the file again: its lines were said once

    def say(note: str) -> None:  # as soon as the source is chosen, before the model's warm-up lines
        print(f"edgecam: {note}", file=sys.stderr, flush=True)
        if calm:
            print(f"edgecam: the label is smoothed over {CALM['smoothing.window']} results (shown from "
                  f"{CALM['smoothing.threshold_high']:.0%}); a 'smoothing:' section in a config sets it; "
                  f"Ctrl-C stops", file=sys.stderr, flush=True)

    logging.getLogger().setLevel(cfg.log_level)  # the CLI set the handlers up
    cameras = camera_configs(cfg)
    if len(cameras) > 1:
        return _run_cameras(args, cfg, cameras, overrides)

    def first():  # an explicit --source is a choice: nothing falls back from it
        return App(cfg, overrides=overrides, changes_to=sys.stdout,
                   demo_fallback=args.demo_fallback and args.source is None, on_source_note=say)

    def again():  # the run started again in this process (run_restarting): the config as a start reads it
        return App(load_config(args, overrides), overrides=overrides, changes_to=sys.stdout)

    return run_restarting(first, again)


def _run_cameras(args, cfg, cameras, overrides: dict) -> int:
    """Several cameras in one run (:class:`edgecam.pipeline.cameras.CamerasApp`)."""
    # import cost: as cmd_run's
    from edgecam.pipeline.app import run_restarting, want_display
    from edgecam.pipeline.cameras import CamerasApp

    def build(cfg=cfg, cameras=cameras):
        return CamerasApp([(c.name, c.config) for c in cameras], changes_to=sys.stdout,
                          display=want_display(cfg.display.mode), overrides=overrides)

    def again():  # started again in this process (run_restarting): the config as a start reads it
        fresh = load_config(args, overrides)
        return build(fresh, camera_configs(fresh))

    return run_restarting(build, again)
