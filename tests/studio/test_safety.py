"""The teach endpoints are safe by default: the token, the Origin and Host checks, JSON-only bodies with a size
limit, names validated, and the page showing a hostile name as text (a real browser)."""

from __future__ import annotations

import shutil
import urllib.request

import pytest

from tests.cdp import Browser
from tests.doubles import wait_until
from tests.scenes import REGION, Scene
from tests.studio import SceneCamera

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HOSTILE = '<img src=x onerror="window.pwned=1">'
GOOD = {"name": "garage", "box": list(REGION), "labels": ["empty", "car"]}


@pytest.fixture(scope="module")
def camera(shared_dir, model_cache, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("EDGECAM_MODEL_DIR", str(model_cache))
    mp.setenv("EDGECAM_MODEL_MIRROR", str(shared_dir / "models"))
    door = {"regions": [{"name": "door", "box": [0.0, 0.0, 0.3, 0.3], "labels": ["open", "closed"]}]}
    scene = Scene(shared_dir / "images" / "imagenet-sample")
    with SceneCamera(scene, tmp_path_factory.mktemp("safety"), config=door) as cam:
        yield cam
    mp.undo()


def raw(cam, method: str, path: str, data: bytes | None, headers: dict) -> int:
    req = urllib.request.Request(cam.base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.mark.parametrize("headers, code", [
    ({}, 401),  # no token
    ({"Authorization": "Bearer wrong"}, 401),
    ({"Authorization": "Bearer teach-token", "Origin": "http://evil.example"}, 403),  # another site's page
    ({"Authorization": "Bearer teach-token", "Host": "evil.example"}, 403),  # DNS rebinding
], ids=["no-token", "wrong-token", "cross-origin", "foreign-host"])
def test_a_write_without_the_token_or_from_elsewhere_is_refused(camera, headers, code):
    body = b'{"name": "x1", "box": [0, 0, 0.5, 0.5], "labels": ["a", "b"]}'
    assert raw(camera, "POST", "/api/teach/regions", body, {"Content-Type": "application/json", **headers}) == code
    assert raw(camera, "DELETE", "/api/teach/regions/door", None, headers) == code
    assert "x1" not in {r.name for r in camera.studio.store.load()}


def test_the_token_in_the_url_does_not_authorise_a_write(camera):
    body = b'{"region": "garage"}'
    assert raw(camera, "POST", "/api/teach/retrain?token=teach-token", body, {"Content-Type": "application/json"}) \
        == 401


@pytest.mark.parametrize("ctype, body, code", [
    ("text/plain", b'{"name": "x2", "box": [0, 0, 0.5, 0.5], "labels": ["a", "b"]}', 400),  # what a form can send
    ("application/x-www-form-urlencoded", b"name=x2", 400),
    ("application/json", b"[1, 2]", 400),
    ("application/json", b"{not json", 400),
    ("application/json", b'{"labels": ["' + b"a" * 20000 + b'"]}', 413),
], ids=["text-plain", "form", "not-an-object", "not-json", "too-big"])
def test_only_small_json_bodies_are_read(camera, ctype, body, code):
    headers = {"Authorization": "Bearer teach-token", "Content-Type": ctype}
    assert raw(camera, "POST", "/api/teach/regions", body, headers) == code
    assert "x2" not in {r.name for r in camera.studio.store.load()}


@pytest.mark.parametrize("change, words", [
    ({"name": "../etc"}, "name: expected"),
    ({"name": "door"}, "region of the config file"),
    ({"labels": ["a/b", "c"]}, "labels: expected"),
    ({"labels": [".hidden", "c"]}, "labels: expected"),
    ({"labels": ["same", "same"]}, "distinct"),
    ({"labels": ["only"]}, "2 to 16 states"),
    ({"box": [0.5, 0.5, 0.4, 0.9]}, "box: expected"),
    ({"box": [0, 0, 1]}, "box: expected four numbers"),
])
def test_bad_regions_are_one_clear_line(camera, change, words):
    code, out = camera.call("POST", "/api/teach/regions", {**GOOD, **change})
    assert code in (400,) and words in out["error"] and "\n" not in out["error"]


def test_a_config_region_cannot_be_deleted_nor_a_file_outside_read(camera):
    code, out = camera.call("DELETE", "/api/teach/regions/door")
    assert code == 403 and "config file" in out["error"]
    code, _ = camera.call("GET", "/api/teach/examples/door/..%2F..%2Ftoken")
    assert code == 404
    code, _ = camera.call("GET", "/api/teach/review/..%2F..%2Ftoken.png")
    assert code == 404


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")
def test_the_page_shows_a_hostile_state_name_as_text(camera, tmp_path):
    code, out = camera.call("POST", "/api/teach/regions", {**GOOD, "name": "evil", "labels": [HOSTILE, "b"]})
    assert code == 201, out
    wait_until(lambda: "evil" in camera.studio.live, "the region running", timeout=15)
    with Browser(CHROMIUM, tmp_path, f"{camera.base}/teach?token={camera.token}") as page:
        text = page.wait_for("(document.querySelector('[data-region=evil] button[data-this]') || {}).textContent",
                             "the region's buttons")
        assert HOSTILE in text
        assert page.evaluate("document.querySelectorAll('img[src=x]').length") == 0
        assert page.evaluate("window.pwned === undefined")
    camera.call("DELETE", "/api/teach/regions/evil")
