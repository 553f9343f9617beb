"""``edgecam service``: install or remove the systemd service.

    sudo edgecam service install [--config PATH] [--no-enable] [--root DIR] [--dry-run]
    sudo edgecam service uninstall [--purge] [--root DIR] [--dry-run]

Failures raise an EdgecamError whose exit code the main CLI exits with
(2 for a bad config or model, 4 when not run as root or a file cannot be
written).
"""

from __future__ import annotations

import argparse
import sys


def _say(line: str) -> None:
    print(line, file=sys.stdout, flush=True)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``service`` command (with ``install``, ``uninstall``) to ``subparsers``."""
    service = subparsers.add_parser(
        "service",
        help="install or remove the systemd service",
        description="Run edgecam at boot as the systemd service 'edgecam' (needs sudo).",
    )
    sub = service.add_subparsers(dest="service_command", metavar="{install,uninstall}", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--root",
            metavar="DIR",
            default="/",
            help="install into this folder instead of / (a staging tree, like DESTDIR); "
            "then no user is created and systemctl is not run",
        )
        p.add_argument("--dry-run", action="store_true", help="print each step without changing anything")

    p = sub.add_parser(
        "install",
        help="create the edgecam user, install unit, config and model, enable and start",
        description="Install the edgecam service: user, launcher, unit, /etc/edgecam/config.yaml, "
        "model in /var/lib/edgecam/models; then enable and start it.",
    )
    common(p)
    p.add_argument(
        "--config",
        metavar="PATH",
        help="config file to install as /etc/edgecam/config.yaml (default: the source's config.yaml); "
        "an existing /etc/edgecam/config.yaml is never overwritten",
    )
    p.add_argument("--no-enable", action="store_true", help="install, but do not enable or start the service")
    p.set_defaults(func=cmd_install)

    p = sub.add_parser(
        "uninstall",
        help="stop, disable and remove the service (keeps config and models)",
        description="Stop, disable and remove the edgecam service. /etc/edgecam and "
        "/var/lib/edgecam are kept unless --purge is given.",
    )
    common(p)
    p.add_argument(
        "--purge", action="store_true", help="also remove /etc/edgecam, /var/lib/edgecam, /var/log/edgecam and the user"
    )
    p.set_defaults(func=cmd_uninstall)


def cmd_install(args: argparse.Namespace) -> int:
    """Run ``service install``; returns the exit code."""
    from edgecam.service import install as inst  # import cost: 20 ms of `edgecam --help` (yaml, subprocess...)

    return inst.install(
        root=args.root, config=args.config, enable=not args.no_enable, dry_run=args.dry_run, say=_say
    )


def cmd_uninstall(args: argparse.Namespace) -> int:
    """Run ``service uninstall``; returns the exit code."""
    from edgecam.service import install as inst  # import cost: as in cmd_install

    return inst.uninstall(root=args.root, purge=args.purge, dry_run=args.dry_run, say=_say)
