"""Install and remove edgecam as a systemd service.

``install`` puts these in place (under ``root``, like DESTDIR, default ``/``):

- the system user ``edgecam`` (member of ``video``) - only when root is ``/``;
- ``/usr/local/bin/edgecam``, a launcher running the Python environment that
  runs this installer (the unit's ExecStart= uses it);
- ``/etc/systemd/system/edgecam.service`` (plus, on systemd >= 254, a drop-in
  with an exponential restart back-off, and a drop-in with the devices and
  groups of the accelerator ``model.backend`` names: :mod:`edgecam.model.backends.unit`);
- ``/etc/edgecam/config.yaml`` (never overwritten once there);
- the configured model in ``/var/lib/edgecam/models`` (via the registry, so
  ``$EDGECAM_MODEL_MIRROR`` works on an offline Pi);

then runs ``systemctl daemon-reload``, ``systemctl enable edgecam`` and
``systemctl restart edgecam`` (only when root is ``/``; restart, so that a
re-install after an upgrade runs the new code). ``uninstall`` reverses it but
keeps the config, models, logs and user unless ``purge`` is set.

Every step is reported through ``say`` (one line each); ``dry_run`` reports
the steps without changing anything.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import re
import shlex
import shutil
import site
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

import edgecam
from edgecam import registry
from edgecam.atomic import write_atomic
from edgecam.config import schema as config_mod
from edgecam.errors import EdgecamError, OutputError
from edgecam.model import backends
from edgecam.model.backends import unit

logger = logging.getLogger(__name__)

SERVICE = "edgecam"
USER = "edgecam"
CAMERA_GROUP = "video"
UNIT_FILE = "etc/systemd/system/edgecam.service"
DROPIN_FILE = "etc/systemd/system/edgecam.service.d/10-restart-backoff.conf"
ACCEL_DROPIN = "etc/systemd/system/edgecam.service.d/20-accelerators.conf"  # edgecam.model.backends.unit
LAUNCHER = "usr/local/bin/edgecam"
CONFIG_DIR = "etc/edgecam"
CONFIG_FILE = "etc/edgecam/config.yaml"
STATE_DIR = "var/lib/edgecam"
MODEL_DIR = "var/lib/edgecam/models"  # = EDGECAM_MODEL_DIR in the unit
LOGS_DIR = "var/log/edgecam"

_SOURCE_ROOT = Path(edgecam.__file__).resolve().parents[1]
UNIT_SOURCE = _SOURCE_ROOT / "systemd" / "edgecam.service"
if not UNIT_SOURCE.is_file():  # installed from a wheel: setup.py's data_files put it here
    UNIT_SOURCE = Path(sys.prefix) / "share" / "edgecam" / "systemd" / "edgecam.service"
REPO_CONFIG = _SOURCE_ROOT / "config.yaml"

_LAUNCHER_MARK = "# written by 'edgecam service install'"
# RestartSteps=/RestartMaxDelaySec= exist from systemd 254 on; older versions
# warn about unknown keys, so they go into a drop-in written only there.
_BACKOFF_MIN_SYSTEMD = 254
_BACKOFF_DROPIN = """\
# written by 'edgecam service install' (systemd >= 254): retry forever, but
# back off from RestartSec=5 to 5 minutes over 10 failed starts, instead of
# the base unit's StartLimitBurst= give-up.
[Unit]
StartLimitIntervalSec=0

