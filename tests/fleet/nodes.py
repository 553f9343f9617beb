"""Fleet nodes for tests: a real :class:`MqttHub` and :class:`FleetNode` each, on a real Mosquitto, with a camera
that switches models the way a run does (the model must be there and load), so the fleet's side is tested
without a pipeline (tests/e2e/test_fleet_run.py runs real ``edgecam run`` nodes)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from edgecam.config import schema as config_mod
from edgecam.errors import ModelError
from edgecam.fleet.node import CameraView, FleetNode
from edgecam.model import custom_models
from edgecam.model.heads import Head
from edgecam.outputs.mqtt_hub import MqttHub
from edgecam.registry.store import sha256_file
from tests.doubles import wait_until


def learned(name: str, seed: int = 0, labels=("empty", "car")) -> custom_models.CustomModel:
    """A small learned model (a nearest-class-mean head on 16 values) named ``name``."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(len(labels), 16)).astype(np.float32)
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    head = Head("ncm", tuple(labels), {"means": means}, 0.5)
    return custom_models.CustomModel(name, "mobilenet_v1_0.25_128", "0" * 64, head, examples={k: 3 for k in labels})


class Camera:
    """The model a node's one camera runs; :meth:`switch` as the run's (a missing or bad model is refused)."""

    def __init__(self, model: str, folder: Path):
        self.model, self.folder, self.refuse = model, folder, None

    def switch(self, name: str) -> None:
        if self.refuse:
            raise ModelError(self.refuse)
        path = custom_models.find(name, self.folder)
        if path is None:
            raise ModelError(f"model.name: {name!r} is not on this node")
        custom_models.load(path)
        self.model = name


class Node:
    """One node: its config, models folder, state dir, hub and fleet node (started by :meth:`up`)."""

    def __init__(self, broker, root: Path, name: str, *, commands: bool = True, http_port: int | None = None,
                 http_host: str = "0.0.0.0"):
        self.name, self.root = name, root / name
        self.models = self.root / "models"
        path = custom_models.save(learned("base", seed=hash(name) % 1000), self.models)
        self.base_sha = sha256_file(path)
        cfg = config_mod.Config()
        self.cfg = dataclasses.replace(
            cfg, state_dir=str(self.root / "state"),
            model=dataclasses.replace(cfg.model, name="base", dir=str(self.models)),
            http=dataclasses.replace(cfg.http, enabled=http_port is not None, port=http_port or 8080, host=http_host),
            mqtt=dataclasses.replace(cfg.mqtt, enabled=True, host=broker.host, port=broker.port, client_id=name,
                                     topic_prefix=f"edgecam/{name}", commands=commands))
        self.camera = Camera("base", self.models)
        self.hub = self.fleet = None

    def up(self) -> Node:
        self.hub = MqttHub(self.cfg.mqtt, hostname=f"host-{self.name}")
        self.fleet = FleetNode(self.hub, self.cfg, lambda: [CameraView(None, self.camera.model)],
                               switch=self.camera.switch)
        self.hub.start()
        self.fleet.start()
        wait_until(lambda: self.hub.link_status()["connected"], f"{self.name} connected", 15)
        return self

    def down(self) -> None:
        """Stop as a run stops: the info stays (retained), availability says offline."""
        self.fleet.close()
        self.hub.close()
