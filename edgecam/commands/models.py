"""``edgecam models``: list, fetch, verify and compare the models of the registry.

    edgecam models list [--dir DIR]
    edgecam models fetch NAME|all|demo [--from DIR[:DIR...]] [--dir DIR] [--trust-on-first-use]
    edgecam models verify [--dir DIR]
    edgecam models compare [NAME|PATH ...] [--images DIR [--expected CSV]] [--plot PATH.png] (see edgecam.measure.compare)

Exit codes: 0 on success; failures raise an EdgecamError whose code the main
CLI exits with (2 for a download or checksum problem, 4 for an unwritable
model folder).

``fetch all`` fetches every CPU model with a known checksum (or a hash
recorded on first use) and skips, with a note, those without one unless
``--trust-on-first-use`` is given; it goes on after a failure and then fails
naming every model that could not be fetched. Accelerator builds (Coral, AI
Camera, Hailo) are fetched by name: a Pi needs only the one its accelerator runs.

``fetch demo`` fetches the photos of the registry's ``photos:`` section, which
``edgecam run --source demo`` plays, into the ``demo`` folder of the model folder.

``verify`` fails (exit 2) when a downloaded model or its labels does not match
its checksum, or cannot be checked (no checksum known or recorded). Models not
downloaded are listed as ``missing`` but are not failures: a Pi only needs the
models it uses.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from edgecam.config import schema as config_mod
from edgecam import registry
from edgecam.commands import add_runtime_crop_args
from edgecam.model import custom_models
from edgecam.errors import EXIT_CONFIG, EdgecamError, ModelError, OutputError, RegistryError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``models`` command (with ``list``, ``fetch``, ``verify``, ``compare``) to ``subparsers``."""
    models = subparsers.add_parser(
        "models",
        help="list, download, verify and compare models",
        description="List, download, verify and compare the models of the registry.",
    )
    sub = models.add_subparsers(dest="models_command", metavar="{list,fetch,verify,compare}", required=True)

    dir_help = (
        f"model folder (default: ${registry.ENV_MODEL_DIR}, else the checkout's models/, "
        "else ~/.cache/edgecam/models)"
    )

    p = sub.add_parser("list", help="show the known models and which are downloaded")
    p.add_argument("--dir", metavar="DIR", help=dir_help)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("fetch", help="download a model and its labels, verifying checksums")
    p.add_argument("name", metavar="NAME",
                   help="a model name from 'edgecam models list', 'all' (every model), or 'demo' (the demo's photos)")
    p.add_argument(
        "--from",
        dest="mirror",
        metavar="DIR",
        help=f"copy the files from this local folder instead of downloading; several: DIR1:DIR2, the first "
             f"that has a file gives it (default: ${registry.ENV_MIRROR})",
    )
    p.add_argument("--dir", metavar="DIR", help=dir_help)
    p.add_argument(
        "--trust-on-first-use",
        action="store_true",
        help="accept a model with no known checksum and record the hash of what was fetched",
    )
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser("verify", help="check the downloaded models against their checksums")
    p.add_argument("--dir", metavar="DIR", help=dir_help)
    p.set_defaults(func=cmd_verify)

    _add_compare(sub)


def cmd_list(args: argparse.Namespace) -> int:
    """Print one line per model: name, input size, downloaded?, verification status, description."""
    reg = registry.load_registry()
    dest = registry.models_dir(args.dir)
    checks = {name: (status, detail) for name, status, detail in registry.verify(dest, reg)}
    rows = []
    for name, entry in reg.items():
        cached = (dest / entry.file).is_file()
        status = checks[name][0] if cached else "-"
        mark = "*" if name == registry.DEFAULT_MODEL else " "
        rows.append((f"{name}{mark}", f"{entry.input_size}", entry.backend, "yes" if cached else "no", status,
                     entry.description))
    header = ("NAME", "INPUT", "RUNS ON", "CACHED", "VERIFIED", "DESCRIPTION")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    for row in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[5])
    print(f"\n* default model; folder: {dest}")
    customs = custom_rows(dest, reg, checks)
    if customs:
        print("\ncustom models (edgecam learn):")
        for name, status, detail in customs:
            print(f"  {name}  {status}  {detail}")
    return 0


def custom_rows(dest, reg, checks: dict) -> list[tuple[str, str, str]]:
    """(name, status, detail) of each custom model in ``dest``: ok, mismatch (learned on another base file or
    unreadable), or missing (its base model is not downloaded)."""
    rows = []
    for path in custom_models.list_models(dest):
        name = path.name[:-len(custom_models.SUFFIX)]
        try:
            model = custom_models.load(path)
        except EdgecamError as e:
            rows.append((name, "mismatch", e.message))
            continue
        entry = reg.get(model.base)
        what = (f"{len(model.labels)} states ({', '.join(model.labels)}) on {model.base}, {model.head.method}, "
                f"cv accuracy {model.cv.get('accuracy', '?')}")
        if entry is None:
            rows.append((name, "mismatch", f"{what}: base {model.base} is not in the registry"))
        elif entry.sha256 and entry.sha256 != model.base_sha256:
            rows.append((name, "mismatch", f"{what}: learned on another file of {model.base}; learn it again"))
        else:
            status = checks.get(model.base, ("missing", ""))[0] if (dest / entry.file).is_file() else "missing"
            rows.append((name, status, what if status == "ok" else f"{what}: base model {status}"))
    return rows