[Service]
RestartSteps=10
RestartMaxDelaySec=5min
"""
# Places the unit hides from the service (ProtectHome=, PrivateTmp=).
_HIDDEN_FROM_SERVICE = ("/home/", "/root/", "/tmp/", "/var/tmp/", "/run/user/")

Say = Callable[[str], None]


def _log_say(line: str) -> None:
    logger.info("%s", line)


def systemd_version() -> int | None:
    """Major version of the local systemd (``systemctl --version``), or None."""
    exe = shutil.which("systemctl")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.match(r"systemd (\d+)", out)
    return int(m.group(1)) if m else None


class _Steps:
    """Carries out (or, in a dry run, only reports) the file system steps."""

    def __init__(self, root: str | os.PathLike, dry_run: bool, say: Say):
        self.root = Path(root)
        self.live = self.root.resolve() == Path("/")  # the real system, not a staging tree
        self.dry_run = dry_run
        self._say = say

    def say(self, text: str) -> None:
        self._say(("[dry-run] " if self.dry_run else "") + text)

    def path(self, rel: str) -> Path:
        return self.root / rel

    def run(self, cmd: list[str], allow_fail: bool = False) -> bool:
        self.say("run: " + " ".join(cmd))
        if self.dry_run:
            return True
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.SubprocessError) as e:
            raise OutputError(f"cannot run '{' '.join(cmd)}': {e}; is systemd installed and running?") from None
        if r.returncode != 0:
            detail = (r.stderr or r.stdout).strip().splitlines()
            why = detail[-1] if detail else f"exit status {r.returncode}"
            if allow_fail:
                self.say(f"  (ignored: {why})")
                return False
            raise OutputError(f"'{' '.join(cmd)}' failed: {why}; fix that and run the command again")
        return True

    def mkdir(self, rel: str, mode: int, group: str | None = None) -> None:
        p = self.path(rel)
        self.say(f"create folder {p} (mode {mode:o}{', group ' + group if group and self.live else ''})")
        if self.dry_run:
            return
        try:
            p.mkdir(parents=True, exist_ok=True)
            p.chmod(mode)
            if group and self.live:
                os.chown(p, 0, grp.getgrnam(group).gr_gid)
        except (OSError, KeyError) as e:
            raise OutputError(f"cannot create {p}: {e}; check the permissions of its parent") from None

    def write(self, rel: str, data: bytes, mode: int, group: str | None = None, what: str = "") -> None:
        p = self.path(rel)
        owner = f", owner root:{group}" if group and self.live else ""
        self.say(f"write {what + ' ' if what else ''}{p} (mode {mode:o}{owner})")
        if self.dry_run:
            return
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            owner = (0, grp.getgrnam(group).gr_gid) if group and self.live else None
            write_atomic(p, data, mode, owner=owner)  # never briefly world-readable
        except (OSError, KeyError) as e:
            raise OutputError(f"cannot write {p}: {e}; check the permissions of {p.parent}") from None

    def remove(self, rel: str, tree: bool = False) -> None:
        p = self.path(rel)
        if not (p.exists() or p.is_symlink()):
            return
        self.say(f"remove {p}")
        if self.dry_run:
            return
        try:
            if tree and p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        except OSError as e:
            raise OutputError(f"cannot remove {p}: {e}") from None


def _require_root(steps: _Steps, action: str) -> None:
    if steps.live and not steps.dry_run and os.geteuid() != 0:
        raise OutputError(f"service {action} changes /etc and system users: run with sudo")


def _launcher_script() -> tuple[bytes, list[str]]:
    """The launcher text and warnings about the environment it points to."""
    python = sys.executable
    lines = ["#!/bin/sh", _LAUNCHER_MARK + "; removed by 'edgecam service uninstall'."]
    site_dirs = {str(Path(d).resolve()) for d in site.getsitepackages() + [site.getusersitepackages()]}
    if str(_SOURCE_ROOT) not in site_dirs:  # running from a source checkout
        lines.append(f'PYTHONPATH={shlex.quote(str(_SOURCE_ROOT))}"${{PYTHONPATH:+:$PYTHONPATH}}"; export PYTHONPATH')
    lines.append(f'exec {shlex.quote(python)} -m edgecam "$@"')
    warnings = [
        f"warning: {p} is hidden from the service by ProtectHome=/PrivateTmp=; install edgecam in a "
        "venv such as /opt/edgecam/venv and run this installer with that venv's edgecam"
        for p in dict.fromkeys([python, str(_SOURCE_ROOT)])
        if (p.rstrip("/") + "/").startswith(_HIDDEN_FROM_SERVICE)
    ]
    return ("\n".join(lines) + "\n").encode(), warnings


def _is_our_launcher(path: Path) -> bool:
    try:
        return _LAUNCHER_MARK in path.read_text(errors="replace")[:500]
    except OSError:
        return False


def _default_config() -> tuple[config_mod.Config, bytes]:
    """Built-in defaults and their YAML, for when no config.yaml ships with the source."""
    cfg = config_mod.Config()
    cfg.display.mode = "none"
    head = "# edgecam configuration (built-in defaults, written by 'edgecam service install')\n"
    return cfg, (head + yaml.safe_dump(config_mod.to_dict(cfg), sort_keys=False)).encode()


def _chown_tree(path: Path, user: str) -> None:
    try:
        pw = pwd.getpwnam(user)
        for dirpath, _dirs, files in os.walk(path):
            os.chown(dirpath, pw.pw_uid, pw.pw_gid)
            for name in files:
                os.chown(os.path.join(dirpath, name), pw.pw_uid, pw.pw_gid)
    except (OSError, KeyError) as e:
        raise OutputError(f"cannot give {path} to user {user}: {e}") from None


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def install(
    root: str | os.PathLike = "/",
    config: str | os.PathLike | None = None,
    enable: bool = True,
    dry_run: bool = False,
    say: Say = _log_say,
) -> int:
    """Install the service under ``root``; returns 0 (errors raise EdgecamError).

    ``config`` is the config file to install (default: the source checkout's
    config.yaml, else built-in defaults); an existing ``/etc/edgecam/config.yaml``
    is kept as it is. Raises ConfigError (exit 2) for an invalid config,
    RegistryError for a model that cannot be fetched, OutputError (exit 4) when
    not root or a file cannot be written.
    """
    steps = _Steps(root, dry_run, say)
    _require_root(steps, "install")
    if not UNIT_SOURCE.is_file():
        raise EdgecamError(f"unit file {UNIT_SOURCE} not found; install from an edgecam source checkout")
    # The config first: a bad one stops us before anything is changed.
    cfg, config_text = _config_to_install(steps, config)
    name = cfg.model.name
    if not (name.endswith(".tflite") or os.sep in name):
        _runs(cfg)  # a model that cannot run on model.backend stops us here too
    _install_user(steps)
    _install_launcher(steps)
    _install_units(steps, cfg)
    # The config: readable by the service's group, not by everyone.
    if config_text is not None:
        steps.mkdir(CONFIG_DIR, 0o750, group=USER)
        steps.write(CONFIG_FILE, config_text, 0o640, group=USER, what="config")
    _install_state(steps, cfg, dry_run)
    _enable(steps, enable)
    return 0


def _config_to_install(steps: _Steps, config: str | os.PathLike | None) -> tuple[config_mod.Config, bytes | None]:
    """The config the service will run, checked, and the bytes to write (None: keep the installed one)."""
    dest_config = steps.path(CONFIG_FILE)
    if dest_config.is_file():
        cfg = config_mod.load(dest_config)
        ignored = "; --config ignored" if config else ""
        steps.say(f"keep existing {dest_config} (never overwritten{ignored})")
        return cfg, None
    if config is not None or REPO_CONFIG.is_file():
        source = Path(config) if config is not None else REPO_CONFIG
        cfg = config_mod.load(source)
        steps.say(f"config to install: {source}")
        return cfg, source.read_bytes()
    cfg, config_text = _default_config()
    steps.say("config to install: built-in defaults (no config.yaml beside the source)")
    return cfg, config_text


def _install_user(steps: _Steps) -> None:
    """The service user, in the camera's group where there is one."""
    if not steps.live:
        steps.say(f"skip: create system user {USER} (only when --root is /)")
    elif _user_exists(USER):
        steps.say(f"system user {USER} exists")
        if _group_exists(CAMERA_GROUP):
            steps.run(["usermod", "--append", "--groups", CAMERA_GROUP, USER])
    else:
        cmd = ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/" + STATE_DIR,
               "--shell", "/usr/sbin/nologin"]  # fmt: skip
        if _group_exists(CAMERA_GROUP):
            cmd += ["--groups", CAMERA_GROUP]
        else:
            steps.say(f"note: no group {CAMERA_GROUP} on this system; the camera may not be accessible")
        steps.run(cmd + [USER])


