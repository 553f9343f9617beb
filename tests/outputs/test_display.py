"""The window output: when a display counts as available, and the window under a real Xvfb.

Windows are only opened in child processes: OpenCV's Qt backend keeps global
state (and aborts the process when it cannot reach the X server).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edgecam.pipeline.app import want_display
from edgecam.errors import EdgecamError
from edgecam.outputs.display import display_available, use_xcb_on_wayland, x_server_reachable
from tests.doubles import background
from tests.xvfb import picture_box, xvfb  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parents[2]


def dead_display() -> str:
    """A local display number no X server listens on."""
    for n in range(917, 999):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(f"\0/tmp/.X11-unix/X{n}")
        except OSError:
            return f":{n}"
        finally:
            probe.close()
    pytest.skip("no unused X display number found")


@pytest.fixture
def no_display(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)


def test_no_display_variables_means_no_window(no_display):
    assert display_available() is False
    assert want_display("auto") is False
    with pytest.raises(EdgecamError) as e:
        want_display("window")
    assert e.value.exit_code == 4 and "\n" not in e.value.message and "--display none" in e.value.message


def test_display_none_never_asks(monkeypatch):
    monkeypatch.setenv("DISPLAY", dead_display())
    assert want_display("none") is False


def test_stale_display_counts_as_no_display(no_display, monkeypatch):
    # Qt would abort the whole process on this one (SIGABRT), so it must be caught first.
    display = dead_display()
    monkeypatch.setenv("DISPLAY", display)
    assert x_server_reachable(display) is False
    assert display_available() is False
    with pytest.raises(EdgecamError) as e:
        want_display("window")
    assert e.value.exit_code == 4


def test_tcp_displays_are_checked_on_their_port():
    with socket.socket() as server:
        for n in range(150, 900):
            try:
                server.bind(("127.0.0.1", 6000 + n))
                break
            except OSError:
                continue
        else:
            pytest.skip("no free port in 6150..6899")
        server.listen(1)
        assert x_server_reachable(f"127.0.0.1:{n}.0") is True
    assert x_server_reachable(f"127.0.0.1:{n}.0", timeout_s=0.5) is False


def test_unparsable_display_is_left_to_the_toolkit():
    assert x_server_reachable("/private/tmp/com.apple.launchd.x/org.xquartz:0") is True


def test_live_xvfb_counts_as_a_display(xvfb, no_display, monkeypatch):  # noqa: F811
    monkeypatch.setenv("DISPLAY", xvfb.display)
    assert x_server_reachable(xvfb.display) is True
    assert display_available() is True
    assert want_display("window") is True


WINDOW_SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np
    from edgecam.camera.frame import Frame
    from edgecam.outputs.display import WindowSink

    quit = []
    sink = WindowSink("edgecam-test", on_quit=lambda: quit.append(1))
    sink.start()
    image = np.zeros((240, 320, 3), np.uint8)
    image[:, :160] = (255, 0, 0)   # left half blue (BGR)
    image[:, 160:] = (0, 0, 255)   # right half red
    frame = Frame(image=image, index=0, timestamp=0.0, wall_time=0.0)
    annotated = image.copy()
    annotated[:40, :40] = (0, 255, 0)  # the annotated picture wins over the raw one
    deadline = time.monotonic() + 60
    while not quit and time.monotonic() < deadline:
        sink.on_frame(frame, annotated, None)
        time.sleep(0.02)
    sink.close()
    print("quit" if quit else "timeout", flush=True)
""")


def window_script(env: dict, cwd):
    """WINDOW_SCRIPT running in a child process; killed on the way out if a test failed first."""
    return background([sys.executable, "-c", WINDOW_SCRIPT], env, cwd)


def test_window_shows_the_annotated_frame_and_quits_on_q(xvfb, tmp_path):  # noqa: F811
    env = xvfb.env({**os.environ, "PYTHONPATH": str(REPO)})
    with window_script(env, tmp_path) as proc:
        wid = xvfb.wait_window("edgecam-test")
        want = [[0, 255, 0], [255, 0, 0], [0, 0, 255]]

        def look(win):
            px, py, pw, ph = picture_box(win)
            pic = win[py:py + ph, px:px + pw]
            # Colours as BGR: green corner (annotated), blue left, red right.
            return [pic[ph // 20, pw // 40].tolist(), pic[ph // 2, pw // 4].tolist(),
                    pic[ph // 2, 3 * pw // 4].tolist()], pw / max(ph, 1)

        win = xvfb.window_pixels(wid, lambda px: look(px)[0] == want, path=tmp_path / "window.png")
        seen, aspect = look(win)
        assert seen == want
        assert picture_box(win)[2:] == (320, 240)  # the window opened at the picture's size, 1:1
        xvfb.key(wid, "q")
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.strip() == "quit"


# -- Wayland (the Pi OS Bookworm desktop) ---------------------------------------------

@pytest.mark.parametrize("environ, forced", [
    ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "wayland"}, True),  # would abort: exit 134
    ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "wayland-egl"}, True),
    ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "wayland;xcb"}, True),
    ({"DISPLAY": ":0", "XDG_SESSION_TYPE": "wayland"}, True),  # Qt warns about the missing plugin
    ({"DISPLAY": ":0", "XDG_SESSION_TYPE": "wayland", "QT_QPA_PLATFORM": "offscreen"}, False),  # the user's choice
    ({"DISPLAY": ":0", "XDG_SESSION_TYPE": "x11"}, False),
    ({"DISPLAY": ":0"}, False),
    ({"XDG_SESSION_TYPE": "wayland", "WAYLAND_DISPLAY": "wayland-0"}, False),  # no XWayland: nothing to force
])
def test_wayland_sessions_use_qts_xcb_platform_when_there_is_an_x_display(environ, forced):
    before = dict(environ)
    assert use_xcb_on_wayland(environ) is forced
    if forced:
        assert environ["QT_QPA_PLATFORM"] == "xcb"
    else:
        assert environ == before


@pytest.mark.parametrize("wayland_env", [{"QT_QPA_PLATFORM": "wayland"}, {"XDG_SESSION_TYPE": "wayland"}])
def test_window_opens_on_a_wayland_desktop_through_xwayland(xvfb, tmp_path, wayland_env):  # noqa: F811
    # Xvfb plays XWayland. The same window script as above, in a Wayland session's environment.
    env = xvfb.env({**os.environ, "PYTHONPATH": str(REPO), **wayland_env})
    env.pop("WAYLAND_DISPLAY", None)
    plain = subprocess.run([sys.executable, "-c", "import cv2; cv2.namedWindow('x'); cv2.waitKey(1)"],
                           env=env, capture_output=True, text=True, timeout=60)
    if wayland_env.get("QT_QPA_PLATFORM") == "wayland":
        assert plain.returncode == -6 or plain.returncode == 134, plain.stderr  # what OpenCV alone does
    with window_script(env, tmp_path) as proc:
        wid = xvfb.wait_window("edgecam-test")
        xvfb.key(wid, "q")
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and out.strip() == "quit", err
    assert "Could not find the Qt platform plugin" not in err
