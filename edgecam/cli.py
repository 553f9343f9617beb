"""The ``edgecam`` command line: classify, eval, run, bench, models, check-config, service."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from edgecam import __version__
from edgecam import config as config_mod
from edgecam import native_stderr
from edgecam.errors import EXIT_CONFIG, EXIT_FAILURE, EXIT_RUNTIME, ConfigError, EdgecamError

logger = logging.getLogger("edgecam")


def setup_logging(level: str = "INFO") -> None:
    # Under systemd the journal adds its own timestamps.
    fmt = "%(levelname)s %(name)s: %(message)s" if os.environ.get("JOURNAL_STREAM") else \
        "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level, format=fmt, stream=sys.stderr, force=True)


def _quiet_native_logs() -> None:
    # OpenCV and TFLite print their own INFO lines to stderr; keep the terminal for ours.
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _load_config(args) -> config_mod.Config:
    path = getattr(args, "config", None) or config_mod.find_default()
    return config_mod.load(path)


#: The flag that sets each config key, so that a bad value names the flag.
FLAGS = {
    "model.name": "--model", "model.labels": "--labels", "model.threads": "--threads",
    "model.runtime": "--runtime", "model.top_k": "--top-k", "model.crop": "--crop",
    "source.type": "--source", "source.uri": "--source", "display.mode": "--display",
    "log.path": "--log", "record.path": "--record", "source.realtime": "--realtime",
    "model.interpreters": "--interpreters",
}


def _model_overrides(args) -> dict:
    return {
        "model.name": getattr(args, "model", None),
        "model.labels": getattr(args, "labels", None),
        "model.threads": getattr(args, "threads", None),
        "model.runtime": getattr(args, "runtime", None),
        "model.top_k": getattr(args, "top_k", None),
        "model.crop": getattr(args, "crop", None),
    }


def _threads(value: str):
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {value!r}") from None


def add_interpreters_arg(p: argparse.ArgumentParser) -> None:
    """``--interpreters``: for the commands that run the pipeline (run, bench)."""
    p.add_argument("--interpreters", type=_threads,
                   help="interpreters side by side, each with --threads threads: auto or N "
                        "(auto: 1, or measured with --threads auto)")


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="config file (default: $EDGECAM_CONFIG, ./config.yaml, /etc/edgecam/config.yaml)")
    p.add_argument("--model", help="registry name (see 'edgecam models list') or path to a .tflite file")
    p.add_argument("--labels", help="labels file, when --model is a path")
    p.add_argument("--threads", type=_threads, help="interpreter threads: auto or N")
    p.add_argument("--runtime", choices=["auto", "litert", "tflite-runtime", "tensorflow"])
    p.add_argument("--crop", choices=["square", "center_fraction", "stretch"])


# -- classify -------------------------------------------------------------


def cmd_classify(args) -> int:
    import cv2

    from edgecam.classifier import load_classifier

    cfg = config_mod.apply_overrides(_load_config(args), _model_overrides(args), FLAGS)
    clf = load_classifier(cfg.model)
    k = cfg.model.top_k
    out = []
    status = 0
    for path in args.images:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            print(f"edgecam: {path}: not a readable image, skipped", file=sys.stderr)
            status = EXIT_CONFIG
            continue
        result = clf.classify(image)
        top = result.top_k(k, cfg.model.threshold)
        if args.json:
            out.append({"image": path, "model": clf.name, "runtime": clf.runtime,
                        "top_k": [{"index": l.index, "label": l.name, "score": round(l.score, 6)} for l in top]})
        else:
            print(f"{path}:")
            for l in top:
                print(f"  {l.score:6.1%}  {l.name}")
    if args.json:
        print(json.dumps(out, indent=2))
    return status


# -- eval -----------------------------------------------------------------


def cmd_eval(args) -> int:
    """Accuracy with 95% intervals; with --compare, a second setting on the same photos and McNemar's test."""
    from edgecam import evaluate as ev
    from edgecam.classifier import load_classifier
    from edgecam.errors import ConfigError

    cfg_a = config_mod.apply_overrides(_load_config(args), _model_overrides(args), FLAGS)
    settings = [cfg_a.model]
    if args.compare:
        overrides = ev.parse_compare(args.compare)
        try:
            cfg_b = config_mod.apply_overrides(cfg_a, overrides)
        except ConfigError as e:
            raise ev.EvalError(f"--compare {args.compare}: {'; '.join(e.problems)}") from None
        if cfg_b.model == cfg_a.model:
            raise ev.EvalError(f"--compare {args.compare}: that is the setting already in use; nothing to compare")
        settings.append(cfg_b.model)
    photos = ev.load_photos(args.images, args.expected)
    from edgecam import registry

    for m in settings:  # a bad model name in either setting fails before anything loads
        registry.resolve(m.name, m.labels, dest_dir=m.dir)
    classifiers = [load_classifier(m) for m in settings]
    results = ev.evaluate(classifiers, photos, [m.threshold for m in settings])
    diffs = [ev.compare(results[0], results[1], k) for k in (1, 5)] if len(results) == 2 else []
    if args.json:
        if not diffs:
            print(json.dumps(results[0].to_dict()))
        else:
            print(json.dumps({"n": results[0].n, "a": results[0].to_dict(), "b": results[1].to_dict(),
                              "top1": diffs[0].to_dict(), "top5": diffs[1].to_dict()}))
        return 0
    if not diffs:
        print(ev.result_line(results[0]))
        return 0
    print(f"A  {ev.result_line(results[0])}")
    print(f"B  {ev.result_line(results[1])}")
    for d in diffs:
        print(ev.difference_line(d))
    return 0


