"""The ``edgecam`` subcommands, one module each, and the arguments they share.

Every module here has ``register(subparsers)``, which adds its command and
sets ``func`` to the function that runs it; :mod:`edgecam.cli` registers
them all. A command's function takes the parsed arguments,
returns the exit code and raises an :class:`edgecam.errors.EdgecamError` for
bad input (the CLI prints it in one line). Heavy modules (OpenCV, the
runtime, the pipeline) are imported inside the functions, so that a command
only pays for what it uses.

Configs: :func:`load_config` reads the config file and applies the command
line's overrides (validated together, a bad value named by its flag) before
anyone sees the result: no command edits a config after it was checked.
"""

from __future__ import annotations

import argparse
import logging

from edgecam.config import backends
from edgecam.config import schema as config_mod

logger = logging.getLogger("edgecam")

#: The flag that sets each config key, so that a bad value names the flag.
FLAGS = {
    "model.name": "--model", "model.labels": "--labels", "model.threads": "--threads",
    "model.runtime": "--runtime", "model.top_k": "--top-k", "model.crop": "--crop",
    "source.type": "--source", "source.uri": "--source", "display.mode": "--display",
    "log.path": "--log", "record.path": "--record", "source.realtime": "--realtime",
    "model.interpreters": "--interpreters", "model.backend": "--backend",
    "http.enabled": "--http", "http.host": "--http", "http.port": "--http",
    "mqtt.enabled": "--mqtt", "mqtt.host": "--mqtt", "mqtt.port": "--mqtt", "cameras": "--source",
}


def load_config(args, overrides: dict | None = None) -> config_mod.Config:
    """The config of ``--config`` (or the default file, or the defaults) with ``overrides`` applied.

    ``overrides`` maps dotted keys to values (None: the flag was not given;
    :data:`edgecam.config.schema.CLEAR`: set the key to null); every value is checked
    by the config's rules and a bad one is reported under its flag.
    """
    path = getattr(args, "config", None) or config_mod.find_default()
    cfg = config_mod.load(path)
    overrides = overrides or {}
    if cfg.cameras and overrides.get("cameras") is not None:
        logger.info("--source replaces the cameras: of %s (%s)", path, ", ".join(c.name for c in cfg.cameras))
    return config_mod.apply_overrides(cfg, overrides, FLAGS)


def model_overrides(args) -> dict:
    """The config keys the model flags (:func:`add_model_args`, ``--top-k``) set."""
    return {
        "model.name": getattr(args, "model", None),
        "model.labels": getattr(args, "labels", None),
        "model.threads": getattr(args, "threads", None),
        "model.runtime": getattr(args, "runtime", None),
        "model.top_k": getattr(args, "top_k", None),
        "model.crop": getattr(args, "crop", None),
        "model.backend": getattr(args, "backend", None),
    }


def count_or_auto(value: str):
    """argparse type: a whole number, or ``auto``."""
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {value!r}") from None


def add_runtime_crop_args(p: argparse.ArgumentParser) -> None:
    """``--runtime`` and ``--crop``, with their help (run, classify, eval, models compare...)."""
    p.add_argument("--runtime", choices=config_mod.RUNTIMES,
                   help="the TFLite interpreter to use (auto: the first one installed, in this order)")
    p.add_argument("--crop", choices=config_mod.CROPS,
                   help="how a frame becomes the model's square input: center_fraction (the centre 87.5%% of the "
                        "centred square, the default), square (the whole centred square), stretch (the whole "
                        "frame, distorted)")


def add_model_args(p: argparse.ArgumentParser) -> None:
    """``--config``, ``--model``, ``--labels``, ``--threads``, ``--runtime``, ``--crop``, ``--backend``."""
    p.add_argument("--config", help="config file (default: $EDGECAM_CONFIG, ./config.yaml, /etc/edgecam/config.yaml)")
    p.add_argument("--model", help="registry name (see 'edgecam models list') or path to a .tflite file")
    p.add_argument("--labels", help="labels file, when --model is a path")
    p.add_argument("--threads", type=count_or_auto, help="interpreter threads: auto or N")
    add_runtime_crop_args(p)
    p.add_argument("--backend", choices=backends.choices(),
                   help="where the model runs: a backend (edgecam doctor says what each is and whether it is ready "
                        "here; docs/accelerators.md); auto: an accelerator that is present and has a build of the "
                        "model, else the CPU")


def add_interpreters_arg(p: argparse.ArgumentParser) -> None:
    """``--interpreters``: for the commands that run the pipeline (run, bench)."""
    p.add_argument("--interpreters", type=count_or_auto,
                   help="interpreters side by side, each with --threads threads: auto or N "
                        "(auto: 1, or measured with --threads auto)")
