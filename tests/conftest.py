"""Shared fixtures: where ../shared is, a model cache filled from it, a CLI runner and a mosquitto broker."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGECAM_SHARED", REPO.parent / "shared")).resolve()
SHARED_REASON = f"../shared not found at {SHARED}: the real models, photos and video live there (set EDGECAM_SHARED)"


def have_shared() -> bool:
    return (SHARED / "models" / "SHA256SUMS").is_file()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ../shared folder; tests that need it skip with a clear reason when it is absent."""
    if not have_shared():
        pytest.skip(SHARED_REASON)
    return SHARED


@pytest.fixture(scope="session")
def labels_path(shared_dir) -> Path:
    return shared_dir / "models" / "imagenet_labels.txt"


@pytest.fixture(scope="session")
def labels(labels_path) -> list[str]:
    return labels_path.read_text().splitlines()


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory, shared_dir) -> Path:
    """A model cache folder, filled through the registry's mirror path from ../shared/models."""
    from edgecam import registry

    cache = tmp_path_factory.mktemp("models")
    for name in ("mobilenet_v3_small", "mobilenet_v2", "mobilenet_v1", "mobilenet_v1_0.5_160", "mobilenet_v1_0.25_128",
                 "inat_birds"):
        registry.fetch(name, dest_dir=cache, mirror=shared_dir / "models", progress=False)
    return cache


@pytest.fixture
def model_env(model_cache, shared_dir, monkeypatch):
    """Environment for CLI subprocesses and in-process calls: cache and mirror set, no user config."""
    monkeypatch.setenv("EDGECAM_MODEL_DIR", str(model_cache))
    monkeypatch.setenv("EDGECAM_MODEL_MIRROR", str(shared_dir / "models"))
    monkeypatch.delenv("EDGECAM_CONFIG", raising=False)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_cli(args: list[str], env: dict | None = None, cwd: Path | None = None, timeout: float = 120,
            **kw) -> subprocess.CompletedProcess:
    """Run ``python -m edgecam ARGS`` in a subprocess; returns the completed process (text mode)."""
    env = dict(env if env is not None else os.environ)
    env.setdefault("PYTHONPATH", str(REPO))
    return subprocess.run([sys.executable, "-m", "edgecam", *args], env=env, cwd=cwd or REPO,
                          capture_output=True, text=True, timeout=timeout, **kw)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def broker(tmp_path):
    """A running mosquitto on 127.0.0.1 for one test (skips when the binary is missing); see tests/mosquitto.py."""
    from tests.mosquitto import Mosquitto

    with Mosquitto(tmp_path) as b:
        yield b


def _mounted_tmpfs(tmp_path, size: str):
    """A tmpfs of ``size`` mounted at tmp_path/disk for one test (needs root; skipped where mount is not allowed)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({proc.stderr.strip() or proc.returncode}); needs root")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KB tmpfs: a disk that fills up within a run."""
    yield from _mounted_tmpfs(tmp_path, "64k")


@pytest.fixture
def half_mb_disk(tmp_path):
    """A 512 KB tmpfs: room for the events history, not for a big snapshot or clip."""
    yield from _mounted_tmpfs(tmp_path, "512k")


# End-to-end tests: the ones that start edgecam (or a venv, a browser, an X
# server) as a process of its own and watch it work. `-m "not e2e"` leaves them
# out for a fast run while developing; `make test` runs everything.
E2E = (
    "e2e/", "tools/", "events/test_web.py", "events/test_h264.py", "pipeline/test_app.py", "test_cli.py", "test_cli_opencv.py", "measure/test_bench.py", "measure/test_compare.py",
    "service/test_run_notify.py", "service/test_retry.py", "service/test_systemd.py", "outputs/test_http_browser.py",
    "outputs/test_display.py", "outputs/test_http_live_result.py", "events/test_web_states.py", "test_cli_flags.py",
    "model/backends/test_edgetpu_cli.py", "outputs/test_mosaic.py", "pipeline/test_cameras.py",
    "pipeline/test_cameras_picamera2.py",
)


def pytest_collection_modifyitems(config, items):
    tests = Path(__file__).resolve().parent
    for item in items:
        rel = Path(item.fspath).resolve().relative_to(tests).as_posix()
        if rel.startswith(E2E):
            item.add_marker(pytest.mark.e2e)


# A skip for a missing system package says so in its reason as "apt install PKG..." or "apt-get install
# [-y] PKG..." (machine-readable: the one convention); `make test` ends with one line naming them all.
APT_REASON = re.compile(r"\bapt(?:-get)? install (?:-y )?([a-z0-9][a-z0-9.+-]*(?: [a-z0-9][a-z0-9.+-]*)*)")


def skip_packages(reason: str) -> list[str]:
    """The system packages a skip reason names (see APT_REASON)."""
    return [pkg for m in APT_REASON.finditer(reason) for pkg in m.group(1).split()]


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or hasattr(config, "workerinput"):  # an xdist worker: the controller says it once
        return
    counts: dict[str, int] = {}
    for rep in reporter.stats.get("skipped", []):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        for pkg in dict.fromkeys(skip_packages(reason)):
            counts[pkg] = counts.get(pkg, 0) + 1
    if counts:  # after pytest's own last line: the one thing to do about the skips
        reporter.write_line("skipped for want of system packages: " + ", ".join(
            f"{pkg} ({n} test{'s' * (n > 1)})" for pkg, n in sorted(counts.items())) +
            f"; sudo apt-get install {' '.join(sorted(counts))} (.ci/run installs them all)")
