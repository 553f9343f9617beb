"""The overrides store: a command's value checked by the config's rules, kept across restarts, the file winning."""

from __future__ import annotations

import json

import pytest

from edgecam.config import schema as config_mod
from edgecam.control.overrides import Key, OverridesStore, check, rule_key
from edgecam.errors import ConfigError

RULES = {"events": {"rules": [{"name": "cat", "label": "tabby"}, {"name": "dog", "label": "beagle"}]}}


def config(**model):
    return config_mod.from_dict({"model": {"threshold": 0.2, "top_k": 3, **model}, **RULES}, "/etc/edgecam/config.yaml")


GOOD = [
    (Key.THRESHOLD, 0.5, 0.5),
    (Key.THRESHOLD, 1, 1.0),  # an int where a float goes: as the config takes it
    (Key.TOP_K, 5, 5),
    (Key.TOP_K, 2.0, 2),
    (Key.MODEL, "mobilenet_v2", "mobilenet_v2"),
    (Key.INFERENCE, False, False),
    (rule_key("dog"), False, False),
]


@pytest.mark.parametrize("key,value,taken", GOOD)
def test_a_good_value_is_taken_as_the_config_would_take_it(key, value, taken):
    assert check(config(), key, value) == taken


# (key, value, what the one line says): the config's own messages.
BAD = [
    (Key.THRESHOLD, 2, "model.threshold: got 2, expected a value between 0.0 and 1.0"),
    (Key.THRESHOLD, float("nan"), "model.threshold: got nan, expected a value between 0.0 and 1.0"),
    (Key.THRESHOLD, "high", "model.threshold: got 'high', expected"),
    (Key.TOP_K, 0, "model.top_k: got 0, expected a value between 1 and 100"),
    (Key.TOP_K, 2.5, "model.top_k: got 2.5, expected"),
    (Key.MODEL, "no_such_model", "model.name: got 'no_such_model', expected a registry name or a learned model"),
    (Key.MODEL, 3, "model.name: got 3, expected"),
    (Key.INFERENCE, "yes", "inference: got 'yes', expected"),
    (rule_key("dog"), 1, "events.rules.dog.enabled: got 1, expected"),
    (rule_key("horse"), True, "events.rules: no rule named 'horse' (rules: cat, dog)"),
    ("model.crop", "square", "'model.crop': not a setting a command may change"),
]


@pytest.mark.parametrize("key,value,says", BAD)
def test_a_bad_value_changes_nothing_and_says_why_in_one_line(tmp_path, key, value, says):
    store = OverridesStore(tmp_path, "main")
    with pytest.raises(ConfigError) as e:
        store.set(config(), key, value)
    assert len(e.value.problems) == 1 and says in e.value.problems[0], e.value.problems
    assert "\n" not in str(e.value)
    assert store.values == {} and not store.path.exists()


def test_overrides_survive_a_restart_and_are_laid_over_the_config(tmp_path):
    cfg = config()
    store = OverridesStore(tmp_path, "garage")
    store.set(cfg, Key.THRESHOLD, 0.6)
    store.set(cfg, Key.INFERENCE, False)
    store.set(cfg, rule_key("cat"), False)
    assert store.path == tmp_path / "control" / "garage.json"
    again = OverridesStore(tmp_path, "garage")  # a restart
    out = again.over(config())
    assert out.model.threshold == 0.6 and out.model.top_k == 3
    assert [r.enabled for r in out.events.rules] == [False, True]
    assert again.inference is False
    assert OverridesStore(tmp_path, "door").values == {}  # per camera


# (the file's threshold when set, the file's threshold now, what applies)
FILE_WINS = [
    (0.2, 0.2, 0.6),  # the file did not change the key: the command's value holds
    (0.2, 0.3, 0.3),  # it did: the file's value wins and the override is gone
]


@pytest.mark.parametrize("before,after,applies", FILE_WINS)
def test_a_config_file_that_changed_the_key_wins(tmp_path, before, after, applies):
    store = OverridesStore(tmp_path, "main")
    store.set(config(threshold=before), Key.THRESHOLD, 0.6)
    store.set(config(threshold=before), Key.TOP_K, 7)
    reloaded = OverridesStore(tmp_path, "main")
    out = reloaded.over(config(threshold=after))
    assert out.model.threshold == applies
    assert out.model.top_k == 7  # a key the file did not change keeps its override
    kept = json.loads(reloaded.path.read_text())["values"]
    assert (Key.THRESHOLD in kept) == (before == after)


def test_setting_the_configs_own_value_drops_the_override(tmp_path):
    store = OverridesStore(tmp_path, "main")
    store.set(config(), Key.THRESHOLD, 0.6)
    store.set(config(), Key.THRESHOLD, 0.2)
    assert store.values == {}


@pytest.mark.parametrize("text", ["{not json", '{"format": 99, "values": {}}', '[1, 2]', '{"format": 1, "values": {"x": 1}}'])
def test_a_damaged_file_is_set_aside_and_the_config_applies(tmp_path, caplog, text):
    path = tmp_path / "control" / "main.json"
    path.parent.mkdir()
    path.write_text(text)
    store = OverridesStore(tmp_path, "main")
    assert store.values == {}
    assert (path.parent / "main.json.bad").read_text() == text
    assert "damaged" in caplog.text
