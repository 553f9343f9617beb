"""``edgecam fleet`` with real ``edgecam run`` nodes on a real Mosquitto (tests/e2e/fleet_nodes.py): the list,
and a learned model pushed to every node and switched live in the running process. A node offline during a
push is tested in tests/fleet/test_fleet.py; tools/fleet_proof.py runs 10 nodes, one restarted, and measures."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("paho.mqtt.client", reason="paho-mqtt not installed: pip install 'edgecam[mqtt]'")

from edgecam import registry  # noqa: E402
from edgecam.registry.store import sha256_file  # noqa: E402
from tests.doubles import wait_until  # noqa: E402
from tests.e2e.fleet_nodes import NodeProc, fleet, learn_models  # noqa: E402
from tests.mosquitto import Subscriber  # noqa: E402

TIMEOUT = 60.0


def test_two_nodes_listed_and_a_learned_then_a_registry_model_pushed_and_switched_live(broker, tmp_path, shared_dir):
    v1, v2 = learn_models(tmp_path, shared_dir)
    nodes = [NodeProc(tmp_path, f"node{k}", broker, v1, shared_dir) for k in (1, 2)]
    acks = Subscriber(broker, ["edgecam/+/push/ack", "edgecam/+/node"], timeout=TIMEOUT)
    try:
        for n in nodes:
            n.start()
        for n in nodes:
            wait_until(lambda n=n: acks.on(f"edgecam/{n.name}/node") or n.proc.poll() is not None,
                       f"{n.name}'s node info", TIMEOUT)
            assert n.proc.poll() is None, n.log()
        listed = json.loads(fleet(broker, "--json", shared=shared_dir).stdout)
        assert sorted((x["node"], x["online"], x["cameras"][0]["model"], x["cameras"][0]["model_sha256"])
                      for x in listed) == [(n.name, True, "garage", sha256_file(v1)) for n in nodes]

        sha = sha256_file(v2)
        done = fleet(broker, "push", str(v2), "--to", "all", "--timeout", "30", shared=shared_dir)
        assert done.returncode == 0, done.stdout + done.stderr + nodes[0].log()
        for n in nodes:
            assert f"{n.name}: ok, running garage (sha256 {sha[:12]})" in done.stdout
            assert sha256_file(n.models / "garage.head.npz") == sha
        assert "now running the learned model garage" in nodes[0].log()  # live: the same process

        # A registry model: the node fetches it (checked against the registry's SHA-256) and switches live.
        done = fleet(broker, "push", "mobilenet_v1_0.25_128", "--to", "node1", "--timeout", "30", shared=shared_dir)
        assert done.returncode == 0, done.stdout + done.stderr + nodes[0].log()
        sha = registry.load_registry()["mobilenet_v1_0.25_128"].sha256
        assert f"node1: ok, running mobilenet_v1_0.25_128 (sha256 {sha[:12]})" in done.stdout
    finally:
        for n in nodes:
            n.stop()
        acks.close()


def test_a_node_of_two_cameras_takes_a_registry_model_by_starting_its_run_again(broker, tmp_path, shared_dir):
    # Two cameras share one stage: a new model is not swapped in place, the run starts again in the same
    # process with it (run_restarting), and the next run answers the push once it runs the model.
    v1, _ = learn_models(tmp_path, shared_dir)
    node = NodeProc(tmp_path, "pair", broker, v1, shared_dir)
    cfg = json.loads(node.config.read_text())
    source = cfg.pop("source")
    cfg["cameras"] = [{"name": "door", "source": source}, {"name": "yard", "source": source}]
    node.config.write_text(json.dumps(cfg))
    infos = Subscriber(broker, ["edgecam/pair/node"], timeout=TIMEOUT)
    try:
        node.start()
        wait_until(lambda: infos.on("edgecam/pair/node") or node.proc.poll() is not None, "the node info", TIMEOUT)
        assert node.proc.poll() is None, node.log()
        done = fleet(broker, "push", "mobilenet_v1_0.25_128", "--to", "pair", "--timeout", "40", shared=shared_dir)
        assert done.returncode == 0, done.stdout + done.stderr + node.log()
        sha = registry.load_registry()["mobilenet_v1_0.25_128"].sha256
        assert f"pair: ok, running mobilenet_v1_0.25_128 (sha256 {sha[:12]})" in done.stdout
        assert "starting again: model mobilenet_v1_0.25_128" in node.log()
        assert node.proc.poll() is None and node.starts == 1  # the same process
    finally:
        node.stop()
        infos.close()
