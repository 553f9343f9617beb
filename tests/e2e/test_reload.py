"""SIGHUP re-reads the config file of a running ``edgecam run``.

Live-changeable keys (``model.top_k``, ``model.threshold``, ``smoothing``,
``log_level``) apply at once; anything else is named as needing a restart and
the run goes on unchanged.
"""

from __future__ import annotations

import json
import signal

from tests.e2e import Edgecam, free_port, read_log, run_args, shared_video, write_config

# The shared models are uint8-quantized with an output scale of 1/256: every raw
# score is a multiple of it (the log rounds to 4 decimals, hence the tolerance),
# while an EMA of scores almost never is. That tells smoothed lines from raw ones.
STEP = 1 / 256


def quantized(score: float) -> bool:
    return abs(score / STEP - round(score / STEP)) <= 0.0001 / STEP


def config(top_k: int, smoothing: str, model: str = "mobilenet_v3_small", http_port: int = 0, **source) -> dict:
    # source.realtime, log.path and display.mode come from the command line:
    # a reload must not take them for changed keys.
    return {
        "model": {"name": model, "top_k": top_k},
        "source": {"type": "opencv", "loop": True, **source},
        "smoothing": {"mode": smoothing, "window": 5},
        "http": {"enabled": bool(http_port), "port": http_port},
    }


def test_sighup_applies_top_k_and_smoothing_and_names_what_needs_a_restart(tmp_path, model_env, shared_dir):
    video = str(shared_video(shared_dir))
    port = free_port()
    cfg = write_config(tmp_path / "cfg.yaml", config(3, "none", uri=video, http_port=port))
    log = tmp_path / "log.jsonl"
    with Edgecam(run_args(cfg, "--log", str(log), "--realtime"), model_env, tmp_path) as app:
        app.wait_http(port)
        app.wait_until(lambda: len(read_log(log)) >= 20, "20 log lines")
        assert len(json.loads(app.get("/api/latest")[2])["top_k"]) == 3

        write_config(cfg, config(5, "ema", uri=video, http_port=port))
        reload_at = len(read_log(log))
        app.send(signal.SIGHUP)
        app.wait_until(lambda: "reload: applied" in app.stderr(), "the reload report on stderr")
        app.wait_until(lambda: len(read_log(log)) >= reload_at + 60, "60 more log lines")
        lines = read_log(log)
        before, after = lines[:reload_at], lines[reload_at:]
        assert all(len(line["top_k"]) == 3 for line in before)
        switch = next(i for i, line in enumerate(after) if len(line["top_k"]) == 5)
        after = after[switch:]
        assert all(len(line["top_k"]) == 5 for line in after), "top_k went back after the reload"
        scores_before = [e["score"] for line in before for e in line["top_k"]]
        scores_after = [e["score"] for line in after[1:] for e in line["top_k"]]  # [0]: EMA starts at raw
        assert all(quantized(s) for s in scores_before), "raw scores should be multiples of 1/256"
        assert sum(not quantized(s) for s in scores_after) > len(scores_after) / 2, "scores are not smoothed"

        err = app.stderr()
        applied = next(line for line in err.splitlines() if "reload: applied" in line)
        assert "model.top_k" in applied and "smoothing.mode" in applied, applied
        assert "need a restart" not in err
        assert len(json.loads(app.get("/api/latest")[2])["top_k"]) == 5  # HTTP follows too

        # A key that cannot change live: named, not applied, the run goes on.
        write_config(cfg, config(5, "ema", model="mobilenet_v2", uri=video, http_port=port))
        app.send(signal.SIGHUP)
        app.wait_until(lambda: "need a restart" in app.stderr(), "the restart notice on stderr")
        restart = next(line for line in app.stderr().splitlines() if "need a restart" in line)
        assert restart.split("reload: ")[1].startswith("model.name changed"), restart
        n = len(read_log(log))
        app.wait_until(lambda: len(read_log(log)) >= n + 30, "30 more log lines after the second reload")
        assert app.running
        assert {line["model"] for line in read_log(log)} == {"mobilenet_v3_small"}

        assert app.stop() == 0
    assert "Traceback" not in app.stderr()


def test_sighup_with_a_broken_file_keeps_the_running_config(tmp_path, model_env, shared_dir):
    video = str(shared_video(shared_dir))
    cfg = write_config(tmp_path / "cfg.yaml", config(3, "none", uri=video))
    log = tmp_path / "log.jsonl"
    with Edgecam(run_args(cfg, "--log", str(log), "--realtime"), model_env, tmp_path) as app:
        app.wait_until(lambda: len(read_log(log)) >= 10, "10 log lines")
        cfg.write_text("model:\n  top_k: many\n")
        app.send(signal.SIGHUP)
        app.wait_until(lambda: "keeping the running config" in app.stderr(), "the reload error on stderr")
        error = next(line for line in app.stderr().splitlines() if "keeping the running config" in line)
        assert "model.top_k" in error and "'many'" in error, error
        n = len(read_log(log))
        app.wait_until(lambda: len(read_log(log)) >= n + 30, "30 more log lines")
        assert all(len(line["top_k"]) == 3 for line in read_log(log))
        assert app.stop() == 0

