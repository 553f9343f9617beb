"""``edgecam fleet`` with real ``edgecam run`` nodes on a real Mosquitto (tests/e2e/fleet_nodes.py): the list,
a learned model pushed to every node and switched live, a node stopped during a push that converges when it
comes back. tools/fleet_proof.py does the same with 10 nodes and measures it."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("paho.mqtt.client", reason="paho-mqtt not installed: pip install 'edgecam[mqtt]'")

from edgecam.registry.store import sha256_file  # noqa: E402
from tests.doubles import wait_until  # noqa: E402
from tests.e2e.fleet_nodes import NodeProc, fleet, learn_models  # noqa: E402
from tests.mosquitto import Subscriber  # noqa: E402

TIMEOUT = 60.0


def test_two_nodes_listed_pushed_live_and_one_back_from_a_restart(broker, tmp_path, shared_dir):
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

        nodes[1].stop()  # away during the rollback: it gets the retained request when it comes back
        done = fleet(broker, "push", "--rollback", "--to", "all", "--timeout", "30", shared=shared_dir)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "node2: offline; it applies the push when it reconnects" in done.stdout
        rollback_id = json.loads(acks.on("edgecam/node1/push/ack")[-1])["id"]
        nodes[1].start()

        def back():
            last = [json.loads(p) for p in acks.on("edgecam/node2/push/ack")]
            return last and last[-1]["id"] == rollback_id and last[-1]

        ack = wait_until(back, "node2's answer to the rollback after its restart", TIMEOUT)
        assert ack["ok"] and ack["sha256"] == sha256_file(v1) == sha256_file(nodes[1].models / "garage.head.npz")
    finally:
        for n in nodes:
            n.stop()
        acks.close()
