"""Commands reach a running camera through the reload path: on the next result, kept across restarts."""

from __future__ import annotations

import numpy as np
import pytest

from edgecam.camera.frame import Frame
from edgecam.control.overrides import Key, rule_key
from tests.pipeline.test_live import app_of, result, rewrite  # noqa: F401 (app_of: the fixture)

FRAME = Frame(np.zeros((48, 64, 3), np.uint8), 0, 0.0, 1.0)


def config(tmp_path, **model) -> dict:
    return {"model": {"top_k": 1, "threshold": 0.7, **model}, "state_dir": str(tmp_path / "state"),
            "events": {"dir": str(tmp_path / "events"), "rules": [{"name": "opened", "label": "open"}]}}


def command(app, key, value):
    """What the MQTT output does with a command, then what the output loop does on its next tick."""
    outcomes = []
    app.control.listeners.append(outcomes.append)
    app.control.submit(key, value)
    assert app.pipeline.reload_requested  # the loop is woken: the command applies before the next result
    app.pipeline.reload_requested = False
    app.pipeline.on_reload()
    app.control.listeners.remove(outcomes.append)
    return outcomes[-1]


def shown(app, scores=(0.05, 0.6, 0.35)) -> str | None:
    app.pipeline._handle_result(result(list(scores)))
    return app.pipeline.shown_label


def test_a_command_applies_on_the_next_result_without_reading_the_file_again(app_of, tmp_path):
    d = config(tmp_path)
    app = app_of(d)
    assert shown(app) is None  # 0.6 is below 0.7
    rewrite(app, {**d, "model": {"top_k": 5, "threshold": 0.7}})  # an edit not yet reloaded
    out = command(app, Key.THRESHOLD, 0.5)
    assert (out.value, out.error) == (0.5, None)
    assert shown(app) == "open"
    assert app.pipeline.top_k == 1  # the file was not read again: no systemctl reload was asked for


@pytest.mark.parametrize("key,value", [(Key.THRESHOLD, float("nan")), (Key.THRESHOLD, "0.5"), (Key.TOP_K, 0),
                                       (Key.MODEL, "no_such_model"), (rule_key("closed"), False)])
def test_a_bad_command_changes_nothing_and_is_answered(app_of, tmp_path, caplog, key, value):
    app = app_of(config(tmp_path))
    out = command(app, key, value)
    assert out.value is None and out.error
    assert (app.pipeline.threshold, app.pipeline.top_k) == (0.7, 1)
    assert not (tmp_path / "state" / "control" / "main.json").exists()
    refused = [r for r in caplog.records if "command refused" in r.getMessage()]
    assert len(refused) == 1 and out.error in refused[0].getMessage()


def test_pausing_inference_stops_classifying_and_a_rule_can_be_switched_off(app_of, tmp_path):
    app = app_of(config(tmp_path))
    events = next(s for s in app.outputs.sinks if s.name == "events")
    with pytest.raises(AttributeError):  # running: the frame goes to the model (the stand-in cannot prepare it)
        app.pipeline._to_inference(FRAME)
    command(app, Key.INFERENCE, False)
    app.pipeline._to_inference(FRAME)  # paused: the model is not asked
    command(app, rule_key("opened"), False)
    assert [t.enabled for t in events.ruleset.trackers] == [False]
    command(app, Key.INFERENCE, True)
    with pytest.raises(AttributeError):
        app.pipeline._to_inference(FRAME)


def test_commands_survive_a_restart_and_a_changed_config_file_wins(app_of, tmp_path):
    d = config(tmp_path)
    app = app_of(d)
    command(app, Key.THRESHOLD, 0.5)
    command(app, Key.TOP_K, 2)
    app.outputs.close()
    again = app_of(d)  # a restart
    assert (again.pipeline.threshold, again.pipeline.top_k) == (0.5, 2)
    rewrite(again, {**d, "model": {"top_k": 1, "threshold": 0.4}})
    again.reload()  # systemctl reload: the file changed the threshold, not top_k
    assert (again.pipeline.threshold, again.pipeline.top_k) == (0.4, 2)
    again.outputs.close()
    third = app_of({**d, "model": {"top_k": 1, "threshold": 0.4}})  # and a restart after it
    assert (third.pipeline.threshold, third.pipeline.top_k) == (0.4, 2)


