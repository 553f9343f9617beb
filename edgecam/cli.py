"""The ``edgecam`` command line: the parser, logging, and one line (and an exit code) per error.

Each subcommand is a module of :mod:`edgecam.commands` (classify, eval, run,
bench, check-config, models, service) with a ``register(subparsers)``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from edgecam import __version__, native_stderr
from edgecam.errors import EXIT_CONFIG, EXIT_FAILURE, EXIT_RUNTIME, EdgecamError

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgecam", description="Real-time camera image classifier (TFLite MobileNet).")
    parser.add_argument("--version", action="version", version=f"edgecam {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks for unexpected errors, and what OpenCV/FFmpeg print themselves")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Here, after main() set the native libraries' log levels (_quiet_native_logs): nothing a command imports
    # may load OpenCV or TFLite before that.
    from edgecam.commands import bench, check_config, classify, collect, doctor, events, fleet, learn, models, run
    from edgecam.commands import service
    from edgecam.commands import eval as eval_

    for command in (classify, eval_, run, events, bench, collect, learn, check_config, models, doctor,
                    service, fleet):  # the order --help lists
        command.register(sub)
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
