"""``edgecam events``: read the events' history, also while the service writes it.

    edgecam events list [--rule R] [--label L] [--camera C] [--day YYYY-MM-DD] [--since T] [--until T] [--limit N]
                        [--json|--csv]
    edgecam events show ID [--json]
    edgecam events export [--since T] [--until T] [--rule R] [--label L] [--camera C] [--json|--csv]

The history is ``events.dir`` of the config (``--config``), or ``--dir``.
Times (``--since``, ``--until``) are local: ``2026-11-28``, ``2026-11-28T14:00``,
or back from now: ``30m``, ``2h``, ``7d``. ``list`` shows the newest first
(``--limit``, default 20); ``export`` writes every matching event, oldest
first, as CSV (default) or JSON Lines. Each event names its camera (``camera``,
empty with one camera; the last CSV column); ``--camera`` keeps one camera's.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
from datetime import datetime
from pathlib import Path

from edgecam.bounded import arg_type
from edgecam.commands import load_config
from edgecam.errors import EXIT_CONFIG, EdgecamError

FIELDS = ("id", "rule", "label", "region", "start", "end", "duration_s", "peak_score", "status", "snapshot",
          "snapshot_clean", "clip", "bytes", "camera")


def register(sub) -> None:
    p = sub.add_parser("events", help="list, show and export the events' history",
                       description="Read the events' history (events.dir), also while the service runs.")
    cmds = p.add_subparsers(dest="events_command", metavar="{list,show,export}", required=True)

    def common(q, filters=True):
        q.add_argument("--dir", metavar="DIR", help="the events folder (default: events.dir of the config)")
        q.add_argument("--config", help="config file (default: $EDGECAM_CONFIG, ./config.yaml, /etc/edgecam)")
        if filters:
            q.add_argument("--rule", help="only this rule's events")
            q.add_argument("--label", help="only events of this label (or state)")
            q.add_argument("--camera", help="only events of this camera (a run of several cameras)")
            q.add_argument("--day", type=_day, help="only events that started on this day (YYYY-MM-DD, local)")
            q.add_argument("--since", type=_when, help="started at or after: 2026-11-28, 2026-11-28T14:00, 2h, 7d")
            q.add_argument("--until", type=_when, help="started before (same forms as --since)")
        fmt = q.add_mutually_exclusive_group()
        fmt.add_argument("--json", action="store_true", help="JSON (export: one object per line)")
        if filters:
            fmt.add_argument("--csv", action="store_true", help="CSV with a header line")

    q = cmds.add_parser("list", help="the newest events")
    common(q)
    q.add_argument("--limit", type=arg_type("--limit", low=1), default=20, help="at most this many (default 20)")
    q.set_defaults(func=cmd_list)
    q = cmds.add_parser("show", help="one event and its media files")
    q.add_argument("id", type=arg_type("ID", low=1), metavar="ID", help="the event's number, as 'edgecam events list' shows it")
    common(q, filters=False)
    q.set_defaults(func=cmd_show)
    q = cmds.add_parser("export", help="every matching event, oldest first (CSV, or --json lines)")
    common(q)
    q.set_defaults(func=cmd_export)


_AGO = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|min|h|d)$")


def _when(text: str) -> float:
    """argparse type: a local date or time, or a span back from now -> epoch seconds."""
    m = _AGO.match(text.strip())
    if m:
        return time.time() - float(m.group(1)) * {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}[m.group(2)]
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a local date or time (2026-11-28, 2026-11-28T14:00) or a span back from now "
            f"(30m, 2h, 7d), got {text!r}") from None


def _day(text: str) -> tuple[float, float]:
    try:
        day = datetime.strptime(text.strip(), "%Y-%m-%d")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a day as YYYY-MM-DD, got {text!r}") from None
    start = day.timestamp()
    return start, datetime.fromordinal(day.toordinal() + 1).timestamp()


def events_dir(args) -> Path:
    """``--dir``, else ``events.dir`` of the config, else where the run with that config keeps its events."""
    if args.dir:
        return Path(args.dir)
    return history_dir(load_config(args))


def history_dir(cfg) -> Path:
    """Where a run with ``cfg`` keeps its events. The service's config (/etc/edgecam/config.yaml) means the
    service's folder: its model folder comes from its unit's environment, which a login shell has not."""
    # import cost: the history 6 ms and the installer (yaml, subprocess) 20 ms of every `edgecam --help`
    from edgecam.events.history import default_dir
    from edgecam.service.install import CONFIG_FILE, MODEL_DIR

    if not cfg.events.dir and not cfg.model.dir and cfg.path and Path(cfg.path) == Path("/", CONFIG_FILE):
        return Path("/", MODEL_DIR).parent / "events"
    return Path(default_dir(cfg))


def local_time(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t).astimezone().isoformat(timespec="milliseconds")


def present(row: dict, folder: Path) -> dict:
    """A history row as the CLI (and /api/events) shows it: times in local ISO 8601, media as full paths."""
    out = {"id": row["id"], "rule": row["rule"], "label": row["label"], "region": row["region"],
           "start": local_time(row["started"]), "end": local_time(row["ended"]),
           "duration_s": None if row["ended"] is None else round(row["ended"] - row["started"], 3),
           "peak_score": round(row["peak_score"], 4), "status": row["status"], "bytes": row["bytes"],
           "start_frame": row["start_frame"], "end_frame": row["end_frame"], "camera": row.get("camera")}
    for column in ("snapshot", "snapshot_clean", "thumb", "clip"):
        out[column] = str(folder / row[column]) if row[column] else None
    return out


def _query(args, conn, limit: int, oldest_first: bool = False) -> list[dict]:
    from edgecam.events.history import query_events  # import cost: 6 ms of every `edgecam --help`

    since, until = args.since, args.until
    if args.day:
        since = max(since or args.day[0], args.day[0])
        until = min(until or args.day[1], args.day[1])
    if limit < 1:
        raise EdgecamError(f"--limit {limit}: expected 1 or more", EXIT_CONFIG)
    rows, _ = query_events(conn, rule=args.rule, label=args.label, since=since, until=until, limit=limit,
                           camera=args.camera)
    return rows[::-1] if oldest_first else rows


#: A CSV cell starting with one of these is a formula to a spreadsheet (OWASP, "CSV Injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value):
    """``value`` as a CSV cell a spreadsheet shows as text: a string starting like a formula gets a leading
    ``'`` (a label ``=HYPERLINK(...)`` is shown, not run). Numbers and empty cells are left as they are."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) else value


