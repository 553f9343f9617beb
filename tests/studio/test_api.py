"""The teach endpoints end to end, as a script would use them: draw a region on a running camera, label crops
from the review queue and the "this is" endpoint, retrain, read the evidence, use the head, follow the scene, undo."""

from __future__ import annotations

import socket
import time

import pytest

from tests.doubles import wait_until
from tests.scenes import REGION, Scene
from tests.studio import SceneCamera, crop_of

STATES = ["empty", "scooter", "tricycle"]


@pytest.fixture(scope="module")
def scene(shared_dir):
    return Scene(shared_dir / "images" / "imagenet-sample")


@pytest.fixture
def camera(scene, model_env, tmp_path):
    door = {"regions": [{"name": "door", "box": [0.0, 0.0, 0.3, 0.3], "labels": ["open", "closed"]}]}
    with SceneCamera(scene, tmp_path, config=door) as cam:
        cam.studio.feeder.gap_s = 0.15  # queue crops faster than a real camera would (the test's time)
        yield cam


def teach(cam, per_state: int = 10) -> None:
    """Label ``per_state`` crops of each state: half with "this is", half filed from the review queue."""
    for state in STATES:
        cam.show(state)
        time.sleep(0.6)  # the folder's next pass shows it
        for _ in range(per_state // 2):
            code, out = cam.call("POST", "/api/examples", {"region": "garage", "label": state})
            assert code == 201, out
            time.sleep(0.12)
        since = time.time()
        filed = 0
        while filed < per_state - per_state // 2:
            items = wait_until(lambda: [i for i in cam.call("GET", "/api/teach/review?region=garage")[1]["items"]
                                        if i["time"] >= since], "new review items", timeout=15)
            for item in items[: per_state - per_state // 2 - filed]:
                code, out = cam.call("POST", f"/api/teach/review/{item['id']}", {"state": state})
                assert code == 201, out
                filed += 1


def test_a_script_teaches_a_drawn_region_and_undoes_it(camera):
    code, out = camera.call("POST", "/api/teach/regions", {"name": "garage", "box": list(REGION),
                                                           "labels": STATES})
    assert code == 201, out
    info = wait_until(lambda: {r["name"]: r for r in camera.call("GET", "/api/teach")[1]["regions"]}.get("garage"),
                      "the drawn region running", timeout=20)
    assert info["source"] == "drawn" and info["labels"] == STATES and info["version"] is None
    door = next(r for r in camera.call("GET", "/api/teach")[1]["regions"] if r["name"] == "door")
    assert door["source"] == "config"
    # untaught: every crop is unsure, so the queue fills; its crops are the region's, at full resolution
    item = wait_until(lambda: camera.call("GET", "/api/teach/review?region=garage")[1]["items"], "a queued crop")[0]
    assert item["reason"] == "untaught"
    code, png = camera.call("GET", f"/api/teach/review/{item['id']}.png")
    assert code == 200 and crop_of(png).shape[:2] == (312, 288)  # REGION of 640x480
    teach(camera)
    counts = next(r for r in camera.call("GET", "/api/teach")[1]["regions"] if r["name"] == "garage")["examples"]
    assert counts == {s: 10 for s in STATES}
    # a mislabelled example moved to its state (what a click on a thumbnail of the evidence does), and back
    first = sorted((camera.tmp / "examples" / "garage" / "empty").glob("*.png"))[0]
    code, out = camera.call("POST", "/api/teach/relabel", {"region": "garage", "file": f"empty/{first.name}",
                                                          "state": "scooter"})
    assert code == 200 and out["file"].startswith("scooter/") and not first.exists()
    code, out = camera.call("POST", "/api/teach/relabel", {"region": "garage", "file": out["file"], "state": "empty"})
    assert code == 200 and first.exists()
    code, out = camera.call("POST", "/api/teach/relabel", {"region": "garage", "file": "../../token", "state": "empty"})
    assert code == 404
    code, out = camera.call("POST", "/api/teach/retrain", {"region": "garage"})
    assert code == 202, out
    status = wait_until(lambda: (s := camera.call("GET", "/api/teach/retrain")[1])["state"] != "running" and s,
                        "the retrain", timeout=60)
    assert status["state"] == "done", status
    ev = status["evidence"]
    assert ev["states"] == STATES and ev["n"] == 30
    assert sum(map(sum, ev["confusion"])) == 30 and ev["accuracy"] >= 0.8
    assert set(ev["per_state"]) == set(STATES)
    assert all(0 <= p["interval"][0] <= p["accuracy"] <= p["interval"][1] <= 1 for p in ev["per_state"].values())
    code, out = camera.call("POST", "/api/teach/use", {"region": "garage"})
    assert code == 200 and out["version"] == 1
    for state in ("scooter", "empty", "tricycle"):
        camera.show(state)
        camera.wait_state("garage", state)
    code, why = camera.call("GET", "/api/teach/why?region=garage")
    assert code == 200 and set(why["labels"]) == set(STATES) and why["state"] == "tricycle"
    assert why["nearest"] and all(n["file"].startswith("tricycle/") for n in why["nearest"])
    code, thumb = camera.call("GET", "/api/teach/examples/garage/" + why["nearest"][0]["file"])
    assert code == 200 and crop_of(thumb) is not None
    code, out = camera.call("POST", "/api/teach/undo", {"region": "garage"})
    assert code == 200 and out["version"] is None
    # the base model's classes again: none of the taught states
    wait_until(lambda: camera.region_label("garage") not in STATES + [None], "the base model back", timeout=15)
    code, out = camera.call("POST", "/api/teach/undo", {"region": "garage"})
    assert code == 409 and "nothing to undo" in out["error"]


def test_the_first_region_drawn_on_a_whole_picture_camera_runs_when_the_run_starts_again(scene, model_env,
                                                                                          tmp_path):
    # The camera's outputs were built for the whole picture: the run starts again in this process, for its
    # regions, on the same address (as edgecam run does: run_restarting); removing the region goes back.
    with socket.socket() as s:  # a fixed port: the page must come back where it was
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    http = {"enabled": True, "port": port, "token_file": str(tmp_path / "token")}
    with SceneCamera(scene, tmp_path, config={"http": http}) as cam:
        first = cam.app
        assert first.camera.tracker is None  # the whole picture
        code, out = cam.call("POST", "/api/teach/regions", {"name": "garage", "box": list(REGION),
                                                            "labels": STATES})
        assert code == 201, out
        wait_until(lambda: cam.app is not first and cam.region_label("garage") is not None,
                   "the run started again with the drawn region", timeout=30)
        assert first.restart_reason and "garage" in first.restart_reason
        assert [r["name"] for r in cam.call("GET", "/api/teach")[1]["regions"]] == ["garage"]
        second = cam.app
        assert cam.call("DELETE", "/api/teach/regions/garage")[0] == 200
        wait_until(lambda: cam.app is not second and (cam.latest() or {}).get("top_k")
                   and not cam.latest().get("regions"), "the whole picture again", timeout=30)
        assert cam.app.camera.tracker is None


def test_with_mqtt_a_region_drawn_beside_others_gets_its_home_assistant_sensor(scene, model_env, tmp_path, broker):
    # MQTT announced the regions at start: a drawn one is announced too (the run starts again in this process).
    from tests.mosquitto import Subscriber

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    node = "edgecam-teach"
    config = {"http": {"enabled": True, "port": port, "token_file": str(tmp_path / "token")},
              "regions": [{"name": "door", "box": [0.0, 0.0, 0.3, 0.3], "labels": ["open", "closed"]}],
              "mqtt": {"enabled": True, "host": broker.host, "port": broker.port, "topic_prefix": "edgecam/teach",
                       "client_id": node}}
    topic = f"homeassistant/sensor/{node}/region_garage/config"
    ha = Subscriber(broker, topics=(f"homeassistant/sensor/{node}/+/config",))
    try:
        with SceneCamera(scene, tmp_path, config=config) as cam:
            first = cam.app
            code, out = cam.call("POST", "/api/teach/regions", {"name": "garage", "box": list(REGION),
                                                                "labels": STATES})
            assert code == 201, out
            ha.wait(topic)  # the new run announces it while it is built (before SceneCamera holds it)
            wait_until(lambda: cam.app is not first, "the new run", timeout=30)
            assert "garage" in first.restart_reason
            wait_until(lambda: cam.region_label("garage") is not None, "the drawn region classified", timeout=30)
    finally:
        ha.close()
