"""End-to-end tests: ``python -m edgecam run`` as a real subprocess.

Helpers shared by the tests in this folder: write a config, start the run with
its stderr in a file (a pipe could fill up and block it), talk HTTP to it,
parse its ``/metrics`` and its ``--log`` file, and stop it with a signal.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.doubles import wait_until
from tests.mosquitto import free_port  # noqa: F401  (re-exported for the tests)

REPO = Path(__file__).resolve().parents[2]
VIDEO = Path("video") / "imagenet20_640x480_30fps.mp4"
# How long a run may take to start (model load, HTTP bind) or to stop on SIGTERM.
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0


def shared_video(shared_dir: Path) -> Path:
    """The shared 30 fps clip, or skip saying what is missing."""
    path = shared_dir / VIDEO
    if not path.is_file():
        pytest.skip(f"{path} not found: the end-to-end runs play the shared video")
    return path


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def read_log(path: Path) -> list[dict]:
    """The JSON Lines written so far (a last line still being written is left out)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return out


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text format -> {"name{labels}": value} (comments skipped)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        out[name] = float(value)
    return out


def http_get(url: str, token: str | None = None, timeout: float = 5.0) -> tuple[int, dict, bytes]:
    """(status, headers, body) of a GET; HTTP errors are returned, not raised."""
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class Edgecam:
    """One ``python -m edgecam run ARGS`` subprocess, started in ``cwd``.

    Use as a context manager: the process is killed on the way out if a test
    failed before stopping it.
    """

    def __init__(self, args: list[str], env: dict, cwd: Path, name: str = "edgecam"):
        self.cwd = Path(cwd)
        self.stderr_path = self.cwd / f"{name}.stderr"
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgecam", "run", *args], env=env, cwd=self.cwd,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._stderr,
        )
        self.http_base: str | None = None

    # ------------------------------------------------------------ lifetime

    def __enter__(self) -> "Edgecam":
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._stderr.close()

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def stderr(self) -> str:
        """What the run wrote to stderr so far (the child writes the file itself)."""
        return self.stderr_path.read_text(errors="replace")

    def send(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = STOP_TIMEOUT_S) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            pytest.fail(f"edgecam did not exit within {timeout} s; stderr:\n{self.stderr()[-3000:]}")

    def stop(self) -> int:
        """SIGTERM, then the exit code."""
        self.send(signal.SIGTERM)
        return self.wait()

    def fail(self, why: str) -> None:
        pytest.fail(f"{why}; edgecam {'running' if self.running else f'exited {self.proc.returncode}'}, "
                    f"stderr:\n{self.stderr()[-3000:]}")

    def wait_until(self, predicate, what: str, timeout: float = START_TIMEOUT_S, interval: float = 0.1):
        """Poll ``predicate()`` until it returns something truthy; fail if the run exits first."""

        def check():
            if not self.running:
                self.fail(f"waiting for {what}")

        return wait_until(predicate, what, timeout, interval, check=check)

    # ---------------------------------------------------------------- HTTP

    def wait_http(self, port: int, token: str | None = None) -> None:
        """Wait for ``/healthz`` to answer 200 (frames are flowing)."""
        self.http_base = f"http://127.0.0.1:{port}"

        def healthy():
            try:
                return http_get(self.http_base + "/healthz", token, timeout=1.0)[0] == 200
            except OSError:
                return False

        self.wait_until(healthy, f"/healthz 200 on port {port}")

    def get(self, path: str, token: str | None = None) -> tuple[int, dict, bytes]:
        return http_get(self.http_base + path, token)

    def metrics(self, token: str | None = None) -> dict[str, float]:
        status, _, body = self.get("/metrics", token)
        assert status == 200, f"/metrics answered {status}: {body[:200]!r}"
        return parse_metrics(body.decode())


def run_args(config: Path, *extra: str) -> list[str]:
    return ["--config", str(config), "--display", "none", *extra]


def env_with(env: dict, **more: str) -> dict:
    out = dict(env)
    out.update(more)
    out.setdefault("PYTHONPATH", str(REPO))
    return out


__all__ = [
    "Edgecam", "REPO", "free_port", "env_with", "http_get", "parse_metrics", "read_log", "run_args",
    "shared_video", "write_config",
]
