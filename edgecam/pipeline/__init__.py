"""The pipeline: the app built from a config, the classify loop that feeds the outputs, and the checks before start.

``app``: builds the source, the model, the outputs and events from one config,
runs them, reloads on SIGHUP. ``loop``: the classify loop between the capture
thread and the outputs. ``preflight``: what ``edgecam run`` rejects at start.

May import every package below it (camera, model, outputs, events, health,
config, registry); only ``commands`` and ``measure`` import it.
"""
