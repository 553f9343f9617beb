"""``edgecam check-config [PATH]``: everything ``run`` would refuse in a config, without running it."""

from __future__ import annotations

import sys

from edgecam.config import schema as config_mod
from edgecam.config.cameras import camera_configs, source_summary
from edgecam.errors import EXIT_CONFIG, ConfigError, EdgecamError


def register(sub) -> None:
    p = sub.add_parser("check-config", help="validate a config file (exit 0 valid, 2 invalid)")
    p.add_argument("path", nargs="?", help="the config file (default: $EDGECAM_CONFIG, ./config.yaml, "
                                           "/etc/edgecam/config.yaml)")
    p.set_defaults(func=cmd_check_config)


def cmd_check_config(args) -> int:
    # Invalid is exit 2, as for every other bad input: `edgecam run` exits 2 on
    # the same config, and the service's ExecReload= relies on check-config.
    path = args.path or config_mod.find_default()
    if path is None:
        print("edgecam: no config file found (looked for $EDGECAM_CONFIG, " + ", ".join(config_mod.DEFAULT_CONFIG_PATHS) + ")",
              file=sys.stderr)
        return EXIT_CONFIG
    try:
        cfg = config_mod.load(path)
        # memory: preflight reads the events' checks (sqlite3, the history), which every command would carry
        from edgecam.pipeline import preflight

        _preflight(preflight.check, cfg)  # everything run would refuse as bad input
    except EdgecamError as e:
        print(f"edgecam: {e.message}", file=sys.stderr)
        return e.exit_code
    print(f"{path}: OK")
    for camera in camera_configs(cfg) if cfg.cameras else ():  # cameras: a line each
        print(f"camera {camera.name}: {source_summary(camera.config.source)}")
    if cfg.log.path:  # what the log costs the SD card (docs/pi-health.md)
        from edgecam.outputs.jsonlog import cost_per_day  # import cost: 11 ms of every `edgecam --help`

        print(f"log {cfg.log.path}: {cost_per_day(cfg.log.mode, cfg.model.top_k, cfg.source.fps, cfg.log.heartbeat_s)}")
    return 0


def _preflight(check, cfg) -> None:
    """``check`` (edgecam.pipeline.preflight's) of the config, or of each camera's: a problem they share is said
    once, naming them."""
    if not cfg.cameras:
        check(cfg)
        return
    found: dict[str, list[str]] = {}
    for camera in camera_configs(cfg):
        try:
            check(camera.config)
        except ConfigError as e:
            for problem in e.problems:
                found.setdefault(problem, []).append(camera.name)
    if found:
        raise ConfigError([f"camera {', '.join(names)}: {problem}" for problem, names in found.items()], cfg.path)