def cmd_fetch(args: argparse.Namespace) -> int:
    """Fetch one model, or every model for ``all``; print where each one is."""
    if args.name == registry.PHOTO_SUBDIR:
        for path in registry.fetch_photos(dest_dir=args.dir, mirror=args.mirror):
            print(f"demo: {path}")
        return 0
    reg = registry.load_registry()
    dest = registry.models_dir(args.dir)
    if args.name != "all":
        path = registry.fetch(
            args.name, dest_dir=dest, mirror=args.mirror, trust_on_first_use=args.trust_on_first_use, registry=reg
        )
        print(f"{args.name}: {path}")
        return 0

    failures: list[tuple[str, EdgecamError]] = []
    cpu = {name: entry for name, entry in reg.items() if entry.backend == "cpu"}
    builds = [name for name in reg if name not in cpu]
    if builds:
        print(f"accelerator builds are fetched by name, not by 'all' ({', '.join(builds)})")
    for name, entry in cpu.items():
        if not registry.has_checksum(entry, dest) and not args.trust_on_first_use:
            print(
                f"{name}: skipped, no known checksum "
                f"(fetch it with 'edgecam models fetch {name} --trust-on-first-use')"
            )
            continue
        try:
            path = registry.fetch(
                name, dest_dir=dest, mirror=args.mirror, trust_on_first_use=args.trust_on_first_use, registry=reg
            )
        except EdgecamError as e:
            failures.append((name, e))
            print(f"{name}: FAILED: {e.message}", file=sys.stderr)
            continue
        print(f"{name}: {path}")
    if failures:
        names = ", ".join(n for n, _ in failures)
        raise RegistryError(
            f"{len(failures)} of {len(cpu)} models could not be fetched ({names}); see the messages above",
            exit_code=failures[0][1].exit_code,
        )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Print each model's status; fail if a downloaded model does not verify."""
    reg = registry.load_registry()
    dest = registry.models_dir(args.dir)
    results = registry.verify(dest, reg)
    width = max(len(name) for name, _, _ in results)
    for name, status, detail in results:
        print(f"{name.ljust(width)}  {status.ljust(10)}  {detail}")
    checks = {name: (status, detail) for name, status, detail in results}
    for name, status, detail in custom_rows(dest, reg, checks):
        print(f"{name.ljust(width)}  {status.ljust(10)}  custom: {detail}")
        results.append((name, status, detail))
    bad = [name for name, status, _ in results if status in ("mismatch", "unverified")]
    if bad:
        raise RegistryError(
            f"{len(bad)} downloaded model(s) in {dest} failed verification ({', '.join(bad)}); "
            f"fetch them again with 'edgecam models fetch NAME' (add --trust-on-first-use "
            f"for a model with no known checksum)"
        )
    return 0


# -- compare ---------------------------------------------------------------------------


def _threads_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected thread counts like 1,2,4, got {text!r}") from None
    if not values or any(not 1 <= v <= 64 for v in values):
        raise argparse.ArgumentTypeError(f"thread counts must be between 1 and 64, got {text!r}")
    return sorted(set(values))


def _add_compare(sub) -> None:
    """``models compare``: see :mod:`edgecam.measure.compare`."""
    p = sub.add_parser(
        "compare",
        help="compare models: parameters, MACs, blocks, invoke time, load time, RSS, accuracy; plot",
        description="Compare models read from their files and measured on this machine, one after the other.",
    )
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="registry names or .tflite paths (default: every registry model)")
    p.add_argument("--images", metavar="DIR", help="labelled photos for top-1/top-5 (see 'edgecam eval')")
    p.add_argument("--expected", metavar="CSV", help="CSV of the photos (without it: one subfolder per class)")
    p.add_argument("--threads", type=_threads_list, metavar="N,...",
                   help=f"interpreter thread counts to time (default: 1 and this machine's {os.cpu_count()} cores)")
    p.add_argument("--seconds", type=float, default=1.0, metavar="S",
                   help="how long to time invokes at each thread count (default 1; at least 20 invokes)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the table as JSON")
    fmt.add_argument("--csv", action="store_true", help="print the table as CSV with a header line")
    fmt.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--plot", metavar="PATH.png", help="write a plot of top-1 against invoke time (needs --images)")
    p.add_argument("--config", help="config file (crop, runtime, model folder)")
    p.add_argument("--dir", metavar="DIR", help="model folder (default: see 'edgecam models list')")
    add_runtime_crop_args(p)
    p.add_argument("--backend", choices=["cpu", "edgetpu"], default="cpu",
                   help="edgetpu: the registry's Coral builds (or the paths given), timed through the Edge TPU "
                        "delegate (one thread: the TPU's invoke, transfers included)")
    p.set_defaults(func=cmd_compare)


