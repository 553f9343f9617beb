"""``edgecam models compare``: the models side by side, read from their files and measured here.

    edgecam models compare [NAME|PATH.tflite ...] [--images DIR [--expected CSV]]
                           [--threads N,...] [--json|--csv|--markdown] [--plot PATH.png]

One row per model: parameters, MACs and where they go (depthwise, pointwise,
standard convolutions, fully connected), squeeze-and-excitation blocks and
h-swish activations (:mod:`edgecam.model_graph`), file size, input size and
quantization; invoke p50/p95 at each thread count, load time and peak RSS in
a fresh process per model (:mod:`edgecam.model_probe`); top-1/top-5 with
95% intervals when photos are given (:mod:`edgecam.evaluate`). ``--plot``
draws top-1 against invoke time with the Pareto front
(:mod:`edgecam.compare_plot`).

Without names it takes every model of the registry; the ones not downloaded
are listed with the command that fetches them, never skipped silently.
Models are measured one after the other, never in parallel, so that they do
not slow each other down.

Exit codes: 0 when the table was produced (a model that could not be run is
a note under it); 2 for a bad argument (unknown model, unreadable photos,
``--plot`` not ending in ``.png``) or when no model could be measured; 4 when
the plot cannot be written.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from edgecam import config as config_mod
from edgecam import registry
from edgecam.errors import EXIT_CONFIG, EdgecamError, ModelError, OutputError

PROBE_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Candidate:
    """A model to compare: where its files are, or why it is not here."""

    name: str
    model_path: Path | None
    labels_path: Path | None = None
    labels_error: str | None = None
    preprocess: dict | None = None
    absent: str | None = None  # how to get it, when it is not downloaded


def _threads_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected thread counts like 1,2,4, got {text!r}") from None
    if not values or any(not 1 <= v <= 64 for v in values):
        raise argparse.ArgumentTypeError(f"thread counts must be between 1 and 64, got {text!r}")
    return sorted(set(values))


def add_parser(sub) -> argparse.ArgumentParser:
    """Add ``compare`` to the ``models`` subcommands."""
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
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--csv", action="store_true")
    fmt.add_argument("--markdown", action="store_true")
    p.add_argument("--plot", metavar="PATH.png", help="write a plot of top-1 against invoke time (needs --images)")
    p.add_argument("--config", help="config file (crop, runtime, model folder)")
    p.add_argument("--dir", metavar="DIR", help="model folder (default: see 'edgecam models list')")
    p.add_argument("--runtime", choices=["auto", "litert", "tflite-runtime", "tensorflow"])
    p.add_argument("--crop", choices=["center_fraction", "square", "stretch"])
    p.set_defaults(func=cmd_compare)
    return p


# -- which models ----------------------------------------------------------------------


def _fetch_hint(entry: registry.ModelEntry, dest: Path) -> str:
    cmd = f"edgecam models fetch {entry.name}"
    if not registry.has_checksum(entry, dest):
        return f"{cmd} --trust-on-first-use (no published checksum)"
    return f"{cmd} (offline: add --from DIR)"


def _labels_for(model_path: Path, labels: Path | None) -> tuple[Path | None, str | None]:
    if labels is not None:
        return (labels, None) if labels.is_file() else (None, f"labels file {labels} is missing")
    try:
        return registry.resolve(str(model_path), fetch_missing=False).labels_path, None
    except ModelError as e:
        return None, e.message


def candidates(names: list[str], dest: Path, reg: dict[str, registry.ModelEntry]) -> list[Candidate]:
    """The models to compare: ``names`` (registry names or paths), or every registry model."""
    out = []
    for name in names or list(reg):
        entry = reg.get(name)
        if entry is not None:
            path = dest / entry.file
            if not path.is_file():
                out.append(Candidate(name, None, absent=_fetch_hint(entry, dest)))
                continue
            labels, err = _labels_for(path, dest / entry.labels_file)
            out.append(Candidate(name, path, labels, err, dict(entry.preprocess or {})))
            continue
        path = Path(name).expanduser()
        if not path.is_file():
            raise ModelError(
                f"models compare: {name!r} is neither a registry model ({', '.join(reg)}) nor a .tflite file"
            )
        labels, err = _labels_for(path, None)
        out.append(Candidate(path.stem, path, labels, err))
    return out


# -- measuring -------------------------------------------------------------------------


def probe_spec(c: Candidate, model_cfg, threads: list[int], images: str | None, expected: str | None,
               seconds: float) -> dict:
    """What :mod:`edgecam.model_probe` needs to measure ``c``."""
    pre = c.preprocess or {}
    return {
        "name": c.name,
        "model_path": str(c.model_path),
        "labels_path": str(c.labels_path) if c.labels_path else None,
        "labels_error": c.labels_error,
        "runtime": model_cfg.runtime,
        "threads": threads,
        "seconds": seconds,
        "crop": model_cfg.crop,
        "crop_fraction": model_cfg.crop_fraction,
        "mean": float(pre.get("mean", 127.5)),
        "std": float(pre.get("std", 127.5)),
        "images": str(images) if images else None,
        "expected": str(expected) if expected else None,
    }


def run_probe(spec: dict, timeout: float = PROBE_TIMEOUT_S) -> dict:
    """Run the probe in a fresh Python process and return its JSON (or an ``error``)."""
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = package_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        proc = subprocess.run([sys.executable, "-m", "edgecam.model_probe", json.dumps(spec)],
                              capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"name": spec["name"], "path": spec["model_path"], "error": f"measuring took over {timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        last = [line for line in proc.stderr.splitlines() if line.strip()]
        why = last[-1] if last else f"exit code {proc.returncode}"
        return {"name": spec["name"], "path": spec["model_path"], "error": f"the measuring process failed: {why}"}
    return json.loads(lines[-1])


def cpu_name() -> str:
    """The CPU (or board) model, for the report: /proc/cpuinfo's model name, else the machine type."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    name = fields.get("model name") or fields.get("model") or platform.processor() or platform.machine()
    return f"{name} ({os.cpu_count()} cores)"


