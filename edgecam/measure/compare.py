"""``edgecam models compare``: the models side by side, read from their files and measured here.

    edgecam models compare [NAME|PATH.tflite ...] [--images DIR [--expected CSV]]
                           [--threads N,...] [--json|--csv|--markdown] [--plot PATH.png]

One row per model: parameters, MACs and where they go (depthwise, pointwise,
standard convolutions, fully connected), squeeze-and-excitation blocks and
h-swish activations (:mod:`edgecam.model.model_graph`), file size, input size and
quantization; invoke p50/p95 at each thread count, load time and peak RSS in
a fresh process per model (:mod:`edgecam.measure.model_probe`); top-1/top-5 with
95% intervals when photos are given (:mod:`edgecam.measure.evaluate`). ``--plot``
draws top-1 against invoke time with the Pareto front
(:mod:`edgecam.measure.compare_plot`).

Without names it takes every CPU model of the registry; the ones not downloaded
are listed with the command that fetches them, never skipped silently.
Models are measured one after the other, never in parallel, so that they do
not slow each other down.

Exit codes: 0 when the table was produced (a model that could not be run is
a note under it); 2 for a bad argument (unknown model, unreadable photos,
``--plot`` not ending in ``.png``) or when no model could be measured; 4 when
the plot cannot be written.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from edgecam import registry
from edgecam.errors import ModelError

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


def candidates(names: list[str], dest: Path, reg: dict[str, registry.ModelEntry],
               backend: str = "cpu") -> list[Candidate]:
    """The models to compare: ``names`` (registry names or paths), or every registry model built for ``backend``."""
    out = []
    for name in names or [n for n, e in reg.items() if e.backend == backend]:
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
               seconds: float, backend: str = "cpu") -> dict:
    """What :mod:`edgecam.measure.model_probe` needs to measure ``c`` (on the CPU, or with the Edge TPU delegate)."""
    pre = c.preprocess or {}
    return {
        "name": c.name,
        "backend": backend,
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
        proc = subprocess.run([sys.executable, "-m", "edgecam.measure.model_probe", json.dumps(spec)],
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
    header = ["model", "input", "classes", "quant", "file MB", "params M", "MACs M", "MACs dw/pw/std/fc %", "SE", "h-swish",
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
            str(r["classes"]) if r.get("classes") else "-",
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
    fields = ["model", "path", "input", "classes", "quantization", "file_mb", "params", "macs", "mac_depthwise",
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
             "classes": r.get("classes"),
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
    # memory: compare_plot loads cv2, and a child starts with this process's peak RSS (Linux keeps ru_maxrss
    # across fork and exec): imported before the probes ran, it hid each model's RSS (rss_model_mb 0.0)
    from edgecam.measure.compare_plot import Point
    points = []
    for r in rows:
        acc, inv = r.get("accuracy"), r.get("invoke_ms") or {}
        if not acc or not inv:
            continue
        best = min(inv.values(), key=lambda t: t["p50"])
        lo, hi = acc["top1_interval"]
        points.append(Point(r["name"], best["p50"], best["p95"], acc["top1"], lo, hi))
    return points
