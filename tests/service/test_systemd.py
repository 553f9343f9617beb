"""The service under a real systemd: installed as the README says, driven with systemctl, read with journalctl.

A Debian Bookworm root (systemd 252, Python 3.11, as on Raspberry Pi OS
Bookworm) boots in systemd-nspawn (tests/service/nspawn.py). Inside it, the
checkout is copied to /home/pi/edgecam and installed with
``make install-service`` from PyPI (the host's CA bundle is bound in for pip)
with the model from the shared mirror; the source is the shared video, or
the repo's fake picamera2 for the stall checks. Then each promise of the unit
is checked the way an admin would see it.

The tests run in file order and share one container (each leaves the
service running with the good config). Marked ``systemd``; they skip, with
the reason, only where a container cannot be booted (not root, no nspawn),
unless ``EDGECAM_REQUIRE_SYSTEMD=1`` (set by .ci/run) turns that into a
failure. Timings go to the terminal summary and build/nspawn/report.txt.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from tests.conftest import SHARED, SHARED_REASON, have_shared
from tests.service import nspawn

pytestmark = pytest.mark.systemd

REPO = Path(__file__).resolve().parents[2]
VIDEO = "imagenet20_640x480_30fps.mp4"
TEST_DIR = "/srv/edgecam-test"  # test inputs inside the container (the service can read /srv)
CONFIG = "/etc/edgecam/config.yaml"
LOG = "/var/log/edgecam/edgecam.jsonl"
STALL_FILE = "/run/edgecam-test/stall"
WAIT_S = 120.0  # bound for "it happened" on a loaded machine, not a speed requirement

REPORT = nspawn.REPORT  # (check, seconds, detail) for the closing summary (tests/service/conftest.py)


def good_config(**changes) -> dict:
    """The service's config: the default model on the shared clip, paced and looped like a camera."""
    cfg = {
        "model": {"name": "mobilenet_v3_small", "top_k": 3},
        "source": {"type": "opencv", "uri": f"/srv/shared/video/{VIDEO}", "loop": True, "realtime": True},
        "log": {"path": LOG},
    }
    for key, value in changes.items():
        section, name = key.split(".")
        cfg.setdefault(section, {})[name] = value
    return cfg


# --------------------------------------------------------------------------- the container


