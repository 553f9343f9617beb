"""The events: section: typed and strict like the rest, and checked against the regions and MQTT."""

from __future__ import annotations

import pytest

from edgecam.config import schema as config
from edgecam.errors import ConfigError


def rules(*rule: dict, **more) -> dict:
    return {"events": {"rules": list(rule)}, **more}


def test_a_rule_with_defaults():
    cfg = config.from_dict(rules({"name": "bins", "label": "wheelie bin", "schedule": "22:00-06:00"}))
    r = cfg.events.rules[0]
    assert (r.min_score, r.for_s, r.cooldown_s, r.snapshot, r.clip, r.pre_s, r.post_s) == (0.5, 1, 5, True, False, 5, 5)
    assert cfg.events.max_mb == 1000 and cfg.events.pre_roll_mb == 16


BAD = [
    (rules({"name": "a b", "label": "x"}), "events.rules[0].name: got 'a b', expected a name of letters"),
    (rules({"name": "a"}), "events.rules[0].label: missing, expected the label (or labels: a list)"),
    (rules({"name": "a", "label": "x", "labels": ["y"]}), "events.rules[0].labels: given with label too"),
    (rules({"name": "a", "label": "x"}, {"name": "a", "label": "y"}), "events.rules[1].name: 'a' names two rules"),
    (rules({"name": "a", "label": "x", "schedule": "7-19"}), "events.rules[0].schedule: got '7-19', expected a "
                                                               "time-of-day window 'HH:MM-HH:MM'"),
    (rules({"name": "a", "label": "x", "schedule": "07:00-07:00"}), "events.rules[0].schedule: got '07:00-07:00'"),
    (rules({"name": "a", "label": "x", "region": "door"}), "events.rules[0].region: 'door' is not a region "
                                                           "(regions: none configured)"),
    (rules({"name": "a", "label": "x"}, regions=[{"name": "door"}]),
     "events.rules[0].region: null, but with regions: the whole picture is not classified; expected one of door"),
    (rules({"name": "a", "label": "x", "mqtt": True}), "events.rules[0].mqtt: true, but mqtt.enabled is false"),
    (rules({"name": "a", "label": "x", "webhook": "ftp://x"}), "events.rules[0].webhook: got 'ftp://x', expected an "
                                                               "http:// or https:// URL"),
    (rules({"name": "a", "label": "x", "pre_s": 600}), "events.rules[0].pre_s: got 600, expected a value between"),
    ({"events": {"max_mb": -1}}, "events.max_mb: got -1, expected a value at least 0"),
]


@pytest.mark.parametrize("data, line", BAD, ids=[b[1].split(":")[0] + str(i) for i, b in enumerate(BAD)])
def test_each_bad_setting_is_one_line_with_its_path(data, line):
    with pytest.raises(ConfigError) as err:
        config.from_dict(data, "cfg.yaml")
    assert len(err.value.problems) == 1, err.value.problems
    assert err.value.problems[0].startswith(line), err.value.problems[0]