def _install_launcher(steps: _Steps) -> None:
    """The launcher the unit runs (one not written by us is kept)."""
    launcher = steps.path(LAUNCHER)
    if launcher.exists() and not _is_our_launcher(launcher):
        steps.say(f"keep existing {launcher} (not written by this installer)")
        return
    script, warnings = _launcher_script()
    steps.write(LAUNCHER, script, 0o755, what="launcher")
    for w in warnings:
        steps.say(w)


def _install_units(steps: _Steps, cfg: config_mod.Config) -> None:
    """The unit, the back-off drop-in where systemd understands it, and the accelerator's drop-in."""
    steps.write(UNIT_FILE, UNIT_SOURCE.read_bytes(), 0o644, what="unit")
    version = systemd_version()
    if version is not None and version >= _BACKOFF_MIN_SYSTEMD:
        steps.write(DROPIN_FILE, _BACKOFF_DROPIN.encode(), 0o644, what="restart back-off drop-in")
    else:
        shown = version if version is not None else "unknown"
        steps.say(f"skip: restart back-off drop-in (needs systemd >= {_BACKOFF_MIN_SYSTEMD}, have {shown})")
    text, notes = unit.dropin(cfg.model.backend, group_exists=_group_exists)
    for note in notes:
        steps.say(note)
    if text is not None:
        steps.write(ACCEL_DROPIN, text.encode(), 0o644, what="accelerator drop-in")
    else:  # a config that no longer names an accelerator
        steps.remove(ACCEL_DROPIN)


def _install_state(steps: _Steps, cfg: config_mod.Config, dry_run: bool) -> None:
    """The state folder and the model, owned by the service user."""
    steps.mkdir(STATE_DIR, 0o750)
    steps.mkdir(MODEL_DIR, 0o750)
    _install_model(steps, cfg)
    if steps.live:
        steps.say(f"set owner {USER}:{USER} on {steps.path(STATE_DIR)}")
        if not dry_run:
            _chown_tree(steps.path(STATE_DIR), USER)