def test_a_model_command_switches_the_model_live_and_a_broken_one_changes_nothing(tmp_path, monkeypatch, model_env):
    # Real models (the shared mirror), a stand-in camera, the run's loop in a thread: 224 px in, then 128 px.
    import threading

    import edgecam.camera
    import yaml

    from edgecam.config import schema as config_mod
    from edgecam.pipeline.app import App
    from tests.doubles import FakeCamera, wait_until

    monkeypatch.setattr(edgecam.camera, "open_source", lambda cfg, size=None, **kw: FakeCamera(fps=30))
    models = tmp_path / "models"
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({"model": {"threads": 1, "dir": str(models)}, "state_dir": str(tmp_path / "state")}))
    app = App(config_mod.load(str(path)), display_override=False)  # the models from the shared mirror
    (models / "broken.head.npz").write_bytes(b"not a learned model")
    thread = threading.Thread(target=app.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: app.pipeline.latest_result is not None, what="a first result")
        outcomes = []
        app.control.listeners.append(outcomes.append)
        app.control.submit(Key.MODEL, "mobilenet_v1_0.25_128")
        wait_until(lambda: getattr(app.pipeline.latest_result, "model", None) == "mobilenet_v1_0.25_128",
                   what="results of the new model")
        assert (outcomes[-1].value, outcomes[-1].error) == ("mobilenet_v1_0.25_128", None)
        assert app.pipeline.error is None and app.pipeline.inference.error is None
        app.control.submit(Key.MODEL, "broken")
        wait_until(lambda: len(outcomes) == 2, what="the broken model's answer")
        assert outcomes[-1].value is None and outcomes[-1].error.startswith("model.name: ")
        assert Key.MODEL in app.control.store.values  # the good one is still kept for the next start
        assert app.control.store.values[Key.MODEL].value == "mobilenet_v1_0.25_128"
        n = app.stats.frames_inferred
        wait_until(lambda: app.stats.frames_inferred > n + 3, what="the old model goes on")
        assert app.pipeline.latest_result.model == "mobilenet_v1_0.25_128"
    finally:
        app.pipeline.stop()
        thread.join(30)


def test_a_model_command_a_camera_with_regions_takes_by_the_run_starting_again(tmp_path, monkeypatch, model_env):
    # A camera with regions cannot take a model in place (its outputs were built for its regions' models):
    # the command is checked (the model loads), kept, answered "restart", and the run starts again with it.
    import threading

    import edgecam.camera
    import yaml

    from edgecam.config import schema as config_mod
    from edgecam.pipeline.app import App, run_restarting
    from tests.doubles import FakeCamera, wait_until

    monkeypatch.setattr(edgecam.camera, "open_source", lambda cfg, size=None, **kw: FakeCamera(fps=30))
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({"model": {"threads": 1, "dir": str(tmp_path / "models")},
                                    "regions": [{"name": "door", "box": [0.0, 0.0, 0.5, 0.5]}],
                                    "state_dir": str(tmp_path / "state")}))
    apps = []

    def build():
        apps.append(App(config_mod.load(str(path)), display_override=False))
        return apps[-1]

    thread = threading.Thread(target=run_restarting, args=(build,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: apps and apps[0].pipeline.latest_result is not None, what="a first result")
        first, outcomes = apps[0], []
        assert first.camera.classifier.name == "mobilenet_v3_small"
        first.control.listeners.append(outcomes.append)
        first.control.submit(Key.MODEL, "mobilenet_v1_0.25_128")
        wait_until(lambda: len(apps) == 2 and apps[1].pipeline is not None
                   and apps[1].pipeline.latest_result is not None, what="the run started again", timeout=60)
        assert (outcomes[0].value, outcomes[0].error, outcomes[0].restart) == ("mobilenet_v1_0.25_128", None, True)
        assert "mobilenet_v1_0.25_128" in first.restart_reason
        assert apps[1].camera.classifier.name == "mobilenet_v1_0.25_128"  # the region's model, from the override
        assert apps[1].pipeline.latest_result.regions["door"].label is not None
        apps[1].control.submit(Key.MODEL, "broken-name")  # refused before any restart: nothing changes
        wait_until(lambda: apps[1].control.store.values[Key.MODEL].value == "mobilenet_v1_0.25_128"
                   and not apps[1].control.pending, what="the refusal")
        assert len(apps) == 2 and apps[1].restart_reason is None
    finally:
        apps[-1].pipeline.stop()
        thread.join(30)