# -- output ----------------------------------------------------------------------------


def _m(n: float) -> str:
    return f"{n / 1e6:.2f}"


def _interval(acc: dict | None, k: str) -> str:
    if not acc:
        return "-"
    lo, hi = acc[f"{k}_interval"]
    return f"{acc[k]:.3f} ({lo:.3f}-{hi:.3f})"


def table_rows(rows: list[dict], threads: list[int]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the comparison table (text and Markdown)."""
    header = ["model", "input", "quant", "file MB", "params M", "MACs M", "MACs dw/pw/std/fc %", "SE", "h-swish",
              "load ms", "RSS MB"]
    header += [f"invoke ms {n}T p50/p95" for n in threads]
    header += ["top-1 (95% CI)", "top-5 (95% CI)"]
    cells = []
    for r in rows:
        g = r.get("graph") or {}
        share = g.get("mac_share") or {}
        shape = g.get("input_shape") or []
        macs_known = bool(g.get("macs"))
        row = [
            r["name"],
            f"{shape[2]}x{shape[1]}" if len(shape) == 4 else "-",
            g.get("quantization", "-"),
            f"{r['file_mb']:.1f}",
            _m(g["params"]) if macs_known else "-",
            f"{g['macs'] / 1e6:.1f}" if macs_known else "-",
            "/".join(f"{100 * share.get(k, 0):.0f}" for k in ("depthwise", "pointwise", "standard", "fully_connected"))
            if macs_known else "-",
            str(g.get("se_blocks", "-")) if macs_known else "-",
            str(g.get("hswish", "-")) if macs_known else "-",
            f"{r['load_ms']:.0f}" if "load_ms" in r else "-",
            f"{r['rss_mb']:.0f}" if "rss_mb" in r else "-",
        ]
        inv = r.get("invoke_ms") or {}
        for n in threads:
            t = inv.get(str(n))
            row.append(f"{t['p50']:.2f} / {t['p95']:.2f}" if t else "-")
        acc = r.get("accuracy")
        row += [_interval(acc, "top1"), _interval(acc, "top5")]
        cells.append(row)
    return header, cells


def notes(rows: list[dict], absent: list[Candidate]) -> list[str]:
    """One line per model that could not be measured fully, and per model not downloaded."""
    out = []
    for r in rows:
        g = r.get("graph") or {}
        if r.get("error"):
            hint = " (an Edge TPU build: it runs with the Coral delegate only)" if "edgetpu" in str(g.get("custom_ops")) \
                else ""
            out.append(f"{r['name']}: {r['error']}{hint}")
        elif r.get("accuracy_error"):
            out.append(f"{r['name']}: no accuracy: {r['accuracy_error']}")
    for c in absent:
        out.append(f"{c.name}: not downloaded; fetch it with: {c.absent}")
    return out


def format_text(header: list[str], cells: list[list[str]]) -> str:
    widths = [max(len(x) for x in col) for col in zip(header, *cells)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *cells]]
    return "\n".join(lines)


def format_markdown(header: list[str], cells: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def format_csv(rows: list[dict], threads: list[int]) -> str:
    fields = ["model", "path", "input", "quantization", "file_mb", "params", "macs", "mac_depthwise",
              "mac_pointwise", "mac_standard", "mac_fully_connected", "se_blocks", "hswish", "load_ms", "rss_mb"]
    for n in threads:
        fields += [f"invoke_p50_ms_{n}t", f"invoke_p95_ms_{n}t"]
    fields += ["photos", "top1", "top1_lo", "top1_hi", "top5", "top5_lo", "top5_hi", "note"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in rows:
        g = r.get("graph") or {}
        share = g.get("mac_share") or {}
        shape = g.get("input_shape") or []
        acc = r.get("accuracy") or {}
        d = {"model": r["name"], "path": r.get("path"), "input": f"{shape[2]}x{shape[1]}" if len(shape) == 4 else "",
             "quantization": g.get("quantization"), "file_mb": r.get("file_mb"), "params": g.get("params"),
             "macs": g.get("macs"), "se_blocks": g.get("se_blocks"), "hswish": g.get("hswish"),
             "load_ms": r.get("load_ms"), "rss_mb": r.get("rss_mb"), "photos": acc.get("n"),
             "note": r.get("error") or r.get("accuracy_error") or ""}
        for k in ("depthwise", "pointwise", "standard", "fully_connected"):
            d[f"mac_{k}"] = share.get(k)
        for n in threads:
            t = (r.get("invoke_ms") or {}).get(str(n)) or {}
            d[f"invoke_p50_ms_{n}t"], d[f"invoke_p95_ms_{n}t"] = t.get("p50"), t.get("p95")
        for k in ("top1", "top5"):
            if acc:
                d[k], (d[f"{k}_lo"], d[f"{k}_hi"]) = acc[k], acc[f"{k}_interval"]
        w.writerow(d)
    return buf.getvalue().rstrip("\n")


def plot_points(rows: list[dict]):
    """The plot's points: models with both an accuracy and invoke times."""
    from edgecam.compare_plot import Point

    points = []
    for r in rows:
        acc, inv = r.get("accuracy"), r.get("invoke_ms") or {}
        if not acc or not inv:
            continue
        best = min(inv.values(), key=lambda t: t["p50"])
        lo, hi = acc["top1_interval"]
        points.append(Point(r["name"], best["p50"], best["p95"], acc["top1"], lo, hi))
    return points


# -- the command -----------------------------------------------------------------------


def _check_plot_path(path: str) -> None:
    if not path.lower().endswith(".png"):
        raise EdgecamError(f"--plot {path}: the plot is a PNG file; give a path ending in .png", EXIT_CONFIG)
    folder = Path(path).expanduser().resolve().parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise OutputError(f"--plot {path}: folder {folder} does not exist or is not writable; choose another path")


def cmd_compare(args) -> int:
    from edgecam import evaluate as ev

    cfg = config_mod.load(args.config or config_mod.find_default())
    cfg = config_mod.apply_overrides(cfg, {"model.runtime": args.runtime, "model.crop": args.crop,
                                           "model.dir": args.dir})
    if args.expected and not args.images:
        raise EdgecamError("--expected needs --images (the folder of the photos)", EXIT_CONFIG)
    if args.plot:
        if not args.images:
            raise EdgecamError("--plot draws accuracy against speed: it needs --images (and --expected or class "
                               "subfolders)", EXIT_CONFIG)
        _check_plot_path(args.plot)
    photos = ev.load_photos(args.images, args.expected) if args.images else None  # fail early on bad photos
    threads = args.threads or sorted({1, os.cpu_count() or 1})
    reg = registry.load_registry()
    dest = registry.models_dir(cfg.model.dir)
    found = candidates(args.names, dest, reg)
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
        row = run_probe(probe_spec(c, cfg.model, threads, args.images, args.expected, args.seconds))
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
        from edgecam.compare_plot import write_plot

        title = f"MobileNets on {machine['cpu']}"
        subtitle = f"{what}; {machine['runtime']}; threads {','.join(map(str, threads))}"
        try:
            write_plot(args.plot, points, title, subtitle)
        except OSError as e:
            raise OutputError(f"--plot {args.plot}: cannot write it ({e}); choose another path") from None

    if args.json:
        print(json.dumps({"machine": machine, "photos": what, "threads": threads, "models": rows,
                          "absent": [{"name": c.name, "fetch": c.absent} for c in absent]}))
        return 0
    if args.csv:
        print(format_csv(rows, threads))
        return 0
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
    if not (args.json or args.csv or args.markdown):
        print(f"measured in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0
