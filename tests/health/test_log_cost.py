"""check-config says what the prediction log will cost the SD card a day (docs/pi-health.md)."""

from __future__ import annotations

from tests.conftest import run_cli


def test_check_config_says_the_cost_a_day_of_the_log(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"log: {{path: {tmp_path / 'p.jsonl'}, mode: every}}\nsource: {{fps: 15}}\n")
    proc = run_cli(["check-config", str(cfg)])
    assert proc.returncode == 0, proc.stderr
    ok, cost = proc.stdout.splitlines()
    assert ok == f"{cfg}: OK"
    assert cost.startswith(f"log {tmp_path / 'p.jsonl'}: mode every writes about 486.0 MB a day at 15 results a second")
    cfg.write_text(f"log: {{path: {tmp_path / 'p.jsonl'}, mode: heartbeat, heartbeat_s: 300}}\n")
    cost = run_cli(["check-config", str(cfg)]).stdout.splitlines()[1]
    assert cost.endswith("mode heartbeat writes about 108.0 KB a day (a line every 300 s) plus 375 bytes per label change")
    cfg.write_text("source: {fps: 15}\n")  # no log: nothing to say
    assert run_cli(["check-config", str(cfg)]).stdout.splitlines() == [f"{cfg}: OK"]
