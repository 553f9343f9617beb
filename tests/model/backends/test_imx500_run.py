"""``edgecam run`` on the AI Camera in a subprocess: the fake picamera2 and kernel (see test_imx500.py) with
picamera2's real imx500.py, the camera shown the shared bird photo, the registry's real ``.rpk``.

Not checked against an AI Camera (see test_imx500.py).
"""

from __future__ import annotations

import os

from tests.model.backends.test_imx500 import FAKES
import urllib.request

from tests.e2e import REPO, Edgecam, env_with, free_port, read_log, write_config
from tests.fakes.machine import Machine


def test_run_on_the_ai_camera_waits_for_the_upload_and_logs_the_sensors_results(model_env, real_picamera2, shared_dir,
                                                                                 tmp_path):
    machine = Machine(tmp_path / "root")
    machine.add_imx500()
    env = env_with(model_env, PYTHONPATH=os.pathsep.join([str(FAKES), str(REPO)]),
                   EDGECAM_MODEL_MIRROR=os.pathsep.join([str(shared_dir / "models"), str(shared_dir / "models" / "imx500")]),
                   EDGECAM_FAKE_PICAMERA2_MODEL="pi5", EDGECAM_FAKE_PICAMERA2_SENSOR="imx500",
                   EDGECAM_FAKE_PICAMERA2_PICTURES=str(shared_dir / "images" / "bird.bmp"),
                   EDGECAM_REAL_PICAMERA2=str(real_picamera2), EDGECAM_FAKE_ROOT=str(machine.root),
                   EDGECAM_FAKE_IMX500_NETWORK=str(shared_dir / "models" / "mobilenet_v2_1.0_224_quant.tflite"),
                   EDGECAM_FAKE_IMX500_UPLOAD_FRAMES="15", EDGECAM_FAKE_IMX500_NO_TENSOR_EVERY="3")
    port = free_port()
    cfg = write_config(tmp_path / "cfg.yaml", {"model": {"name": "mobilenet_v2", "backend": "imx500"},
                                               "source": {"type": "picamera2"},
                                               "http": {"enabled": True, "port": port}})
    log = tmp_path / "log.jsonl"
    with Edgecam(["--config", str(cfg), "--display", "none", "--log", str(log)], env, tmp_path, name="imx500") as app:
        app.wait_until(lambda: len(read_log(log)) >= 20, "20 results from the AI Camera")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            metrics = dict(line.rsplit(" ", 1) for line in r.read().decode().splitlines() if line[:1] not in ("#", ""))
        code = app.stop()
    # every third frame came without a tensor (and the 15 of the upload, before the run began)
    without, inferred = float(metrics["edgecam_frames_without_result_total"]), float(metrics["edgecam_frames_inferred_total"])
    assert 0.25 * inferred <= without <= inferred, metrics
    err = app.stderr()
    assert code == 0 and "Traceback" not in err, err[-3000:]
    assert "model.backend imx500: running imx500_mobilenet_v2, the imx500 build of mobilenet_v2" in err
    assert "AI Camera: uploading the network to the sensor: " in err
    lines = read_log(log)
    assert {line["top_k"][0]["label"] for line in lines} == {"chickadee"}
    assert {line["model"] for line in lines} == {"imx500_mobilenet_v2"}
