"""Real ``edgecam run`` processes as fleet nodes (the e2e test and tools/fleet_proof.py).

Each node: the demo source at a low rate, a learned model ``garage`` on ``mobilenet_v1_0.25_128`` (the
cheapest base) in a model folder of its own, a state directory of its own, ``mqtt.commands: true``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from edgecam import registry
from tests.scenes import Scene, write_examples

REPO = Path(__file__).resolve().parents[2]
BASE = "mobilenet_v1_0.25_128"


def learn_models(root: Path, shared: Path) -> tuple[Path, Path]:
    """Two versions of the learned model ``garage`` (other examples, so other bytes): (v1, v2) file paths.
    The base model is fetched from ``shared`` into ``root/models``, which the nodes' folders copy."""
    models = root / "models"
    registry.fetch(BASE, dest_dir=models, mirror=shared / "models", progress=False)
    scene = Scene(shared / "images" / "imagenet-sample")
    out = []
    for version, (per_state, seed) in enumerate(((3, 1), (4, 2)), 1):
        examples = root / f"examples{version}"
        write_examples(scene, examples, per_state, seed)
        folder = root / f"learned{version}"
        shutil.copytree(models, folder, dirs_exist_ok=True)
        subprocess.run([sys.executable, "-m", "edgecam", "learn", str(examples), "--name", "garage", "--base", BASE,
                        "--method", "ncm", "--dir", str(folder)], check=True, capture_output=True, env=env(shared))
        out.append(folder / "garage.head.npz")
    return out[0], out[1]


def env(shared: Path) -> dict:
    out = dict(os.environ, PYTHONPATH=str(REPO), EDGECAM_MODEL_MIRROR=str(shared))
    out.pop("EDGECAM_CONFIG", None)
    return out


class NodeProc:
    """One node: its folder (config, models, state, log) and its ``edgecam run`` process."""

    def __init__(self, root: Path, name: str, broker, v1: Path, shared: Path, fps: float = 1.0):
        self.name, self.dir, self.shared = name, root / name, shared
        self.models = self.dir / "models"
        shutil.copytree(v1.parent, self.models, dirs_exist_ok=True)
        cfg = {"model": {"name": "garage", "threads": 1, "interpreters": 1, "dir": str(self.models)},
               "source": {"type": "demo", "fps": fps, "loop": True}, "display": {"mode": "none"},
               "state_dir": str(self.dir / "state"),
               "mqtt": {"enabled": True, "host": broker.host, "port": broker.port, "client_id": name,
                        "topic_prefix": f"edgecam/{name}", "commands": True}}
        self.config = self.dir / "cfg.yaml"
        self.config.write_text(json.dumps(cfg))  # JSON is YAML
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = open(self.dir / f"run{self.starts}.log", "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "edgecam", "run", "--config", str(self.config)],
                                     env=env(self.shared), stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-2000:] for p in sorted(self.dir.glob("run*.log")))


def fleet(broker, *args: str, shared: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """``edgecam fleet --broker <broker> ARGS`` in a process of its own."""
    sub = list(args[:1]) if args[:1] == ("push",) else []
    return subprocess.run([sys.executable, "-m", "edgecam", "fleet", "--broker", f"{broker.host}:{broker.port}",
                           *sub, *args[len(sub):]], capture_output=True, text=True, env=env(shared),
                          timeout=timeout, cwd=shared)  # a folder without a config.yaml
