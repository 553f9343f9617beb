"""``edgecam models``: list, fetch and verify the models of the registry.

    edgecam models list [--dir DIR]
    edgecam models fetch NAME|all [--from DIR] [--dir DIR] [--trust-on-first-use]
    edgecam models verify [--dir DIR]
    edgecam models compare [NAME|PATH ...] [--images DIR [--expected CSV]] [--plot PATH.png] (see edgecam.compare)

Exit codes: 0 on success; failures raise an EdgecamError whose code the main
CLI exits with (2 for a download or checksum problem, 4 for an unwritable
model folder).

``fetch all`` fetches every model with a known checksum (or a hash recorded on
first use) and skips, with a note, those without one unless
``--trust-on-first-use`` is given; it goes on after a failure and then fails
naming every model that could not be fetched.

``verify`` fails (exit 2) when a downloaded model or its labels does not match
its checksum, or cannot be checked (no checksum known or recorded). Models not
downloaded are listed as ``missing`` but are not failures: a Pi only needs the
models it uses.
"""

from __future__ import annotations

import argparse
import sys

from edgecam import registry
from edgecam.errors import EdgecamError, RegistryError


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``models`` command (with ``list``, ``fetch``, ``verify``) to ``subparsers``."""
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
    p.add_argument("name", metavar="NAME", help="a model name from 'edgecam models list', or 'all'")
    p.add_argument(
        "--from",
        dest="mirror",
        metavar="DIR",
        help=f"copy the files from this local folder instead of downloading (default: ${registry.ENV_MIRROR})",
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

    from edgecam import compare

    compare.add_parser(sub)
    return models


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
        rows.append((f"{name}{mark}", f"{entry.input_size}", "yes" if cached else "no", status, entry.description))
    header = ("NAME", "INPUT", "CACHED", "VERIFIED", "DESCRIPTION")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[4])
    print(f"\n* default model; folder: {dest}")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    """Fetch one model, or every model for ``all``; print where each one is."""
    reg = registry.load_registry()
    dest = registry.models_dir(args.dir)
    if args.name != "all":
        path = registry.fetch(
            args.name, dest_dir=dest, mirror=args.mirror, trust_on_first_use=args.trust_on_first_use, registry=reg
        )
        print(f"{args.name}: {path}")
        return 0

    failures: list[tuple[str, EdgecamError]] = []
    for name, entry in reg.items():
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
            f"{len(failures)} of {len(reg)} models could not be fetched ({names}); see the messages above",
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
    bad = [name for name, status, _ in results if status in ("mismatch", "unverified")]
    if bad:
        raise RegistryError(
            f"{len(bad)} downloaded model(s) in {dest} failed verification ({', '.join(bad)}); "
            f"fetch them again with 'edgecam models fetch NAME' (add --trust-on-first-use "
            f"for a model with no known checksum)"
        )
    return 0