def _check_plot_path(path: str) -> None:
    if not path.lower().endswith(".png"):
        raise EdgecamError(f"--plot {path}: the plot is a PNG file; give a path ending in .png", EXIT_CONFIG)
    folder = Path(path).expanduser().resolve().parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise OutputError(f"--plot {path}: folder {folder} does not exist or is not writable; choose another path")


def cmd_compare(args) -> int:
    """Measure the models one after the other, each in a fresh process; print or write the table and plot."""
    # import cost: measure.evaluate and measure.compare, 70 ms of every `edgecam --help` otherwise
    from edgecam.measure import evaluate as ev
    from edgecam.measure.compare import candidates, cpu_name, plot_points, probe_spec, run_probe

    cfg = config_mod.apply_overrides(config_mod.load(args.config or config_mod.find_default()),
                                     {"model.runtime": args.runtime, "model.crop": args.crop, "model.dir": args.dir})
    if args.expected and not args.images:
        raise EdgecamError("--expected needs --images (the folder of the photos)", EXIT_CONFIG)
    if args.plot:
        if not args.images:
            raise EdgecamError("--plot draws accuracy against speed: it needs --images (and --expected or class "
                               "subfolders)", EXIT_CONFIG)
        _check_plot_path(args.plot)
    photos = ev.load_photos(args.images, args.expected) if args.images else None  # fail early on bad photos
    threads = args.threads or sorted({1, os.cpu_count() or 1})
    if args.backend == "edgetpu":
        threads = [1]  # the TPU does the work
    reg = registry.load_registry()
    dest = registry.models_dir(cfg.model.dir)
    found = candidates(args.names, dest, reg, args.backend)
    present = [c for c in found if c.model_path is not None]
    absent = [c for c in found if c.model_path is None]
    if not present:
        raise ModelError(f"models compare: none of the models is downloaded in {dest}; fetch them with "
                         f"'edgecam models fetch all' (offline: --from DIR)")

    started = time.monotonic()
    rows = []
    for i, c in enumerate(present, 1):
        if not (args.json or args.csv or args.markdown):
            print(f"measuring {c.name} ({i}/{len(present)})...", file=sys.stderr, flush=True)
        row = run_probe(probe_spec(c, cfg.model, threads, args.images, args.expected, args.seconds, args.backend))
        row["file_mb"] = round(c.model_path.stat().st_size / 1e6, 2)
        rows.append(row)
    if all(r.get("error") and not r.get("graph") for r in rows):
        raise ModelError("models compare: none of the models could be measured: " + "; ".join(
            f"{r['name']}: {r['error']}" for r in rows))
    machine = {"cpu": cpu_name(), "python": platform.python_version(),
               "runtime": next((r["runtime"] for r in rows if r.get("runtime")), "?")}
    what = (f"{len(photos)} photos in {args.images}, crop {cfg.model.crop}"
            + (f" {cfg.model.crop_fraction:g}" if cfg.model.crop == "center_fraction" else "")) if photos else \
        "no photos (give --images for accuracy)"
    if args.plot:
        points = plot_points(rows)
        if not points:
            raise EdgecamError("--plot: no model has both an accuracy and invoke times to plot (see the notes "
                               "with --json)", EXIT_CONFIG)
        _write_plot(args.plot, points, f"MobileNets on {machine['cpu']}",
                    f"{what}; {machine['runtime']}; threads {','.join(map(str, threads))}")
    _print_compare(args, rows, absent, machine, what, threads)
    if not (args.json or args.csv or args.markdown):
        print(f"measured in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


def _write_plot(path: str, points, title: str, subtitle: str) -> None:
    from edgecam.measure.compare_plot import write_plot  # import cost: cv2 drawing, 76 ms of `edgecam --help`

    try:
        write_plot(path, points, title, subtitle)
    except OSError as e:
        raise OutputError(f"--plot {path}: cannot write it ({e}); choose another path") from None


def _print_compare(args, rows: list[dict], absent, machine: dict, what: str, threads: list[int]) -> None:
    """The comparison as JSON, CSV, Markdown or a text table, with its notes."""
    # import cost: measure.compare, 15 ms of every `edgecam --help` otherwise
    from edgecam.measure.compare import format_csv, format_markdown, format_text, notes, table_rows

    if args.json:
        print(json.dumps({"machine": machine, "photos": what, "threads": threads, "models": rows,
                          "absent": [{"name": c.name, "fetch": c.absent} for c in absent]}))
        return
    if args.csv:
        print(format_csv(rows, threads))
        return
    header, cells = table_rows(rows, threads)
    print(f"{machine['cpu']}, {machine['runtime']}, Python {machine['python']}; {what}")
    if args.markdown:
        print()
        print(format_markdown(header, cells))
        print()
    else:
        print(format_text(header, cells))
    for line in notes(rows, absent):
        print(f"{'* ' if args.markdown else ''}{line}")
    if args.plot:
        print(f"{'* ' if args.markdown else ''}plot: {args.plot}")