# -- check-config ---------------------------------------------------------


def cmd_check_config(args) -> int:
    path = args.path or config_mod.find_default()
    if path is None:
        print("edgecam: no config file found (looked for $EDGECAM_CONFIG, " + ", ".join(config_mod.DEFAULT_CONFIG_PATHS) + ")",
              file=sys.stderr)
        return 1
    try:
        from edgecam import preflight

        preflight.check(config_mod.load(path))  # everything run would refuse as bad input
    except EdgecamError as e:
        print(f"edgecam: {e.message}", file=sys.stderr)
        return 1
    print(f"{path}: OK")
    return 0


# -- run ------------------------------------------------------------------


def run_overrides(args) -> dict:
    from edgecam.sources import parse_source

    o = _model_overrides(args)
    if args.source is not None:
        if not args.source.strip():
            # Path("") is the current folder: an empty value would be read as a folder of images.
            raise ConfigError("--source: empty; pass auto, picamera2, a webcam index (0), a video file, "
                              "a URL or a folder of images", what="bad flag")
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
    cfg = config_mod.apply_overrides(_load_config(args), overrides, FLAGS)
    setup_logging(cfg.log_level)
    with startup_signals() as early:
        try:
            app = App(cfg, overrides=overrides, changes_to=sys.stdout)
        except StartupStopped as stopped:
            logger.info("%s received during start-up, stopping", stopped)
            return 0
        if early["hup"]:  # systemctl reload while starting: do it now
            app.pipeline.reload_requested = True
        early["starting"] = False
        return app.run()


def add_run_parser(sub) -> None:
    p = sub.add_parser("run", help="classify a camera or video live: window, log, HTTP, MQTT")
    add_model_args(p)
    p.add_argument("--source", help="auto, picamera2, a webcam index (0), a video file, URL, pipeline or folder")
    add_interpreters_arg(p)
    p.add_argument("--display", choices=["auto", "window", "none"])
    p.add_argument("--log", help="write predictions as JSON Lines to this file")
    p.add_argument("--record", help="write the annotated video to this file")
    p.add_argument("--realtime", action="store_true", help="pace a file at its native FPS, as a camera would")
    p.set_defaults(func=cmd_run)


# -- main -----------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgecam", description="Real-time camera image classifier (TFLite MobileNet).")
    parser.add_argument("--version", action="version", version=f"edgecam {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks for unexpected errors, and what OpenCV/FFmpeg print themselves")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("classify", help="print the top-k labels of photos")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    add_model_args(p)
    p.add_argument("--top-k", type=int, dest="top_k")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("eval", help="top-1/top-5 accuracy with 95%% intervals over labelled photos; --compare two settings")
    p.add_argument("--images", required=True, help="folder of photos, or of one subfolder per class (named after its label)")
    p.add_argument("--expected", help="CSV with columns file,label_index (and optionally label); "
                                      "without it, --images holds one subfolder per class")
    add_model_args(p)
    p.add_argument("--compare", metavar="KEY=VALUE[,...]",
                   help="also evaluate this setting on the same photos and test the difference (McNemar): "
                        "model, crop, crop_fraction, threshold, labels, runtime; e.g. crop=square")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)

    add_run_parser(sub)

    from edgecam.bench import add_parser as add_bench

    add_bench(sub)

    p = sub.add_parser("check-config", help="validate a config file (exit 0 valid, 1 invalid)")
    p.add_argument("path", nargs="?")
    p.set_defaults(func=cmd_check_config)

    from edgecam import cli_models

    cli_models.register(sub)
    from edgecam.service import cli as service_cli

    service_cli.register(sub)
    return parser


def opencv_problem(exc: ImportError) -> str | None:
    """One line saying what to do when ``exc`` is OpenCV missing or failing to load, else None.

    OpenCV comes as one of two extras (``[gui]``, ``[headless]``); the GUI wheel
    fails to load on a system without desktop libraries (Pi OS Lite: "libGL.so.1:
    cannot open shared object file").
    """
    if isinstance(exc, ModuleNotFoundError) and exc.name == "cv2":
        return ("OpenCV is not installed: pip install 'edgecam[gui]' on a desktop, or 'edgecam[headless]' "
                "without one (Pi OS Lite, a service); make install picks the right one")
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    if any(f"{os.sep}cv2{os.sep}" in name for name in frames) or exc.name in ("cv2", "cv2.cv2"):
        return (f"OpenCV cannot load ({exc}); without a desktop (Pi OS Lite) use the headless build: "
                "pip uninstall opencv-python && pip install opencv-python-headless (make install picks it)")
    return None


def main(argv: list[str] | None = None) -> int:
    _quiet_native_logs()
    setup_logging(os.environ.get("EDGECAM_LOG_LEVEL", "INFO"))
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.debug and native_stderr.install():
        # Python writes to its own copy of stderr now: log there too.
        setup_logging(os.environ.get("EDGECAM_LOG_LEVEL", "INFO"))
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_CONFIG
    try:
        return int(args.func(args) or 0)
    except EdgecamError as e:
        print(f"edgecam: {e.message}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:
        problem = opencv_problem(e) if isinstance(e, ImportError) else None
        if problem is not None:
            print(f"edgecam: {problem}", file=sys.stderr)
            return EXIT_RUNTIME
        if args.debug:
            raise
        logger.debug("unexpected error", exc_info=True)
        print(f"edgecam: unexpected error: {type(e).__name__}: {e} (run with --debug for details, "
              "and please report it)", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
