"""/metrics of a real run passes Prometheus' own checker (issue 21: ``promtool check metrics`` exited 3,
"edgecam_inference_ms metric names should not contain abbreviated units"). The run is started with the
flags a first try uses, --http and --mqtt, no YAML for either."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.e2e import Edgecam, run_args, shared_video, write_config
from tests.mosquitto import free_port

PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus; .ci/run does)")
def test_a_live_metrics_scrape_passes_promtool(tmp_path, model_env, shared_dir, broker):
    video = shared_video(shared_dir)
    port = free_port()
    # An events rule too: its metrics (per-rule counters, bytes) are part of the scrape.
    cfg = write_config(tmp_path / "cfg.yaml", {"events": {"dir": str(tmp_path / "ev"), "rules": [
        {"name": "tench", "label": "tench", "clip": True}]}})
    args = run_args(cfg, "--source", str(video), "--realtime", "--http", f"127.0.0.1:{port}",
                    "--mqtt", f"{broker.host}:{broker.port}")
    with Edgecam(args, model_env, tmp_path) as app:
        app.wait_http(port)
        app.wait_until(lambda: app.metrics().get("edgecam_mqtt_published_total", 0) > 0
                       and app.metrics().get("edgecam_frames_inferred_total", 0) > 10, "results published")
        status, _, body = app.get("/metrics")
        app.stop()
    assert status == 200
    text = body.decode()
    for family in ("edgecam_inference_seconds", "edgecam_mqtt_published_total", "edgecam_events_bytes",
                   "edgecam_events_started_total"):
        assert f"# TYPE {family} " in text, family
    (tmp_path / "metrics.txt").write_text(text)
    proc = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and not proc.stdout.strip() and not proc.stderr.strip(), \
        f"promtool check metrics exited {proc.returncode}: {proc.stdout}{proc.stderr}"
