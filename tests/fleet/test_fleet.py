"""``edgecam fleet`` and ``edgecam fleet push`` against nodes on a real Mosquitto (tests/fleet/nodes.py)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("paho.mqtt.client", reason="paho-mqtt not installed: pip install 'edgecam[mqtt]'")

from edgecam.errors import EXIT_FLEET, EXIT_MODEL, EXIT_TEMPFAIL  # noqa: E402
from edgecam import registry  # noqa: E402
from edgecam.model import custom_models  # noqa: E402
from edgecam.registry.store import sha256_file  # noqa: E402
from tests.commands.test_learn import command as main  # noqa: E402  (the CLI in this process)
from tests.doubles import wait_until  # noqa: E402
from tests.fleet.nodes import Node, learned  # noqa: E402
from tests.mosquitto import Subscriber, free_port  # noqa: E402


@pytest.fixture
def fleet(broker, tmp_path, monkeypatch):
    """``fleet(*args)`` runs ``edgecam fleet ... --broker <the test broker>``; the nodes made are stopped after."""
    monkeypatch.chdir(tmp_path)  # no ./config.yaml
    monkeypatch.delenv("EDGECAM_CONFIG", raising=False)
    made = []

    def node(name, **kw):
        n = Node(broker, tmp_path, name, **kw)
        made.append(n)
        return n

    def run(*args, capsys):
        sub = list(args[:1]) if args[:1] == ("push",) else []
        code = main(["fleet", "--broker", f"{broker.host}:{broker.port}", *sub, *args[len(sub):]])
        out = capsys.readouterr()
        return code, out.out, out.err

    run.node = node
    yield run
    for n in made:
        if n.hub is not None:
            n.down()


def model_file(tmp_path, name="garage", seed=1):
    return custom_models.save(learned(name, seed), tmp_path / "pushed")


def test_lists_every_node_online_or_offline_as_table_json_and_prometheus(fleet, tmp_path, capsys):
    port = free_port()
    a = fleet.node("cam-a", http_port=port).up()
    b = fleet.node("cam-b", commands=False, http_port=free_port(), http_host="127.0.0.1").up()
    b.down()  # its info stays, its availability says offline
    code, out, _ = fleet("--json", capsys=capsys)
    assert code == 0
    nodes = {n["node"]: n for n in json.loads(out)}
    assert set(nodes) == {"cam-a", "cam-b"}
    assert nodes["cam-a"]["online"] is True and nodes["cam-b"]["online"] is False
    assert nodes["cam-a"]["cameras"][0]["model"] == "base"
    assert nodes["cam-a"]["cameras"][0]["model_sha256"] == a.base_sha
    assert nodes["cam-a"]["host"] == "host-cam-a" and nodes["cam-a"]["push"] is True
    assert nodes["cam-b"]["push"] is False
    code, out, _ = fleet(capsys=capsys)
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["NODE", "HOST", "STATUS"]
    assert [line.split()[:3] for line in lines[1:]] == [["cam-a", "host-cam-a", "online"],
                                                         ["cam-b", "host-cam-b", "offline"]]
    targets = tmp_path / "sd.json"
    code, out, _ = fleet("--prometheus", str(targets), capsys=capsys)
    assert code == 0 and "left out, serving /metrics on their loopback address only (http.host): cam-b" in out
    sd = json.loads(targets.read_text())  # only the node serving HTTP to other machines
    assert sd == [{"targets": [f"host-cam-a:{port}"],
                   "labels": {"node": "cam-a", "host": "host-cam-a", "edgecam_version": nodes["cam-a"]["version"]}}]


def test_push_of_a_learned_model_switches_every_node_then_rollback(fleet, tmp_path, capsys):
    nodes = [fleet.node(f"cam-{k}").up() for k in "abc"]
    path = model_file(tmp_path)
    sha = sha256_file(path)
    code, out, err = fleet("push", str(path), "--to", "all", "--timeout", "20", capsys=capsys)
    assert code == 0, out + err
    for n in nodes:
        assert f"{n.name}: ok, running garage (sha256 {sha[:12]})" in out
        assert n.camera.model == "garage"
        assert sha256_file(n.models / "garage.head.npz") == sha
    assert "3 ok, 0 failed, 0 offline" in out
    # what the nodes show now
    listed = {n["node"]: n for n in json.loads(fleet("--json", capsys=capsys)[1])}
    wait_until(lambda: all(json.loads(fleet("--json", capsys=capsys)[1])[i]["cameras"][0]["model"] == "garage"
                           for i in range(3)), "the node info shows the new model", 10)
    assert all(n["last_push"]["ok"] and n["last_push"]["sha256"] == sha for n in listed.values())

    code, out, err = fleet("push", "--rollback", "--to", "cam-a", "cam-b", "--timeout", "20", capsys=capsys)
    assert code == 0, out + err
    assert [n.camera.model for n in nodes] == ["base", "base", "garage"]
    assert f"cam-a: ok, running base (sha256 {nodes[0].base_sha[:12]})" in out


def test_a_node_that_fails_keeps_its_model_and_the_push_exits_7(fleet, tmp_path, capsys):
    a, b = fleet.node("cam-a").up(), fleet.node("cam-b").up()
    b.camera.refuse = "garage: learned on another file of mobilenet_v1_0.25_128; learn it again"
    path = model_file(tmp_path)
    code, out, err = fleet("push", str(path), "--to", "all", "--timeout", "20", capsys=capsys)
    assert code == EXIT_FLEET
    assert "cam-a: ok" in out
    assert "cam-b: FAILED" in out and "learned on another file" in out and "still running base" in out
    assert err.strip().splitlines() == ["edgecam: fleet push: 1 of 2 node(s) failed (above); they keep their model"]
    assert (a.camera.model, b.camera.model) == ("garage", "base")
    assert not (b.models / "garage.head.npz").exists()  # the file it could not use is not left behind


def test_an_offline_node_applies_the_push_when_it_reconnects(fleet, broker, tmp_path, capsys):
    a, b = fleet.node("cam-a").up(), fleet.node("cam-b").up()
    b.down()
    path = model_file(tmp_path)
    code, out, err = fleet("push", str(path), "--to", "all", "--timeout", "20", capsys=capsys)
    assert code == 0, out + err
    assert "cam-b: offline; it applies the push when it reconnects" in out and "1 ok, 0 failed, 1 offline" in out
    acks = Subscriber(broker, ["edgecam/cam-b/push/ack"])
    try:
        b.up()  # the retained request comes with the subscription
        wait_until(lambda: b.camera.model == "garage", "cam-b switched after reconnecting", 15)
        ack = json.loads(acks.wait("edgecam/cam-b/push/ack")[-1])
        assert ack["ok"] and ack["sha256"] == sha256_file(path)
        b.down()
        b.up()  # once applied, a restart does not apply it again
        assert b.fleet.receiver.state["done"] == ack["id"]
    finally:
        acks.close()


def test_a_node_without_commands_is_skipped_by_all_and_fails_by_name(fleet, tmp_path, capsys):
    a, b = fleet.node("cam-a").up(), fleet.node("cam-b", commands=False).up()
    path = model_file(tmp_path)
    code, out, _ = fleet("push", str(path), "--to", "all", "--timeout", "20", capsys=capsys)
    assert code == 0 and "cam-b: skipped: it takes no push (mqtt.commands: false)" in out
    assert "1 ok, 0 failed, 0 offline (they apply it when they reconnect), 1 skipped" in out
    code, out, _ = fleet("push", str(path), "--to", "cam-b", "--timeout", "20", capsys=capsys)
    assert code == EXIT_FLEET and "cam-b: FAILED: it takes no push" in out
    assert (a.camera.model, b.camera.model) == ("garage", "base")


def test_bad_input_is_one_line(fleet, tmp_path, capsys):
    fleet.node("cam-a").up()
    fleet.node("cam-b", commands=False).up()
    code, _, err = fleet("push", "no_such_model", "--to", "all", capsys=capsys)
    assert code == 2 and "neither a file nor a registry model name" in err
    code, _, err = fleet("push", "mobilenet_v3_small", "--to", "cam-z", capsys=capsys)
    assert code == 2 and "no node named cam-z on the broker (nodes: cam-a, cam-b)" in err
    bad = tmp_path / "x.head.npz"
    bad.write_bytes(b"not a model")
    code, _, err = fleet("push", str(bad), "--to", "all", capsys=capsys)
    assert code == EXIT_MODEL and "cannot read it" in err
    code, _, err = main(["fleet", "--broker", f"127.0.0.1:{free_port()}"]), None, capsys.readouterr().err
    assert code == EXIT_TEMPFAIL and "unreachable" in err and "\n" not in err.strip()


def test_a_malformed_request_changes_nothing_and_is_answered(fleet, broker, capsys):
    a = fleet.node("cam-a").up()
    acks = Subscriber(broker, ["edgecam/cam-a/push/ack"])
    try:
        for n, payload in enumerate((b"{", json.dumps({"id": "x1", "kind": "file", "model": "../etc",
                                                       "sha256": "0" * 64, "size": 10, "chunks": 1,
                                                       "blob": "b"}).encode()), 1):
            acks.client.publish("edgecam/cam-a/push", payload, qos=1, retain=True)  # as fleet push does
            answers = [json.loads(p) for p in acks.wait("edgecam/cam-a/push/ack", n)]
        assert [x["ok"] for x in answers] == [False, False]
        assert "not JSON" in answers[0]["error"] and "not a model name" in answers[1]["error"]
        assert a.camera.model == "base"
    finally:
        acks.close()


def test_a_registry_model_is_fetched_and_verified_by_the_node(fleet, model_env, capsys):
    a = fleet.node("cam-a").up()
    code, out, err = fleet("push", "mobilenet_v1_0.25_128", "--to", "cam-a", "--timeout", "20", capsys=capsys)
    # The node has it now, checked against the registry's SHA-256; this node's camera runs learned models only.
    fetched = a.models / "mobilenet_v1_0.25_128_quant.tflite"
    assert fetched.is_file() and sha256_file(fetched) == registry.load_registry()["mobilenet_v1_0.25_128"].sha256
    assert code == EXIT_FLEET and "cam-a: FAILED" in out and "is not on this node" in out, out + err
    assert a.camera.model == "base"
