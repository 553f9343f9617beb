"""Run-time control of a camera: what it was told over MQTT (edgecam.control.overrides), kept in the state directory."""