def _write(rows: list[dict], args, folder: Path) -> None:
    shown = [present(r, folder) for r in rows]
    if args.json:
        for item in shown:
            print(json.dumps(item))
    elif getattr(args, "csv", False):
        # RFC 4180's CRLF: with "\n" alone, a cell holding a "\r" went unquoted and split its row in two
        w = csv.DictWriter(sys.stdout, FIELDS, extrasaction="ignore", lineterminator="\r\n")
        w.writeheader()
        w.writerows({k: spreadsheet_safe(v) for k, v in row.items()} for row in shown)
    else:
        for e in shown:
            dur = "going on" if e["duration_s"] is None else f"{e['duration_s']:.1f} s"
            where = f" region {e['region']}" if e["region"] else ""
            camera = f"[{e['camera']}] " if e["camera"] else ""
            media = ", ".join(k for k in ("snapshot", "clip") if e[k]) or "no media"
            print(f"{e['id']:>6}  {e['start'][:23]}  {camera}{e['rule']}: {e['label']}{where}  {dur}  "
                  f"peak {e['peak_score']:.2f}  {e['status']}  ({media})")


def _no_history(folder: Path) -> bool:
    """True (having said so in one sentence) when ``folder`` holds no history yet: no event has fired."""
    from edgecam.events.history import DB_NAME  # import cost: 6 ms of every `edgecam --help`

    if (folder / DB_NAME).is_file():
        return False
    print(f"no events yet: {folder} has no history; it starts with the first event a rule in events.rules "
          f"fires while 'edgecam run' runs (--dir names another folder)", file=sys.stderr)
    return True


def cmd_list(args) -> int:
    from edgecam.events.history import reading  # import cost: 6 ms of every `edgecam --help`

    folder = events_dir(args)
    if _no_history(folder):
        return 0
    with reading(folder) as conn:
        rows = _query(args, conn, args.limit)
    if not rows and not args.json and not args.csv:
        print(f"no events in {folder}", file=sys.stderr)
    _write(rows, args, folder)
    return 0


def cmd_export(args) -> int:
    from edgecam.events.history import reading  # import cost: 6 ms of every `edgecam --help`

    folder = events_dir(args)
    if not args.json:
        args.csv = True
    if _no_history(folder):
        _write([], args, folder)  # CSV: the header line, so that a spreadsheet still gets the columns
        return 0
    with reading(folder) as conn:
        rows = _query(args, conn, 10**9, oldest_first=True)
    _write(rows, args, folder)
    return 0


def cmd_show(args) -> int:
    from edgecam.events.history import get_event, reading  # import cost: 6 ms of every `edgecam --help`

    folder = events_dir(args)
    if _no_history(folder):
        raise EdgecamError(f"events: no event {args.id} in {folder}: no event has fired yet", EXIT_CONFIG)
    with reading(folder) as conn:
        row = get_event(conn, args.id)
    if row is None:
        raise EdgecamError(f"events: no event {args.id} in {folder}; edgecam events list shows their ids", EXIT_CONFIG)
    e = present(row, folder)
    if args.json:
        print(json.dumps(e, indent=2))
        return 0
    if e["camera"] is None:  # one camera's event: shown as before there were several
        del e["camera"]
    width = max(len(k) for k in e)
    for key, value in e.items():
        print(f"{key:<{width}}  {'' if value is None else value}")
    return 0