def _enable(steps: _Steps, enable: bool) -> None:
    """systemctl daemon-reload, enable and restart (only when --root is /)."""
    if not steps.live:
        steps.say("skip: systemctl daemon-reload / enable (only when --root is /)")
        return
    steps.run(["systemctl", "daemon-reload"])
    if enable:
        steps.run(["systemctl", "enable", SERVICE])
        # restart, not start: after an upgrade the running copy is the old code.
        # It returns once edgecam is ready (Type=notify: first frame classified).
        steps.run(["systemctl", "restart", SERVICE])
        steps.say(f"done: follow it with 'journalctl -u {SERVICE} -f'")
    else:
        steps.say(f"not enabled (--no-enable): start it with 'sudo systemctl enable --now {SERVICE}'")


def _runs(cfg: config_mod.Config) -> str:
    """The model the service runs: model.name, or its build for model.backend (mobilenet_v1 on a Coral:
    mobilenet_v1_edgetpu), fetched too so that an offline Pi has it. ConfigError (exit 2) for a model that
    cannot run on the backend named."""
    return backends.choose(cfg.model, camera=cfg.source.type in ("auto", "picamera2")).model.name


def _install_model(steps: _Steps, cfg: config_mod.Config) -> None:
    name = cfg.model.name
    if name.endswith(".tflite") or os.sep in name:
        steps.say(f"skip: fetch model (model.name is a file, {name}; the {USER} user must be able to read it)")
        return
    if cfg.model.dir:
        steps.say(f"note: model.dir is set ({cfg.model.dir}); the service reads models from there, not /{MODEL_DIR}")
    dest = steps.path(MODEL_DIR)
    mirror = os.environ.get(registry.ENV_MIRROR)
    for model in dict.fromkeys([name, _runs(cfg)]):
        steps.say(f"fetch model {model} into {dest}" + (f" (from {mirror})" if mirror else ""))
        if not steps.dry_run:
            path = registry.fetch(model, dest_dir=dest, progress=sys.stderr.isatty())
    if steps.dry_run:
        return
    # The service only needs to read models; keep them private to it.
    try:
        for f in dest.iterdir():
            if f.is_file():
                f.chmod(0o640)
    except OSError as e:
        raise OutputError(f"cannot set permissions in {dest}: {e}") from None
    steps.say(f"model ready: {path}")


def uninstall(
    root: str | os.PathLike = "/",
    purge: bool = False,
    dry_run: bool = False,
    say: Say = _log_say,
) -> int:
    """Stop, disable and remove the service; with ``purge`` also its config,
    models, logs and user. Returns 0 (errors raise EdgecamError)."""
    steps = _Steps(root, dry_run, say)
    _require_root(steps, "uninstall")
    if steps.live:
        # Not installed, or already stopped: nothing to undo, carry on.
        steps.run(["systemctl", "disable", "--now", SERVICE], allow_fail=True)
        # A unit that had failed stays loaded (and listed) until this.
        steps.run(["systemctl", "reset-failed", SERVICE], allow_fail=True)
    else:
        steps.say("skip: systemctl disable --now (only when --root is /)")
    steps.remove(UNIT_FILE)
    steps.remove(DROPIN_FILE)
    steps.remove(ACCEL_DROPIN)
    dropin_dir = steps.path(DROPIN_FILE).parent
    if dropin_dir.is_dir():
        if any(p.name not in (Path(DROPIN_FILE).name, Path(ACCEL_DROPIN).name) for p in dropin_dir.iterdir()):
            steps.say(f"keep {dropin_dir} (holds your own drop-ins, e.g. from 'systemctl edit')")
        else:
            steps.remove(str(dropin_dir.relative_to(steps.root)), tree=True)
    launcher = steps.path(LAUNCHER)
    if _is_our_launcher(launcher):
        steps.remove(LAUNCHER)
    elif launcher.exists():
        steps.say(f"keep {launcher} (not written by this installer)")
    if steps.live:
        steps.run(["systemctl", "daemon-reload"])
    if purge:
        for rel in (CONFIG_DIR, STATE_DIR, LOGS_DIR):
            steps.remove(rel, tree=True)
        if steps.live and _user_exists(USER):
            steps.run(["userdel", USER])
    else:
        kept = [str(steps.path(r)) for r in (CONFIG_DIR, STATE_DIR, LOGS_DIR) if steps.path(r).exists()]
        if kept:
            steps.say(f"kept {', '.join(kept)} (--purge removes them)")
    return 0
