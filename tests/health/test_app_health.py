"""A running App on a replayed Raspberry Pi tree: systemctl status names the problem only while it holds,
one warning line says it, and /metrics-to-be and MQTT get the readings (the outputs' on_health)."""

from __future__ import annotations

import logging
import time

from edgecam.outputs.base import Sink
from tests.doubles import FakeCamera, wait_until
from tests.health.trees import pi_tree, write
from tests.service.test_run_notify import FakeModel, start_app, stop_app, systemd  # noqa: F401 (a fixture)


class HealthRecorder(Sink):
    """An output that keeps the throttling flags of each reading it is handed."""

    name = "health-recorder"

    def __init__(self):
        self.seen: list[int | None] = []

    def on_health(self, health) -> None:
        self.seen.append(health.throttled)


def test_status_warning_and_outputs_follow_the_board(systemd, monkeypatch, tmp_path, caplog):  # noqa: F811
    caplog.set_level(logging.INFO)
    root = pi_tree(tmp_path / "root", throttled="50005")
    monkeypatch.setenv("EDGECAM_HOST_ROOT", str(root))
    model = FakeModel()
    model.gate.set()
    cam = FakeCamera("fake-cam", fps=50)
    app, thread, out = start_app(monkeypatch, model, lambda cfg, size=None, **kw: cam)
    recorder = HealthRecorder()
    app.outputs.sinks.append(recorder)
    seen = recorder.seen
    try:
        systemd.wait_for("STATUS=", contains="fps, tabby 80% — UNDER-VOLTAGE, throttled")
        wait_until(lambda: 0x50005 in seen, what="the reading handed to the outputs")
        uv = [r for r in caplog.records if r.levelno == logging.WARNING and "UNDER-VOLTAGE" in r.getMessage()]
        assert len(uv) == 1, [r.getMessage() for r in uv]

        write(root, "sys/devices/platform/soc/soc:firmware/get_throttled", "50000\n")
        fixed = time.monotonic()
        app.health.poll()  # the next reading now, not in poll_s
        wait_until(lambda: any("fps" in m and "—" not in m for m in systemd.texts()[-3:]
                               if m.startswith("STATUS=")) and systemd.got("STATUS=", after=fixed),
                   what="a status without the problem")
        wait_until(lambda: 0x50000 in seen, what="the new reading handed to the outputs")
    finally:
        assert stop_app(app, thread, out) == 0
    assert not app.health._thread.is_alive()  # stopped with the run
