"""Two ``edgecam run`` on one events folder: the second stops with one line and exit 4, and spoils nothing of the
first's (its event in progress, its clip being written); ``edgecam events`` reads the folder meanwhile."""

from __future__ import annotations

import pytest

from tests.e2e import Edgecam, run_args, write_config
from tests.e2e.test_events_run import CRAB, HOME, RULES, events_json
from tests.scenes import write_timeline

FPS = 10.0


@pytest.fixture(scope="module")
def photos(shared_dir):
    return shared_dir / "images" / "imagenet-sample"


def test_a_second_run_on_the_same_events_folder_is_one_line_and_exit_4(photos, model_env, tmp_path):
    video = tmp_path / "long.mp4"
    write_timeline(photos, video, [(HOME, 10), (CRAB, 600)], fps=FPS)  # a crab for a minute
    folder = tmp_path / "events"
    cfg = write_config(tmp_path / "cfg.yaml", {"events": {"dir": str(folder), "rules": RULES[:1]}})
    with Edgecam(run_args(cfg, "--source", str(video), "--realtime"), model_env, tmp_path) as first:
        def going():
            if not (folder / "events.db").exists():
                return None
            rows = events_json(folder, model_env)  # a reader: no lock needed
            parts = list((folder / "media").glob(".clip-*.part.*"))
            return (rows, parts) if rows and rows[0]["status"] == "active" and parts else None

        rows, parts = first.wait_until(going, "the crab event going on, its clip being written", timeout=60)
        with Edgecam(run_args(cfg, "--source", str(video)), model_env, tmp_path, name="second") as second:
            assert second.wait(60) == 4
        err = second.stderr()
        assert "Traceback" not in err
        lines = [line for line in err.splitlines() if "in use by another edgecam" in line]
        assert len(lines) == 1 and str(folder) in lines[0] and f"PID {first.proc.pid}" in lines[0], err
        # the first run's event and clip are as they were: not "repaired" by the second
        again = events_json(folder, model_env)
        assert [(r["id"], r["status"]) for r in again] == [(rows[0]["id"], "active")]
        assert all(p.exists() for p in parts)
        assert first.stop() == 0
    rows = events_json(folder, model_env)
    assert rows[0]["status"] == "interrupted" and rows[0]["clip"]  # stopped during it: the clip it had is kept
