"""Where the state directory is: the config's state_dir, else systemd's STATE_DIRECTORY, else XDG_STATE_HOME."""

import pytest

from edgecam.config.schema import from_dict
from edgecam.config.state import feature_dir, state_dir


@pytest.mark.parametrize("configured, env, expected", [
    ("/srv/cam", {"STATE_DIRECTORY": "/var/lib/edgecam"}, "/srv/cam"),
    (None, {"STATE_DIRECTORY": "/var/lib/edgecam:/var/lib/other"}, "/var/lib/edgecam"),
    (None, {"XDG_STATE_HOME": "/home/u/st"}, "/home/u/st/edgecam"),
    (None, {"HOME": "/home/v"}, "/home/v/.local/state/edgecam"),
])
def test_the_state_directory_is_found_in_order(monkeypatch, configured, env, expected):
    for key in ("STATE_DIRECTORY", "XDG_STATE_HOME"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert str(state_dir(configured)) == expected


def test_a_feature_gets_its_own_folder_made(tmp_path):
    path = feature_dir(tmp_path / "state", "mqtt")
    assert path.is_dir() and path == tmp_path / "state" / "mqtt"


def test_state_dir_is_a_config_key():
    assert from_dict({"state_dir": "/srv/edgecam"}).state_dir == "/srv/edgecam"
