"""The MQTT output's side of commands (``mqtt.commands: true``): take them, answer them, show the values.

A mixin of :class:`edgecam.outputs.mqtt.MqttSink`. Commands arrive on paho's thread
(:meth:`MqttControl.on_command`); they are only checked for shape there and queued on the camera's
:class:`edgecam.control.live.Control`, which the camera's output loop applies through its reload path and
answers (:meth:`MqttControl._answered`, from that loop). Topics and payloads:
:mod:`edgecam.control.mqtt_commands`.
"""

from __future__ import annotations

import json
import logging

from edgecam.control import mqtt_commands as commands
from edgecam.outputs.mqtt_messages import Item, ItemKind

logger = logging.getLogger("edgecam.outputs.mqtt")  # one logger for the whole MQTT output


class MqttControl:
    """Commands for one camera's MQTT output; ``control`` None: commands are off (or no camera to command)."""

    control = None
    _running = None  # the camera's running config (changed in place by reloads and commands)
    _shown: dict | None = None  # <what> -> the value last published on its control topic
    _snapshot_now = False

    def attach_control(self, control, cfg) -> None:
        """Take commands for ``control`` (when ``mqtt.commands``); ``cfg``: the camera's running config."""
        if not self.cfg.commands:
            return
        self.control, self._running, self._shown = control, cfg, {}
        self.wants_frames = True  # a snapshot command takes the next frame
        control.listeners.append(self._answered)

    def _values(self) -> dict:
        return commands.current(self._running, self.control.store.inference)

    def control_items(self) -> list[Item]:
        """(lock held) Every control's value, retained (at each connect, after the discovery configs)."""
        if self.control is None:
            return []
        self._shown = self._values()
        return [self._control_item(what, value) for what, value in self._shown.items()]

    def _control_item(self, what: str, value) -> Item:
        return Item(ItemKind.RAW, (commands.control_topic(self.prefix, what), commands.shown(value), True))

    def control_discovery(self, device: dict) -> dict[str, dict]:
        """The controls' Home Assistant entities (none with commands off)."""
        return {} if self.control is None else commands.discovery_configs(self, self._running, device)

    def on_command(self, what: str, payload: bytes, retained: bool = False) -> None:
        """(paho's thread) A message on ``<prefix>/set/<what>``: queued for the output loop, or refused."""
        if self.control is None or not self._accepting():
            return
        if retained:  # it would be applied again at each connect: someone published it with retain
            return self._refuse(what, f"set/{what}: a retained command is ignored; publish it without retain")
        if what == commands.SNAPSHOT:
            self._snapshot_now = True
            return self._reply({"command": what, "ok": True})
        key = commands.key_of(what)
        if key is None:
            return self._refuse(what, f"set/{what}: not a command (those: model, threshold, top_k, inference, "
                                      "rule/<name>, snapshot)")
        try:
            value = commands.parse(payload)
        except ValueError as e:
            return self._refuse(what, f"set/{what}: {e}")
        self.control.submit(key, value)

    def _refuse(self, what: str, error: str) -> None:
        logger.warning("control: camera %s: command refused, nothing changed: %s", self.names.camera or "main", error)
        self._reply({"command": what, "ok": False, "error": error})

    def _reply(self, answer: dict) -> None:
        self._enqueue(ItemKind.RAW, (commands.reply_topic(self.prefix), json.dumps(answer), False))

    def _answered(self, outcome) -> None:
        """(the output loop, the new settings in) Answer a command; publish the values that changed."""
        what = commands.what_of(outcome.key)
        if outcome.error is not None:
            self._reply({"command": what, "ok": False, "error": outcome.error})
            return
        answer = {"command": what, "ok": True, "value": outcome.value}
        now = self._values()
        if outcome.restart:  # a model its regions or shared stage take by the run starting again, now
            answer["applies"] = "now: the run starts again with it, in this process (a second or two)"
        elif what == "model" and now["model"] != outcome.value:  # kept; the running model changes at a restart
            answer["applies"] = "at the next start (systemctl restart edgecam)"
        self._reply(answer)
        with self._cond:
            changed = {w: v for w, v in now.items() if self._shown.get(w, object()) != v}
            self._shown = now
        for w, v in changed.items():
            self._enqueue(*self._control_item(w, v))

    def model_changed(self, name: str) -> None:
        """The model was switched live: the device shows it (its discovery configs again)."""
        self.model_name = name
        if self._accepting():
            with self._cond:
                items = self._discovery_items()
            for item in items:
                self._enqueue(*item)

    def snapshot_due(self) -> bool:
        """Whether a snapshot command waits for this frame (and take it)."""
        due, self._snapshot_now = self._snapshot_now, False
        return due
