"""`edgecam service install|uninstall` into a staging root (like DESTDIR)."""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from edgecam.errors import ConfigError, OutputError
from edgecam.commands import service as cli
from edgecam.service import install as inst

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO / ".." / "shared"
SMALL_MODEL = "mobilenet_v1_0.25_128"
SMALL_FILE = "mobilenet_v1_0.25_128_quant.tflite"


@pytest.fixture
def mirror(monkeypatch):
    models = SHARED / "models"
    if not (models / SMALL_FILE).is_file():
        pytest.skip(f"../shared not found or lacks {SMALL_FILE}: {models.resolve()}")
    monkeypatch.setenv("EDGECAM_MODEL_MIRROR", str(models))
    monkeypatch.delenv("EDGECAM_MODEL_DIR", raising=False)
    return models


@pytest.fixture
def user_config(tmp_path):
    p = tmp_path / "my-config.yaml"
    p.write_text(f"model:\n  name: {SMALL_MODEL}\n  top_k: 5\ndisplay:\n  mode: none\n")
    return p


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _snapshot(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every path under root with its mode and (for files) content."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = (p.stat().st_mode, p.read_bytes() if p.is_file() else None)
    return out


def _install(root: Path, **kw) -> list[str]:
    lines: list[str] = []
    assert inst.install(root=root, say=lines.append, **kw) == 0
    return lines


def test_install_puts_unit_config_model_and_launcher_in_place(tmp_path, mirror, user_config):
    root = tmp_path / "root"
    lines = _install(root, config=user_config)

    unit = root / "etc/systemd/system/edgecam.service"
    assert unit.read_bytes() == (REPO / "systemd/edgecam.service").read_bytes()
    assert _mode(unit) == 0o644

    config = root / "etc/edgecam/config.yaml"
    assert config.read_bytes() == user_config.read_bytes()
    assert _mode(config) == 0o640 and _mode(config.parent) == 0o750

    models = root / "var/lib/edgecam/models"
    model = models / SMALL_FILE
    expected = {
        line.split()[1]: line.split()[0] for line in (mirror / "SHA256SUMS").read_text().splitlines() if line.strip()
    }
    assert hashlib.sha256(model.read_bytes()).hexdigest() == expected[SMALL_FILE]
    assert (models / "imagenet_labels.txt").is_file()  # the labels come along
    assert _mode(model) == 0o640 and _mode(models) == 0o750

    launcher = root / "usr/local/bin/edgecam"
    assert _mode(launcher) == 0o755
    assert f"{shlex.quote(sys.executable)} -m edgecam" in launcher.read_text()

    # Outside / there is no user to create and no systemd to talk to.
    assert any("skip: create system user" in line for line in lines)
    assert any("skip: systemctl" in line for line in lines)


def test_launcher_runs_edgecam(tmp_path, mirror, user_config):
    if not (REPO / "edgecam" / "__main__.py").is_file():
        pytest.skip("edgecam/__main__.py does not exist yet, so 'python -m edgecam' cannot run")
    root = tmp_path / "root"
    _install(root, config=user_config)
    r = subprocess.run(
        [str(root / "usr/local/bin/edgecam"), "--help"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert r.returncode == 0 and "usage" in r.stdout.lower(), r.stdout + r.stderr


def test_existing_config_is_never_overwritten(tmp_path, mirror, user_config):
    root = tmp_path / "root"
    _install(root, config=user_config)
    config = root / "etc/edgecam/config.yaml"
    edited = config.read_text() + "log_level: DEBUG\n"
    config.write_text(edited)

    other = tmp_path / "other.yaml"
    other.write_text(f"model:\n  name: {SMALL_MODEL}\n  top_k: 1\n")
    lines = _install(root, config=other)
    assert config.read_text() == edited
    assert any("keep existing" in line and "--config ignored" in line for line in lines)


def test_invalid_config_stops_before_anything_is_written(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  top_k: 0\n  colour: blue\n")
    root = tmp_path / "root"
    with pytest.raises(ConfigError) as e:
        _install(root, config=bad)
    assert e.value.exit_code == 2 and "model.top_k" in e.value.message and "model.colour" in e.value.message
    assert not root.exists()


def test_uninstall_removes_service_but_keeps_config_and_models(tmp_path, mirror, user_config):
    root = tmp_path / "root"
    _install(root, config=user_config)
    lines: list[str] = []
    assert inst.uninstall(root=root, say=lines.append) == 0
    assert not (root / "etc/systemd/system/edgecam.service").exists()
    assert not (root / "usr/local/bin/edgecam").exists()
    assert (root / "etc/edgecam/config.yaml").is_file()
    assert (root / "var/lib/edgecam/models" / SMALL_FILE).is_file()
    assert any("--purge" in line for line in lines)

    assert inst.uninstall(root=root, purge=True, say=lines.append) == 0
    assert not (root / "etc/edgecam").exists() and not (root / "var/lib/edgecam").exists()


def test_foreign_launcher_is_left_alone(tmp_path, mirror, user_config):
    root = tmp_path / "root"
    launcher = root / "usr/local/bin/edgecam"
    launcher.parent.mkdir(parents=True)
    launcher.write_text("#!/bin/sh\nexec /opt/edgecam/venv/bin/edgecam \"$@\"\n")
    _install(root, config=user_config)
    inst.uninstall(root=root, say=lambda line: None)
    assert launcher.read_text().startswith("#!/bin/sh\nexec /opt/edgecam/venv")


def test_backoff_dropin_only_where_systemd_understands_it(tmp_path, mirror, user_config, monkeypatch):
    dropin = "etc/systemd/system/edgecam.service.d/10-restart-backoff.conf"
    monkeypatch.setattr(inst, "systemd_version", lambda: 252)
    _install(tmp_path / "old", config=user_config)
    assert not (tmp_path / "old" / dropin).exists()

    monkeypatch.setattr(inst, "systemd_version", lambda: 254)
    _install(tmp_path / "new", config=user_config)
    text = (tmp_path / "new" / dropin).read_text()
    assert "RestartSteps=" in text and "RestartMaxDelaySec=" in text
    inst.uninstall(root=tmp_path / "new", say=lambda line: None)
    assert not (tmp_path / "new" / dropin).parent.exists()


def test_dry_run_changes_nothing(tmp_path, mirror, user_config):
    empty = tmp_path / "empty"
    empty.mkdir()
    lines = _install(empty, config=user_config, dry_run=True)
    assert list(empty.iterdir()) == []
    assert lines and all(line.startswith("[dry-run] ") for line in lines)
    assert any("edgecam.service" in line for line in lines) and any(SMALL_MODEL in line for line in lines)

    root = tmp_path / "root"
    _install(root, config=user_config)
    before = _snapshot(root)
    lines = []
    inst.uninstall(root=root, purge=True, dry_run=True, say=lines.append)
    assert _snapshot(root) == before
    assert any("remove" in line and "edgecam.service" in line for line in lines)


def test_not_root_on_the_real_system_is_refused(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    # Safety net: every step reports itself first, so a broken check fails
    # here before anything on this machine is touched.
    monkeypatch.setattr(inst._Steps, "say", lambda self, text: pytest.fail(f"step ran: {text}"))
    for action in (lambda: inst.install(root="/"), lambda: inst.uninstall(root="/")):
        with pytest.raises(OutputError) as e:
            action()
        assert e.value.exit_code == 4 and "sudo" in e.value.message and "\n" not in e.value.message


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="edgecam")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_cli_wiring(tmp_path, mirror, user_config, capsys):
    root = tmp_path / "root"
    args = _parse(["service", "install", "--root", str(root), "--config", str(user_config), "--no-enable"])
    assert args.func(args) == 0
    assert (root / "etc/systemd/system/edgecam.service").is_file()

    args = _parse(["service", "uninstall", "--root", str(root), "--dry-run"])
    assert args.func(args) == 0
    assert (root / "etc/systemd/system/edgecam.service").is_file()
    assert "[dry-run] remove" in capsys.readouterr().out

    args = _parse(["service", "uninstall", "--root", str(root), "--purge"])
    assert args.purge and args.func(args) == 0
    assert not (root / "etc/systemd/system/edgecam.service").exists()

    with pytest.raises(SystemExit):
        _parse(["service"])  # a subcommand is required


def test_dry_run_on_the_real_system_lists_system_steps(monkeypatch, user_config):
    """root=/ with --dry-run: shows useradd/systemctl steps and touches nothing."""

    def forbidden(*a, **k):
        raise AssertionError(f"dry run changed the system: {a}")

    monkeypatch.setattr(inst, "systemd_version", lambda: 252)
    monkeypatch.setattr(inst.subprocess, "run", forbidden)
    for name in ("open", "replace", "chown", "chmod", "unlink", "rmdir", "mkdir"):
        monkeypatch.setattr(os, name, forbidden)
    monkeypatch.setattr(inst.shutil, "rmtree", forbidden)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # dry runs need no root

    lines: list[str] = []
    inst.install(root="/", config=user_config, dry_run=True, say=lines.append)
    text = "\n".join(lines)
    user_step = "system user edgecam exists" if inst._user_exists("edgecam") else "run: useradd --system"
    assert user_step in text
    assert "run: systemctl daemon-reload" in text and "run: systemctl enable edgecam" in text
    assert "run: systemctl restart edgecam" in text  # a re-install runs the new code
    assert "/etc/systemd/system/edgecam.service" in text

    lines.clear()
    inst.uninstall(root="/", purge=True, dry_run=True, say=lines.append)
    assert "[dry-run] run: systemctl disable --now edgecam" in lines
    assert "[dry-run] run: systemctl reset-failed edgecam" in lines


@pytest.mark.parametrize("backend, has, lacks", [
    ("edgetpu", ["DeviceAllow=char-usb_device rw", "DeviceAllow=char-apex rw"], ["hailo"]),
    ("hailo", ["DeviceAllow=/dev/hailo0 rw"], ["usb_device", "SupplementaryGroups"]),
    ("imx500", ["EXTEND_TIMEOUT_USEC"], ["DeviceAllow", "SupplementaryGroups"]),
])
def test_the_accelerator_the_config_names_gets_its_devices_in_a_dropin(tmp_path, mirror, backend, has, lacks,
                                                                        monkeypatch):
    dropin = tmp_path / "root" / inst.ACCEL_DROPIN
    config = tmp_path / "accel.yaml"
    name = {"edgetpu": "mobilenet_v1", "hailo": "resnet_v1_50_h8l", "imx500": "imx500_mobilenet_v2"}[backend]
    config.write_text(f"model:\n  name: {name}\n  backend: {backend}\n")
    monkeypatch.setattr(inst, "_group_exists", lambda name: name != "apex")  # a Pi with plugdev, no PCIe Coral driver
    monkeypatch.setattr(inst, "_install_model", lambda steps, cfg: None)  # the drop-in only (models: below)
    lines = _install(tmp_path / "root", config=config)
    text = dropin.read_text()
    assert text.startswith(f"# written by 'edgecam service install' for model.backend: {backend}")
    assert "[Service]\n" in text
    for fragment in has:
        assert fragment in text
    for fragment in lacks:
        assert fragment not in text
    if backend == "edgetpu":  # only groups that exist: systemd refuses to start a unit naming another
        assert "SupplementaryGroups=plugdev\n" in text
        assert any(line.startswith("note: no group apex on this system") for line in lines)
    (tmp_path / "root" / "etc/edgecam/config.yaml").write_text(f"model:\n  name: {SMALL_MODEL}\n  backend: cpu\n")
    _install(tmp_path / "root")  # the config now names no accelerator: the drop-in goes
    assert not dropin.exists()
    inst.uninstall(root=tmp_path / "root", say=lambda line: None)
    assert not dropin.parent.exists()


def test_backend_auto_covers_the_accelerators_present(tmp_path):
    from edgecam.model.backends import unit
    from tests.fakes.machine import Machine

    machine = Machine(tmp_path / "machine")
    assert unit.dropin("auto", machine.root) == (None, [])
    machine.add_hailo()
    machine.add_coral_usb()
    text, notes = unit.dropin("auto", machine.root, group_exists=lambda name: True)
    assert "for model.backend: auto" in text and "DeviceAllow=/dev/hailo0 rw" in text
    assert "DeviceAllow=char-usb_device rw" in text and "SupplementaryGroups=plugdev apex" in text and notes == []


def test_the_build_the_backend_runs_is_fetched_too(tmp_path, mirror):
    config = tmp_path / "tpu.yaml"
    config.write_text("model:\n  name: mobilenet_v1\n  backend: edgetpu\n")
    lines = _install(tmp_path / "root", config=config)
    models = tmp_path / "root" / "var/lib/edgecam/models"
    assert (models / "mobilenet_v1_0.75_192_quant.tflite").is_file()
    assert (models / "mobilenet_v1_0.75_192_quant_edgetpu.tflite").is_file()  # for an offline Pi with a Coral
    assert sum(line.startswith("fetch model ") for line in lines) == 2
    config.write_text("model:\n  name: mobilenet_v3_small\n  backend: edgetpu\n")
    with pytest.raises(ConfigError, match="has no build for a Coral Edge TPU"):
        inst.install(root=tmp_path / "root2", config=config, say=lambda line: None)
    assert not (tmp_path / "root2" / inst.UNIT_FILE).exists()