class Service:
    """systemctl / journalctl for the edgecam unit in a booted container."""

    def __init__(self, machine: nspawn.Machine):
        self.m = machine

    def sh(self, command: str, check: bool = True, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
        return self.m.run(command, check=check, timeout=timeout, **kw)

    def systemctl(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        return self.sh("systemctl --no-pager " + " ".join(args), check=check, timeout=timeout)

    def show(self, *props: str) -> dict[str, str]:
        out = self.systemctl("show", "edgecam", "-p", ",".join(props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def cursor(self) -> str:
        """Where the journal is now; :meth:`journal` reads what comes after."""
        self.sh("journalctl --flush", check=False)
        out = self.sh("journalctl -n 1 -o json --no-pager").stdout.strip().splitlines()
        return json.loads(out[-1])["__CURSOR"]

    def journal(self, after: str) -> list[tuple[float, str, str]]:
        """(time, who, message) of the unit's journal after ``after``: edgecam's lines and systemd's about it."""
        out = self.sh(f"journalctl -u edgecam -o json --no-pager --after-cursor='{after}'").stdout
        entries = []
        for line in out.splitlines():
            e = json.loads(line)
            msg = e.get("MESSAGE")
            if isinstance(msg, list):  # not UTF-8: journald stores bytes
                msg = bytes(msg).decode("utf-8", "replace")
            entries.append((int(e["__REALTIME_TIMESTAMP"]) / 1e6, e.get("SYSLOG_IDENTIFIER", "?"), msg or ""))
        return entries

    def lines(self, after: str) -> list[str]:
        return [f"{who}: {msg}" for _, who, msg in self.journal(after)]

    def wait_journal(self, after: str, pattern: str, timeout: float = WAIT_S) -> float:
        """Wait until a journal line after ``after`` matches ``pattern``; return its time."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for t, who, msg in self.journal(after):
                if rx.search(f"{who}: {msg}"):
                    return t
            if time.monotonic() > deadline:
                pytest.fail(f"no journal line matching {pattern!r} within {timeout:.0f} s:\n"
                            + "\n".join(self.lines(after)[-40:]))
            time.sleep(0.5)

    def wait(self, what: str, check: Callable[[], object], timeout: float = WAIT_S):
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                st = self.systemctl("status", "edgecam", "-n", "30", check=False).stdout
                pytest.fail(f"not within {timeout:.0f} s: {what}\n{st}")
            time.sleep(0.25)

    def write(self, inside: str, text: str, owner: str | None = None, mode: int = 0o644) -> None:
        path = self.m.path(inside)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
        if owner:
            self.sh(f"chown {owner} {inside}")

    def set_config(self, cfg: dict | str) -> None:
        """Replace /etc/edgecam/config.yaml, keeping its owner and mode (root:edgecam 640)."""
        text = cfg if isinstance(cfg, str) else yaml.safe_dump(cfg, sort_keys=False)
        self.m.path(CONFIG).write_text(text)

    def drop_in(self, name: str, text: str | None) -> None:
        """Add (or, with None, remove) a drop-in for the unit, then daemon-reload."""
        path = f"/etc/systemd/system/edgecam.service.d/{name}.conf"
        if text is None:
            self.m.path(path).unlink(missing_ok=True)
            d = self.m.path(path).parent
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
        else:
            self.write(path, text)
        self.systemctl("daemon-reload")

    def log_records(self) -> list[dict]:
        path = self.m.path(LOG)
        if not path.is_file():
            return []
        lines = path.read_text().splitlines()
        if lines and not path.read_text().endswith("\n"):
            lines = lines[:-1]  # a line being written right now
        return [json.loads(line) for line in lines]

    def restore(self) -> None:
        """The good config, no test drop-ins, the service running: what every test starts from."""
        self.set_config(good_config())
        for name in ("50-test-registry", "50-test-fake-camera"):
            self.drop_in(name, None)
        self.systemctl("reset-failed", "edgecam", check=False)
        self.systemctl("restart", "edgecam", timeout=WAIT_S)


def _snapshot(root: Path) -> dict[str, tuple]:
    """Every path of the container's file system that installing could touch, with what identifies
    its state: mode and owner, and the content hash (files in /etc) or size and mtime (others)."""
    import hashlib

    skip = {"proc", "sys", "dev", "run", "tmp", "var/tmp", "var/cache", "var/log/journal", "root/.cache",
            "srv/shared", TEST_DIR.lstrip("/"), "etc/ssl/certs/ca-certificates.crt"}
    out: dict[str, tuple] = {}
    for dirpath, dirs, files in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir
        dirs[:] = [d for d in dirs if os.path.join(rel_dir, d) not in skip]
        for name in dirs + files:
            rel = os.path.join(rel_dir, name)
            if rel in skip:
                continue
            st = os.lstat(os.path.join(dirpath, name))
            if os.path.islink(os.path.join(dirpath, name)):
                what = ("link", os.readlink(os.path.join(dirpath, name)))
            elif name in files and rel.startswith("etc/"):
                what = ("file", hashlib.sha256(Path(dirpath, name).read_bytes()).hexdigest())
            elif name in files:
                what = ("file", st.st_size, st.st_mtime_ns)
            else:
                what = ("dir",)
            out["/" + rel] = (st.st_mode, st.st_uid, st.st_gid, *what)
    return out


def _diff(before: dict, after: dict) -> list[str]:
    # Shadow-utils keep the previous /etc/passwd, group, shadow, gshadow as "<file>-":
    # any useradd/userdel rewrites them; they are the system's backups, not ours.
    backups = {"/etc/passwd-", "/etc/group-", "/etc/shadow-", "/etc/gshadow-"}
    changes = [f"added {p}" for p in after if p not in before]
    changes += [f"removed {p}" for p in before if p not in after]
    changes += [f"changed {p}" for p in before if p in after and before[p] != after[p]]
    return sorted(c for c in changes if c.split(" ", 1)[1] not in backups)


def _checkout_files() -> list[str]:
    r = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                       capture_output=True, text=True, check=True)
    return [f for f in r.stdout.split("\0") if f and (REPO / f).is_file()]


@pytest.fixture(scope="module")
def service():
    required = os.environ.get("EDGECAM_REQUIRE_SYSTEMD") == "1"
    give_up = pytest.fail if required else pytest.skip
    if not have_shared():
        give_up(SHARED_REASON)
    why = nspawn.unavailable()
    if why:
        give_up(f"systemd suite: {why}")
    nspawn.clean_stale_runs()
    base, build_s = nspawn.build_root()
    REPORT.append(("build Debian root (debootstrap, cached in build/nspawn)", build_s,
                   "cached" if build_s is None else nspawn.SUITE))
    pip_cache = nspawn.CACHE / "pip-cache"
    pip_cache.mkdir(parents=True, exist_ok=True)
    binds = {SHARED: ("/srv/shared", True), pip_cache: ("/root/.cache/pip", False)}
    ca = Path(os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt")
    if ca.is_file():  # pip inside must trust what the host trusts (e.g. a proxy's CA)
        binds[ca] = ("/etc/ssl/certs/ca-certificates.crt", True)
    machine = nspawn.Machine(base, "edgecam-test", binds)
    try:
        try:
            boot_s = machine.start()
        except RuntimeError as e:
            give_up(f"systemd-nspawn cannot boot a container here: {e}")
        version = machine.run("systemctl --version").stdout.split("\n")[0]
        REPORT.append(("boot container to 'running'", boot_s, version))
        svc = Service(machine)
        # A Pi user's checkout: /home/pi/edgecam, owned by pi.
        svc.sh("useradd --create-home --shell /bin/bash pi")
        home = machine.path("/home/pi/edgecam")
        for f in _checkout_files():
            (home / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, home / f)
        svc.sh("chown -R pi:pi /home/pi/edgecam")
        svc.write(f"{TEST_DIR}/config.yaml", yaml.safe_dump(good_config(), sort_keys=False))
        shutil.copytree(REPO / "tests" / "fakes", machine.path(f"{TEST_DIR}/fakes"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        svc.before_install = _snapshot(machine.root)
        yield svc
    finally:
        machine.stop()


def _timed(name: str):
    """Record how long a test took in REPORT."""

    def wrap(fn):
        @functools.wraps(fn)
        def inner(*a, **kw):
            t0 = time.monotonic()
            detail = fn(*a, **kw)
            REPORT.append((name, time.monotonic() - t0, detail or "ok"))

        return inner

    return wrap


def _usec(value: str) -> float:
    return int(value) / 1e6


def _realtime(shown: str) -> float:
    """A timestamp as `systemctl show --timestamp=us+utc` prints it, e.g. 'Sat 2026-11-28 13:26:52.123456 UTC'."""
    from datetime import timezone

    return datetime.strptime(shown, "%a %Y-%m-%d %H:%M:%S.%f UTC").replace(tzinfo=timezone.utc).timestamp()


# --------------------------------------------------------------------------- install


@_timed("make install-service (pip from PyPI, model from the mirror), enable, start")
def test_make_install_service_as_the_readme_says(service):
    r = service.sh(f"cd /home/pi/edgecam && make install-service SERVICE_ARGS='--config {TEST_DIR}/config.yaml'",
                   env={"EDGECAM_MODEL_MIRROR": "/srv/shared/models"}, check=False, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "run: systemctl restart edgecam" in r.stdout
    assert service.systemctl("is-enabled", "edgecam").stdout.strip() == "enabled"
    assert service.systemctl("is-active", "edgecam").stdout.strip() == "active"
    # sudo make install-service leaves no root-owned build files in the user's checkout.
    stray = service.sh("find /home/pi/edgecam ! -user pi").stdout.split()
    assert stray == [], stray
    return "exit 0; active, enabled; nothing written into the checkout"


# --------------------------------------------------------------------------- start, status, log


@_timed("systemctl start returns after READY=1 (first frame classified)")
def test_start_returns_only_after_the_first_frame_is_classified(service):
    service.systemctl("stop", "edgecam")
    service.sh(f"rm -f {LOG}")
    t0 = time.time()
    service.systemctl("start", "edgecam", timeout=WAIT_S)
    returned = time.time()
    st = service.show("ActiveState", "ExecMainStartTimestampMonotonic", "ActiveEnterTimestampMonotonic",
                      "ActiveEnterTimestamp", "ExecMainPID")
    assert st["ActiveState"] == "active"
    first = service.wait("the first JSONL record", lambda: service.log_records()[:1])[0]
    # The first result existed before systemd called the unit active (READY=1):
    # capture wall time + capture-to-result latency, against ActiveEnterTimestamp.
    result_at = datetime.fromisoformat(first["timestamp"]).timestamp() + first["latency_ms"] / 1000
    active_at = _realtime(service.sh("systemctl show edgecam -p ActiveEnterTimestamp --value --timestamp=us+utc")
                          .stdout.strip())
    assert first["frame"] == 0
    assert result_at <= active_at + 0.002, (result_at, active_at)  # ms rounding of the ISO timestamp
    to_ready = _usec(st["ActiveEnterTimestampMonotonic"]) - _usec(st["ExecMainStartTimestampMonotonic"])
    return (f"start took {returned - t0:.2f} s; process start -> READY {to_ready:.2f} s; "
            f"first result {active_at - result_at:.3f} s before active")


@_timed("systemctl status shows FPS and label")
def test_status_shows_fps_and_label(service):
    status = re.compile(r"^\d+\.\d fps, .+ \d+%$")
    text = service.wait("a status line with fps and label",
                        lambda: (t := service.show("StatusText")["StatusText"]) and status.match(t) and t)
    out = service.systemctl("status", "edgecam").stdout
    shown = re.search(r'Status: "(.*)"', out)
    assert shown and status.match(shown.group(1)), out
    return f'Status: "{text}"'


@_timed("JSONL log in /var/log/edgecam")
def test_jsonl_log_lands_in_var_log_edgecam(service):
    records = service.wait("JSONL records", lambda: len(r := service.log_records()) >= 10 and r)
    assert all(len(r["top_k"]) == 3 and r["model"] == "mobilenet_v3_small" for r in records)
    st = service.sh(f"stat -c '%U:%G %a' {LOG} /var/log/edgecam").stdout.split("\n")
    assert st[0] == "edgecam:edgecam 640", st  # UMask=0027: not world-readable
    assert st[1].startswith("edgecam:edgecam"), st
    return f"{len(records)} records so far, every line parses; {st[0]}"


# --------------------------------------------------------------------------- reload, stop


@_timed("systemctl reload: top_k applied live, restart-only keys named, broken config refused")
def test_reload_applies_top_k_and_names_keys_needing_restart(service):
    pid = service.show("MainPID")["MainPID"]
    cur = service.cursor()
    service.set_config(good_config(**{"model.top_k": 5, "model.threads": 1}))
    service.systemctl("reload", "edgecam", timeout=60)
    service.wait_journal(cur, r"reload: applied model\.top_k")
    service.wait_journal(cur, r"reload: model\.threads changed but need a restart")
    n = len(service.log_records())
    service.wait("records with 5 labels", lambda: any(len(r["top_k"]) == 5 for r in service.log_records()[n:]))
    assert service.show("MainPID")["MainPID"] == pid

    # A broken config: the reload fails visibly and the service keeps running the old one.
    cur = service.cursor()
    service.set_config("model:\n  top_k: 0\n")
    r = service.systemctl("reload", "edgecam", check=False, timeout=60)
    assert r.returncode != 0
    service.wait_journal(cur, r"edgecam: edgecam: config error: /etc/edgecam/config.yaml: model\.top_k")
    st = service.show("MainPID", "ActiveState")
    assert st == {"MainPID": pid, "ActiveState": "active"}
    n = len(service.log_records())
    service.wait("records after the refused reload", lambda: len(service.log_records()) > n + 5)
    service.set_config(good_config())
    service.systemctl("reload", "edgecam", timeout=60)
    return "same PID throughout; broken config: `systemctl reload` exit 1, service kept running"


@_timed("systemctl stop: exit 0 inside TimeoutStopSec")
def test_stop_exits_0_well_inside_timeout_stop_sec(service):
    cur = service.cursor()
    t0 = time.monotonic()
    service.systemctl("stop", "edgecam", timeout=60)
    took = time.monotonic() - t0
    st = service.show("Result", "ExecMainCode", "ExecMainStatus", "TimeoutStopUSec", "ActiveState")
    assert st["ActiveState"] == "inactive" and st["Result"] == "success", st
    assert st["ExecMainCode"] == "1" and st["ExecMainStatus"] == "0", st  # CLD_EXITED, status 0
    lines = service.lines(cur)
    assert any("SIGTERM received, stopping" in line for line in lines), lines
    assert not any("timed out" in line or "Killing process" in line for line in lines), lines
    service.systemctl("start", "edgecam", timeout=WAIT_S)
    return f"stop took {took:.2f} s (TimeoutStopSec={st['TimeoutStopUSec']}); exit status 0, Result=success"


# --------------------------------------------------------------------------- failures


def _fails_once(service, pattern: str) -> str:
    """Restart with the current (bad) config; it must fail with exit 2, once, and stay failed."""
    cur = service.cursor()
    r = service.systemctl("restart", "edgecam", check=False, timeout=WAIT_S)
    assert r.returncode != 0
    time.sleep(8)  # > RestartSec=5: a restart would have been scheduled by now
    st = service.show("ActiveState", "Result", "ExecMainStatus", "NRestarts")
    assert st == {"ActiveState": "failed", "Result": "exit-code", "ExecMainStatus": "2", "NRestarts": "0"}, st
    lines = service.lines(cur)
    errors = [line for line in lines if line.startswith("edgecam: edgecam: ")]
    assert len(errors) == 1 and re.search(pattern, errors[0]), lines
    assert not any("Scheduled restart job" in line for line in lines), lines
    assert any("status=2/INVALIDARGUMENT" in line for line in lines), lines
    status = service.systemctl("status", "edgecam", check=False).stdout
    assert errors[0].split(": ", 1)[1] in status  # the admin sees the reason in systemctl status
    return errors[0].split(": ", 1)[1]


@_timed("bad config: fails once (exit 2), no restart loop")
def test_bad_config_fails_once_clearly(service):
    service.set_config("model:\n  top_k: 0\n  colour: blue\n")
    try:
        return "journal: " + _fails_once(service, r"config error: /etc/edgecam/config.yaml: 2 problems")
    finally:
        service.restore()


@_timed("bad model: fails once (exit 2), no restart loop")
def test_bad_model_fails_once_clearly(service):
    service.write("/var/lib/edgecam/broken.tflite", "this is not a model\n" * 100, owner="edgecam:edgecam")
    service.set_config(good_config(**{"model.name": "/var/lib/edgecam/broken.tflite",
                                      "model.labels": "/var/lib/edgecam/models/imagenet_labels.txt"}))
    try:
        return "journal: " + _fails_once(service, r"broken\.tflite: not a TFLite model")
    finally:
        service.sh("rm -f /var/lib/edgecam/broken.tflite")
        service.restore()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@_timed("transient failure (model server down): retried with back-off, exit 75, unit restarts it")
def test_transient_download_failure_is_retried_with_back_off(service, tmp_path):
    # A registry whose model sits behind an HTTP server that is down at first. The
    # container shares the host's network: 127.0.0.1 is this machine's loopback.
    sums = dict(reversed(line.split()) for line in (SHARED / "models/SHA256SUMS").read_text().splitlines() if line)
    port = _free_port()
    www = tmp_path / "www"
    www.mkdir()
    shutil.copyfile(SHARED / "models/mobilenet_v1_0.25_128_quant.tflite", www / "netmodel.tflite")
    shutil.copyfile(SHARED / "models/imagenet_labels.txt", www / "imagenet_labels.txt")
    service.write(f"{TEST_DIR}/models.yaml", yaml.safe_dump({"models": {"netmodel": {
        "description": "mobilenet_v1_0.25_128 behind a local server", "url": f"http://127.0.0.1:{port}/netmodel.tflite",
        "file": "netmodel.tflite", "sha256": sums["mobilenet_v1_0.25_128_quant.tflite"],
        "labels_url": f"http://127.0.0.1:{port}/imagenet_labels.txt", "labels_sha256": sums["imagenet_labels.txt"],
        "input_size": 128, "preprocess": {"input": "uint8"}}}}))
    service.drop_in("50-test-registry", f"[Service]\nEnvironment=EDGECAM_REGISTRY={TEST_DIR}/models.yaml\n")
    service.set_config(good_config(**{"model.name": "netmodel"}))
    httpd = None
    try:
        cur = service.cursor()
        t0 = time.time()
        service.systemctl("restart", "--no-block", "edgecam")
        service.wait_journal(cur, r"model download failed \(attempt 1\).*Connection refused.*trying again in 5 s")
        status = service.show("StatusText", "ActiveState")
        assert status["ActiveState"] == "activating" and "trying again in" in status["StatusText"], status
        exited = service.wait_journal(cur, r"Main process exited, code=exited, status=75/TEMPFAIL")
        # The network comes back while systemd waits RestartSec=5 before the next start.
        httpd = ThreadingHTTPServer(("127.0.0.1", port), functools.partial(_Quiet, directory=str(www)))
        threading.Thread(target=httpd.serve_forever, name="model-server", daemon=True).start()
        restarted = service.wait_journal(cur, r"Scheduled restart job, restart counter is at 1")
        service.wait("active after the restart", lambda: service.show("ActiveState")["ActiveState"] == "active")
        entries = service.journal(cur)
        retries = [(t, m) for t, _, m in entries if "model download failed" in m and t < exited]
        waits = [int(re.search(r"trying again in (\d+) s", m).group(1)) for _, m in retries]
        assert waits == [5, 10, 20], retries
        gaps = [b[0] - a[0] for a, b in zip(retries, retries[1:])]
        # journald stamps lines as it receives them: allow it 0.1 s of jitter around the 5 and 10 s waits
        assert gaps[0] >= 4.9 and gaps[1] >= 9.9 and gaps[1] > gaps[0], gaps
        assert any("netmodel: /var/lib/edgecam/models/netmodel.tflite ready" in m for _, _, m in entries), entries
        assert service.show("NRestarts")["NRestarts"] == "1"
        records = service.wait("records from the downloaded model",
                               lambda: [r for r in service.log_records() if r["model"] == "netmodel"])
        assert restarted - exited >= 4.5  # RestartSec=5
        return (f"attempts waited {waits} s (journal gaps {', '.join(f'{g:.1f}' for g in gaps)} s), exit 75 after "
                f"{exited - t0:.0f} s, restarted {restarted - exited:.1f} s later, active with the downloaded "
                f"model ({len(records)} records)")
    finally:
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        service.sh("rm -f /var/lib/edgecam/models/netmodel.tflite")
        service.restore()


@_timed("stalled camera: edgecam reconnects first; stays hung -> watchdog restart")
def test_stalled_camera_reconnects_first_then_the_watchdog_restarts(service):
    service.drop_in("50-test-fake-camera", "\n".join([
        "[Service]",
        f"Environment=PYTHONPATH={TEST_DIR}/fakes",
        f"Environment=EDGECAM_FAKE_PICAMERA2_PICTURES=/srv/shared/video/{VIDEO}",
        f"Environment=EDGECAM_FAKE_PICAMERA2_STALL_FILE={STALL_FILE}",
    ]) + "\n")
    service.set_config(good_config(**{"source.type": "picamera2", "source.uri": None}))
    service.sh(f"mkdir -p {Path(STALL_FILE).parent} && rm -f {STALL_FILE}")
    try:
        service.systemctl("restart", "edgecam", timeout=WAIT_S)
        fps = re.compile(r"^\d+\.\d fps")
        service.wait("frames from the fake camera", lambda: fps.match(service.show("StatusText")["StatusText"]))
        pid = service.show("MainPID")["MainPID"]

        # 1. A short stall: edgecam's own reconnect brings the camera back; systemd does nothing.
        cur = service.cursor()
        service.sh(f"touch {STALL_FILE}")
        service.wait_journal(cur, r"no frame for .*; reconnecting")
        service.sh(f"rm {STALL_FILE}")
        service.wait_journal(cur, r"reconnected, frames flowing again")
        service.wait("frames again", lambda: fps.match(service.show("StatusText")["StatusText"]))
        assert service.show("MainPID", "NRestarts") == {"MainPID": pid, "NRestarts": "0"}
        assert not any("Watchdog" in line for line in service.lines(cur))

        # 2. A camera that stays hung: reconnects keep failing to bring frames, the
        #    watchdog pings stop, and systemd kills and restarts the service.
        cur = service.cursor()
        service.sh(f"touch {STALL_FILE}")
        stalled_at = time.time()
        reconnect_at = service.wait_journal(cur, r"reconnecting")
        killed_at = service.wait_journal(cur, r"Watchdog timeout")
        service.sh(f"rm {STALL_FILE}")
        service.wait_journal(cur, r"Failed with result 'watchdog'")
        service.wait("running again with a new process", lambda: (s := service.show("ActiveState", "MainPID"))
                     ["ActiveState"] == "active" and s["MainPID"] != pid)
        assert reconnect_at < killed_at
        assert service.show("NRestarts")["NRestarts"] == "1"
        lines = service.lines(cur)
        reconnects = sum("reconnecting" in line for line in lines if line.startswith("edgecam"))
        return (f"short stall: reconnected, same PID, no watchdog; hung: {reconnects} reconnect attempt(s), "
                f"watchdog kill {killed_at - stalled_at:.0f} s after the stall, restarted once")
    finally:
        service.sh(f"rm -f {STALL_FILE}")
        service.restore()


# --------------------------------------------------------------------------- sandbox


@_timed("sandbox: writable only StateDirectory/LogsDirectory; security rating online == offline")
def test_sandbox_applies_to_the_running_service(service):
    pid = service.show("MainPID")["MainPID"]
    status = service.sh(f"cat /proc/{pid}/status").stdout
    fields = dict(re.findall(r"^(\w+):\s+(.*)$", status, re.M))
    uid = service.sh("id -u edgecam").stdout.strip()
    assert fields["Uid"].split()[0] == uid and fields["NoNewPrivs"] == "1" and fields["Seccomp"] == "2", fields
    assert int(fields["CapEff"], 16) == 0 and int(fields["CapBnd"], 16) == 0, fields

    # Try writing as the service would: in its mount namespace, as its user.
    def can_write(path: str) -> bool:
        return service.sh(f"nsenter -t {pid} -m -S {uid} -G {uid} sh -c 'echo x > {path}/.probe && rm {path}/.probe'",
                          check=False).returncode == 0

    writable = ["/var/lib/edgecam", "/var/log/edgecam", "/tmp"]
    read_only = ["/etc/edgecam", "/etc", "/opt/edgecam/venv", "/usr/local/bin", "/srv", "/var", "/root"]
    assert {p: can_write(p) for p in writable + read_only} == {p: p in writable for p in writable + read_only}
    # /home is hidden (ProtectHome=), /tmp is its own (PrivateTmp=).
    assert service.sh(f"nsenter -t {pid} -m ls -A /home").stdout.strip() == ""
    service.sh(f"nsenter -t {pid} -m -S {uid} -G {uid} touch /tmp/edgecam-private-probe")
    assert not service.m.path("/tmp/edgecam-private-probe").exists()

    online = service.sh("systemd-analyze security edgecam --no-pager").stdout
    offline = service.sh("systemd-analyze security --offline=true --no-pager /etc/systemd/system/edgecam.service").stdout
    rate = re.compile(r"Overall exposure level for \S+: ([0-9.]+)")
    on, off = float(rate.search(online).group(1)), float(rate.search(offline).group(1))
    assert on == off and on <= 2.5, (online, offline)

    # XNNPACK's cpuinfo must see /proc/cpuinfo inside the sandbox (no ProcSubset=pid).
    journal = service.sh("journalctl -u edgecam --no-pager -o cat").stdout
    assert "Error in cpuinfo" not in journal
    return f"exposure {on} online = {off} offline; writable: {', '.join(writable)}; CapEff 0, NoNewPrivs, seccomp"


# --------------------------------------------------------------------------- uninstall


def _units_left(service, seconds: float = 10.0) -> str:
    """The edgecam units systemd still lists, once it had up to ``seconds`` to let them go.

    A unit whose file is gone stays listed ("not-found inactive dead") until
    systemd's garbage collection gets to it in its event loop, after
    ``daemon-reload`` returned: on a busy machine that is not at once.
    """
    deadline = time.monotonic() + seconds
    while True:
        left = service.sh("systemctl list-units --all --no-legend 'edgecam*'").stdout.strip()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


@_timed("uninstall keeps config/models/logs/user only; purge leaves nothing")
def test_uninstall_then_purge_leave_nothing_behind(service):
    r = service.sh("cd /home/pi/edgecam && make uninstall-service", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert _units_left(service) == ""
    assert service.systemctl("cat", "edgecam", check=False).returncode != 0
    left = _diff(service.before_install, _snapshot(service.m.root))
    kept_dirs = ("/etc/edgecam", "/var/lib/edgecam", "/var/log/edgecam")
    user_files = {"/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow"}
    unexpected = [c for c in left if not c.split(" ", 1)[1].startswith(kept_dirs)
                  and c.split(" ", 1)[1] not in user_files]
    assert unexpected == [], unexpected
    assert "added /etc/edgecam/config.yaml" in left and "added /var/lib/edgecam/models" in left, left  # kept
    assert service.sh("getent passwd edgecam", check=False).returncode == 0  # kept with its files

    # Install again over the kept files (as after an upgrade), then purge.
    r = service.sh(f"cd /home/pi/edgecam && make install-service SERVICE_ARGS='--config {TEST_DIR}/config.yaml'",
                   env={"EDGECAM_MODEL_MIRROR": "/srv/shared/models"}, check=False, timeout=900)
    assert r.returncode == 0 and "keep existing /etc/edgecam/config.yaml" in r.stdout, r.stdout + r.stderr
    assert service.systemctl("is-active", "edgecam").stdout.strip() == "active"
    r = service.sh("cd /home/pi/edgecam && make uninstall-service SERVICE_ARGS=--purge", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert _diff(service.before_install, _snapshot(service.m.root)) == []
    for db in ("passwd", "group"):
        assert service.sh(f"getent {db} edgecam", check=False).returncode != 0
    assert _units_left(service) == ""
    return "uninstall: only /etc/edgecam, /var/lib/edgecam, /var/log/edgecam and the user remain; purge: nothing"
