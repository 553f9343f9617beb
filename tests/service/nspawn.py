"""A real systemd as PID 1 in a container, for the systemd suite (tests/service/test_systemd.py).

:func:`build_root` makes a minimal Debian Bookworm root with debootstrap
(systemd 252 and Python 3.11, as on Raspberry Pi OS Bookworm) once, and keeps
it under ``build/nspawn/`` (``$EDGECAM_NSPAWN_CACHE``) for later runs.
:class:`Machine` boots a throwaway overlay of it with ``systemd-nspawn -b``
and runs commands inside with ``nsenter``; the cached root is never changed.

Needs root, debootstrap and systemd-nspawn (``apt install debootstrap
systemd-container``; ``.ci/run`` installs them). :func:`unavailable` says
why the suite cannot run here, for a skip message.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("EDGECAM_NSPAWN_CACHE", REPO / "build" / "nspawn"))
SUITE = "bookworm"  # Raspberry Pi OS Bookworm: systemd 252, Python 3.11
# systemd, dbus and Python as on a Pi; make for `sudo make install-service`;
# procps (/bin/kill, for ExecReload=) is in every Raspberry Pi OS image but not
# in minbase. No X11/GL libraries, as on Pi OS Lite: the service venv gets the
# headless OpenCV.
PACKAGES = ("systemd", "systemd-sysv", "dbus", "python3", "python3-venv", "make", "procps")
FALLBACK_MIRROR = "http://deb.debian.org/debian"
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: What the suite checked, how long each step took, and what it saw: (check, seconds or None, detail).
REPORT: list[tuple[str, float | None, str]] = []


def unavailable() -> str | None:
    """Why a container cannot be booted here, or None."""
    if not sys.platform.startswith("linux"):
        return "systemd-nspawn needs Linux"
    if os.geteuid() != 0:
        return "needs root: debootstrap and systemd-nspawn run as root (CI does)"
    missing = [tool for tool in ("debootstrap", "systemd-nspawn", "nsenter") if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not installed (apt install debootstrap systemd-container)"
    return None


def debian_mirror() -> str:
    """The Debian mirror apt's own sources name for SUITE (deb822 or one-line format)."""
    candidates: list[str] = []
    sources = Path("/etc/apt/sources.list.d")
    files = sorted(sources.glob("*.sources")) + sorted(sources.glob("*.list")) + [Path("/etc/apt/sources.list")]
    for f in files:
        try:
            text = f.read_text()
        except OSError:
            continue
        if f.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
                if SUITE in fields.get("Suites", "").split() and "deb" in fields.get("Types", "deb").split():
                    candidates += fields.get("URIs", "").split()
        else:
            for m in re.finditer(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", text, re.M):
                if m.group(2) == SUITE:
                    candidates.append(m.group(1))
    return candidates[0] if candidates else FALLBACK_MIRROR


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def build_root() -> tuple[Path, float | None]:
    """The cached root folder, built first if needed; and how long the build took (None: cached)."""
    key = hashlib.sha256(" ".join((SUITE, os.uname().machine, *PACKAGES)).encode()).hexdigest()[:10]
    dest = CACHE / f"{SUITE}-{key}"
    with _locked(CACHE / ".build.lock"):  # two test runs must not build the same root at once
        if (dest / ".complete").is_file():
            return dest / "root", None
        tmp = CACHE / f".{dest.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        log = CACHE / "debootstrap.log"
        mirror = debian_mirror()
        t0 = time.monotonic()
        with open(log, "w") as out:
            r = subprocess.run(
                ["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES), SUITE, str(tmp / "root"),
                 mirror],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=1800,
            )  # fmt: skip
        if r.returncode != 0:
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            shutil.rmtree(tmp, ignore_errors=True)
            raise RuntimeError(f"debootstrap {SUITE} from {mirror} failed (exit {r.returncode}): " + " | ".join(tail))
        for deb in (tmp / "root" / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()  # 100 MB the container never needs
        (tmp / ".complete").write_text(f"{SUITE} {mirror} {' '.join(PACKAGES)}\n")
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
        for old in CACHE.glob(f"{SUITE}-*"):  # roots built for another package list
            if old != dest:
                shutil.rmtree(old, ignore_errors=True)
        return dest / "root", time.monotonic() - t0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_mounted(path: Path) -> bool:
    target = str(path.resolve())
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)


def _unmount_and_remove(run_dir: Path) -> None:
    merged = run_dir / "root"
    for _ in range(10):
        if not _is_mounted(merged):
            break
        if subprocess.run(["umount", str(merged)], capture_output=True).returncode != 0:
            time.sleep(0.5)
    if _is_mounted(merged):
        subprocess.run(["umount", "--lazy", str(merged)], capture_output=True)
    shutil.rmtree(run_dir, ignore_errors=True)


def clean_stale_runs() -> None:
    """Remove the overlays of earlier runs whose test process is gone (killed mid-run)."""
    for run_dir in CACHE.glob("run-*"):
        m = re.match(r"run-(\d+)-", run_dir.name)
        if m and not _alive(int(m.group(1))):
            if run_dir.is_dir():
                _unmount_and_remove(run_dir)
            else:
                run_dir.unlink(missing_ok=True)  # its boot log


class Machine:
    """One booted container: a fresh overlay of ``base`` with systemd as PID 1.

    ``binds`` maps host paths to ``(path in the container, read_only)``.
    """

    def __init__(self, base: Path, name: str, binds: dict[Path, tuple[str, bool]]):
        self.base = base
        self.name = name
        self.binds = binds
        self.run_dir = CACHE / f"run-{os.getpid()}-{name}"
        self.root = self.run_dir / "root"
        self.log_path = self.run_dir.with_name(self.run_dir.name + ".log")
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None  # the container's systemd, as the host sees it

    # -- life cycle ------------------------------------------------------------

    def start(self, timeout: float = 180) -> float:
        """Boot; returns the seconds until ``systemctl is-system-running`` answered."""
        _unmount_and_remove(self.run_dir)
        upper, work = self.run_dir / "upper", self.run_dir / "work"
        for d in (upper, work, self.root):
            d.mkdir(parents=True)
        overlay = f"lowerdir={self.base},upperdir={upper},workdir={work}"
        r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", overlay, str(self.root)],
                           capture_output=True, text=True)
        if r.returncode != 0:  # e.g. the cache itself sits on an overlay: copy instead
            self.root.rmdir()
            subprocess.run(["cp", "-a", "--reflink=auto", str(self.base), str(self.root)], check=True)
        args = ["systemd-nspawn", "--register=no", "--keep-unit", "--quiet", "-D", str(self.root), "-b",
                "--console=pipe", f"--machine={self.name}"]
        for host, (inside, read_only) in self.binds.items():
            args.append(f"--bind{'-ro' if read_only else ''}={host}:{inside}")
        t0 = time.monotonic()
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = t0 + timeout
        while self.pid is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"systemd-nspawn did not boot: {self.boot_log_tail()}")
            self.pid = self._container_init()
            time.sleep(0.1)
        while True:  # PID 1 exists before its bus does: ask until it answers
            r = self.run("systemctl is-system-running --wait", check=False,
                         timeout=max(10.0, deadline - time.monotonic()))
            state = r.stdout.strip()
            if state in ("running", "degraded"):
                return time.monotonic() - t0
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"container systemd is {state or 'not answering'}: {r.stderr.strip()}; "
                                   f"{self.boot_log_tail()}")
            time.sleep(0.2)

    def _container_init(self) -> int | None:
        """The child of systemd-nspawn that is PID 1 in its own PID namespace."""
        assert self.proc is not None
        try:
            tasks = os.listdir(f"/proc/{self.proc.pid}/task")
        except FileNotFoundError:
            return None
        for tid in tasks:
            try:
                children = Path(f"/proc/{self.proc.pid}/task/{tid}/children").read_text().split()
            except OSError:
                continue
            for child in children:
                try:
                    status = Path(f"/proc/{child}/status").read_text()
                except OSError:
                    continue
                m = re.search(r"^NSpid:\s+(.*)$", status, re.M)
                if m and m.group(1).split()[-1] == "1":
                    return int(child)
        return None

    def boot_log_tail(self, lines: int = 15) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return "(no output)"

    def stop(self, timeout: float = 60) -> None:
        """Shut the container down (SIGTERM: nspawn asks its systemd to power off), then remove the overlay."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)
        if getattr(self, "log", None):
            self.log.close()
        _unmount_and_remove(self.run_dir)

    # -- inside ----------------------------------------------------------------

    def path(self, inside: str) -> Path:
        """The host path of a path inside the container (for reading and writing files)."""
        return self.root / inside.lstrip("/")

    def run(self, command: str, check: bool = True, timeout: float = 300, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess:
        """Run a shell command inside the container as root, with a clean environment."""
        assert self.pid is not None
        environ = {"PATH": CONTAINER_PATH, "HOME": "/root", "LANG": "C.UTF-8", "SYSTEMD_COLORS": "0",
                   "SYSTEMD_PAGER": "", **(env or {})}
        argv = ["nsenter", "-t", str(self.pid), "-a", "env", "-i", *(f"{k}={v}" for k, v in environ.items()),
                "sh", "-c", command]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise AssertionError(f"in the container, `{command}` exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
        return r
