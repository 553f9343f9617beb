"""A fleet of edgecam nodes on one MQTT broker: each node says what it is, ``edgecam fleet`` lists them and
rolls a model out to them (docs/fleet.md).

- :mod:`edgecam.fleet.messages`: the topics and the JSON of each message (node info, push request, chunk, ack).
- :mod:`edgecam.fleet.node`: the node's side, on the run's MQTT connection: its node info (retained), and
  with ``mqtt.commands: true`` the push requests it takes (:mod:`edgecam.fleet.receive`).
- :mod:`edgecam.fleet.listing` and :mod:`edgecam.fleet.push`: the ``edgecam fleet`` command's side.
"""
