"""``edgecam fleet``: list the edgecam nodes on a broker; ``edgecam fleet push``: roll a model out to them.

See docs/fleet.md. The broker and credentials come from the config's ``mqtt`` section (``--config``), or
``--broker HOST[:PORT]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from edgecam.errors import ConfigError, FleetError, OutputError


def _common(p: argparse.ArgumentParser, sub: bool = False) -> None:
    # On the subcommand the defaults are suppressed: its None must not hide a value given before "push".
    keep = {"default": argparse.SUPPRESS} if sub else {}
    p.add_argument("--config", **keep, help="config file whose mqtt section names the broker and credentials "
                                    "(default: $EDGECAM_CONFIG, ./config.yaml, /etc/edgecam/config.yaml)")
    p.add_argument("--broker", **keep, metavar="HOST[:PORT]", help="the MQTT broker (default: the config's mqtt.host:port)")
    p.add_argument("--topic", **(keep or {"default": None}), metavar="PATTERN",
                   help="where the nodes' prefixes are, as an MQTT filter (default: edgecam/+, the default "
                        "prefixes edgecam/<host>)")
    p.add_argument("--wait", type=float, **(keep or {"default": 2.0}), metavar="S",
                   help="seconds at most to listen for the nodes' retained messages (default 2; it ends "
                        "sooner, once they stopped coming)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``fleet`` (list) and ``fleet push``."""
    p = subparsers.add_parser("fleet", help="list the edgecam nodes on an MQTT broker, roll a model out to them",
                              description="List every edgecam node and camera on the broker (docs/fleet.md).")
    _common(p)
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the nodes as JSON")
    out.add_argument("--prometheus", metavar="FILE",
                     help="write a Prometheus file_sd targets file of the nodes' /metrics (those serving HTTP)")
    p.set_defaults(func=cmd_list)
    sub = p.add_subparsers(dest="fleet_command", metavar="{push}")
    q = sub.add_parser("push", help="send a learned model or a registry model to nodes; each switches live",
                       description="Send MODEL (a learned model file from 'edgecam learn', or a registry model "
                                   "name) to the nodes; each verifies it, switches to it live and answers. Exit "
                                   "code 7 when a node failed (it keeps its model).")
    _common(q, sub=True)
    q.add_argument("model", nargs="?", metavar="MODEL", help="a .head.npz file, or a registry model name")
    q.add_argument("--to", nargs="+", required=True, metavar="NODE", help="all, or node names (or hosts)")
    q.add_argument("--rollback", action="store_true", help="return the nodes to their model before the last push")
    q.add_argument("--timeout", type=float, default=60.0, metavar="S",
                   help="seconds to wait for the online nodes' answers (default 60)")
    q.set_defaults(func=cmd_push)


def _mqtt_config(args):
    from edgecam.commands import load_config  # here: edgecam.commands imports this module

    cfg = load_config(args).mqtt
    if args.broker:
        host, _, port = args.broker.rpartition(":") if args.broker.count(":") == 1 else (args.broker, "", "")
        try:
            cfg = dataclasses.replace(cfg, host=host or args.broker, port=int(port) if port else cfg.port)
        except ValueError:
            raise ConfigError(f"--broker {args.broker!r}: expected HOST or HOST:PORT") from None
    return cfg


def _collect(args):
    """Connect, subscribe and listen ``--wait`` seconds: (client, collector, nodes)."""
    # here, as every command's modules: `edgecam --help` loads none of them
    from edgecam.fleet import messages as fm
    from edgecam.fleet.client import FleetClient
    from edgecam.fleet.listing import Collector

    if args.wait < 0:
        raise ConfigError(f"--wait {args.wait}: expected seconds, 0 or more")
    collector = Collector(args.topic or fm.DEFAULT_PATTERN)
    client = FleetClient(_mqtt_config(args), collector.on_message)
    client.connect()
    client.subscribe(collector.topics())
    return client, collector, collector.wait_quiet(args.wait)


def cmd_list(args) -> int:
    from edgecam.fleet import listing  # here, as every command's modules: `edgecam --help` loads none of them

    client, _, nodes = _collect(args)
    client.close()
    if args.json:
        print(json.dumps(listing.as_json(nodes), indent=1))
    elif args.prometheus:
        from edgecam.atomic import write_atomic  # here: only this option writes a file

        try:
            write_atomic(args.prometheus, (json.dumps(listing.file_sd(nodes), indent=1) + "\n").encode())
        except OSError as e:
            raise OutputError(f"--prometheus {args.prometheus}: cannot write it ({e.strerror or e})") from None
        print(f"{len(listing.file_sd(nodes))} node(s) with /metrics written to {args.prometheus}")
        local = [n.name for n in nodes if listing.loopback_only(n)]
        if local:
            print(f"left out, serving /metrics on their loopback address only (http.host): {', '.join(local)}")
    elif nodes:
        print(listing.table(nodes))
    else:
        print(f"no edgecam node found under {args.topic or 'edgecam/+'} (nodes publish with mqtt.enabled: true)")
    return 0


def cmd_push(args) -> int:
    # here, as every command's modules: `edgecam --help` loads none of them (the push's load numpy)
    from edgecam.fleet import messages as fm
    from edgecam.fleet.push import Outcome, Push, pick, request_for

    if args.model and args.rollback:
        raise ConfigError("fleet push: give MODEL or --rollback, not both")
    req, data = request_for(args.model, args.rollback, fm.BLOB_ROOT)  # bad input before any connection
    client, collector, nodes = _collect(args)
    try:
        targets = pick(nodes, args.to)

        def say(line: str) -> None:
            print(line, flush=True)

        push = Push(client, collector, targets, req, data, say, skip_unable=args.to == ["all"])
        push.send()
        results = push.wait(args.timeout)
    finally:
        client.close()
    counts = {o: sum(t.outcome is o for t in results) for o in Outcome}
    skipped = f", {counts[Outcome.SKIPPED]} skipped (they take no push)" if counts[Outcome.SKIPPED] else ""
    print(f"{counts[Outcome.OK]} ok, {counts[Outcome.FAILED]} failed, {counts[Outcome.PENDING]} offline "
          f"(they apply it when they reconnect){skipped}", file=sys.stdout)
    if counts[Outcome.FAILED]:
        raise FleetError(f"fleet push: {counts[Outcome.FAILED]} of {len(results)} node(s) failed (above); "
                         "they keep their model")
    return 0
