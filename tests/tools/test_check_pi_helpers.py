"""check-pi's helpers (tools/check-pi/helpers.sh) under the script's ``set -euo pipefail``.

On a fresh machine nothing is mounted under the cache, and the first ``scrub`` of
a folder that does not exist yet must not end the script (it once did: ``grep``
found no mount, exited 1, and pipefail made the whole pipeline fail, 47 s into
``make check-pi``). The helpers are sourced into bash exactly as check-pi sources
them. With root, a real mount under the scrubbed folder is unmounted (and what
is under it kept), and a sibling whose name merely starts the same is left alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

HELPERS = REPO / "tools" / "check-pi" / "helpers.sh"


def _bash(script: str, cwd: Path) -> subprocess.CompletedProcess:
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    return subprocess.run(["bash", "-c", f"set -euo pipefail\n. {HELPERS}\n{script}\necho reached the end"],
                          capture_output=True, text=True, cwd=cwd, timeout=60)


def _mounted(path: Path) -> bool:
    """From /proc/mounts: os.path.ismount misses a bind mount within one file system."""
    return str(path) in {line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()}


def test_scrub_with_an_empty_cache_and_nothing_mounted(tmp_path):
    cache = tmp_path / "cache"
    done = _bash(f"""
        mkdir -p {cache}/roots {cache}/runs
        scrub {cache}/runs/src && mkdir -p {cache}/runs/src     # the first scrub: nothing there, nothing mounted
        touch {cache}/runs/src/file
        scrub {cache}/runs/src                                  # something there, nothing mounted
        scrub {cache}/roots/bookworm.tmp
        """, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("reached the end")
    assert not (cache / "runs" / "src").exists()
    assert (cache / "roots").is_dir()


def test_scrub_unmounts_first_and_keeps_to_its_folder(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting needs root")
    outside = tmp_path / "outside"           # bind-mounted into the scrubbed folder: must survive
    outside.mkdir()
    (outside / "keep").write_text("host data")
    run, sibling = tmp_path / "run", tmp_path / "runs"
    (run / "root" / "dev").mkdir(parents=True)
    sibling.mkdir()
    if subprocess.run(["mount", "--bind", str(outside), str(run / "root" / "dev")], capture_output=True).returncode:
        pytest.skip("bind mounts are not allowed here")
    subprocess.run(["mount", "--bind", str(outside), str(sibling)], check=True)
    try:
        done = _bash(f"scrub {run}", tmp_path)
        assert done.returncode == 0, done.stderr
        assert not run.exists()
        assert not _mounted(run / "root" / "dev")
        assert (outside / "keep").read_text() == "host data"
        assert _mounted(sibling), "a mount under a folder that only starts with the same name was unmounted"
    finally:
        for m in (run / "root" / "dev", sibling):
            subprocess.run(["umount", "-l", str(m)], capture_output=True)
